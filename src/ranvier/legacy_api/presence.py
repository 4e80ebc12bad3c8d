"""Presence of the draft: GET/PUT /presence/$user_id/status with the integer states 0-3,
and the presence list, GET/POST /presence_list/$user_id (docs/legacy-api.md, "Presence")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.legacy_api.ids import user_from_draft, user_to_draft
from ranvier.legacy_api.routing import DraftRoutes, done
from ranvier.users.personal_store import PresenceRow
from ranvier.users.presence import OFFLINE, ONLINE, UNAVAILABLE
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field

routes = DraftRoutes()

#: The draft's states: 0 OFFLINE, 1 BUSY, 2 ONLINE, 3 FREE_TO_CHAT, and today's for each.
TODAY_STATE = {0: OFFLINE, 1: UNAVAILABLE, 2: ONLINE, 3: ONLINE}
DRAFT_STATE = {OFFLINE: 0, UNAVAILABLE: 1, ONLINE: 2}


def draft_state(row: PresenceRow | None, chosen: tuple[int, int] | None) -> int:
    """A user's state in the draft's numbers: the one a draft client chose while nothing has
    changed their presence since, else today's state mapped."""
    if row is None:
        return 0
    if chosen is not None and chosen[1] == row.stream_id:
        return chosen[0]
    return DRAFT_STATE.get(row.state, 0)


async def presence_entries(request: web.Request, rows: dict[str, PresenceRow],
                           user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """user_id -> the draft's presence entry {user_id, state, status_msg, displayname,
    avatar_url}, from the presence rows given (a user without one reads offline)."""
    hs = request.app[HOMESERVER]
    profiles = await hs.profiles.member_fields(user_ids)
    chosen = await hs.legacy.store.presence_states([user_id for user_id in user_ids if user_id in rows])
    entries = {}
    for user_id in user_ids:
        row = rows.get(user_id)
        entry: dict[str, Any] = {"user_id": user_to_draft(user_id), "state": draft_state(row, chosen.get(user_id))}
        if row is not None and row.status_msg is not None:
            entry["status_msg"] = row.status_msg
        displayname, avatar_url = profiles.get(user_id, (None, None))
        if displayname is not None:
            entry["displayname"] = displayname
        if avatar_url is not None:
            entry["avatar_url"] = avatar_url
        entries[user_id] = entry
    return entries


def _user(request: web.Request) -> str:
    return user_from_draft(request.match_info["user_id"], request.app[HOMESERVER].config.server_name)


@routes.get("/presence/{user_id}/status")
async def get_status(request: web.Request) -> web.Response:
    """GET /presence/$user_id/status: {state, status_msg}, for oneself and users sharing a
    joined room (today's rule), else M_FORBIDDEN."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    user_id = _user(request)
    await hs.presence.get(who.user_id, user_id)
    rows = await hs.presence.visible_rows(who.user_id, [user_id])
    entry = (await presence_entries(request, rows, [user_id]))[user_id]
    return json_response({key: entry[key] for key in ("state", "status_msg") if key in entry})


@routes.put("/presence/{user_id}/status")
async def set_status(request: web.Request) -> web.Response:
    """PUT /presence/$user_id/status {state 0-3, status_msg}: one's own presence only. 0 is
    offline, 1 (busy) unavailable, 2 and 3 (free to chat) online in today's terms."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    if _user(request) != who.user_id:
        raise MatrixError("M_FORBIDDEN", "You may only set your own presence")
    body = await read_json(request)
    state = field(body, "state", int, required=True)
    if state not in TODAY_STATE:
        raise MatrixError("M_BAD_JSON", "state must be 0 (offline), 1 (busy), 2 (online) or 3 (free to chat)")
    status_msg = field(body, "status_msg", str)
    position = await hs.presence.set_status(who.user_id, TODAY_STATE[state], status_msg)
    await hs.legacy.store.set_presence_state(who.user_id, state, position)
    return done()


async def _own_list(request: web.Request) -> str:
    who = await requester(request)
    if _user(request) != who.user_id:
        raise MatrixError("M_FORBIDDEN", "A presence list is its owner's only")
    return who.user_id


@routes.get("/presence_list/{user_id}")
async def get_presence_list(request: web.Request) -> web.Response:
    """GET /presence_list/$user_id: one's own list, an array of presence entries; a user who
    no longer shares a room with the owner reads offline."""
    hs = request.app[HOMESERVER]
    owner = await _own_list(request)
    observed = await hs.legacy.store.presence_list(owner)
    rows = await hs.presence.visible_rows(owner, observed)
    entries = await presence_entries(request, rows, observed)
    return json_response([entries[user_id] for user_id in observed])


def _user_list(request: web.Request, body: dict[str, Any], name: str) -> list[str]:
    values = field(body, name, list, default=[])
    server_name = request.app[HOMESERVER].config.server_name
    return list(dict.fromkeys(user_from_draft(value, server_name) for value in values))


@routes.post("/presence_list/{user_id}")
async def change_presence_list(request: web.Request) -> web.Response:
    """POST /presence_list/$user_id {invite: [...], drop: [...]}: add and remove observed
    users on one's own list. Presence is visible between users who share a room, so an
    invited user must share a room with the owner (M_FORBIDDEN) and exist (M_NOT_FOUND).
    Adding or dropping twice is harmless; nothing changes if any entry is refused."""
    hs = request.app[HOMESERVER]
    owner = await _own_list(request)
    body = await read_json(request, allow_empty=True)
    invite, drop = _user_list(request, body, "invite"), _user_list(request, body, "drop")
    known = await hs.profiles.member_fields(invite)
    for user_id in invite:
        if user_id not in known:
            raise MatrixError("M_NOT_FOUND", f"No user {user_to_draft(user_id)} on this server")
    visible = await hs.presence.sharing_a_room_with(owner, invite)
    for user_id in invite:
        if user_id not in visible:
            raise MatrixError("M_FORBIDDEN", f"You share no room with {user_to_draft(user_id)}, so their presence "
                                             "is not visible to you")
    await hs.legacy.store.change_presence_list(owner, invite, drop)
    return done()
