"""Messages and feedback of the draft: PUT/GET /rooms/$room_id/messages/$from/$msg_id,
PUT/GET .../messages/$msgfrom/$msg_id/feedback/$from/$feedback, and the paginated
GET /rooms/$room_id/messages/list (also each room's messages in /im/sync)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.legacy_api.forms import (MESSAGE, SERVER_KEYS, compressed_feedback, feedback_content, has_draft_form,
                                      message)
from ranvier.legacy_api.ids import resolve_room, rooms_to_draft, user_from_draft
from ranvier.legacy_api.pagination import END, START, PageRequest, bad_pagination, page_request, query_flag
from ranvier.legacy_api.routing import DraftRoutes, done
from ranvier.legacy_api.store import Feedback
from ranvier.rooms.store import EventRow
from ranvier.rooms.visibility import is_visible
from ranvier.sync.receipts import READ
from ranvier.rooms.tokens import RoomPosition, parse_room_token, position_after, room_token
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field

routes = DraftRoutes()

#: The draft's msgtypes and the keys each requires (m.file has no section in the draft; it
#: takes a url like the other attachments).
MSGTYPES: dict[str, tuple[str, ...]] = {
    "m.text": ("body",), "m.emote": ("body",), "m.image": ("url",), "m.audio": ("url",), "m.video": ("url",),
    "m.location": ("geo_uri",), "m.file": ("url",),
}
#: Optional keys of the draft's messages, with their JSON types.
OPTIONAL_KEYS: dict[str, type] = {
    "body": str, "sender_ts": int, "info": dict, "url": str, "geo_uri": str, "thumbnail_url": str,
    "thumbnail_info": dict,
}
FEEDBACK_KINDS = ("d", "r")
MAX_MSG_ID_BYTES = 255
#: Timestamps and positions are stored as 64-bit integers; JSON numbers stay within 2^53.
MAX_JSON_INTEGER = 2**53 - 1
MAX_POSITION = 2**62
#: The start of every room's timeline, as a token.
ROOM_START = room_token((0, 0))


def draft_message_content(body: dict[str, Any]) -> dict[str, Any]:
    """A message's content checked against the draft: a msgtype of its list (or the short
    form the draft's example sends, "text" for "m.text") with its required keys, or a
    namespaced msgtype of another spec; keys of the types the draft gives. The server's
    own keys (from, hs_ts, hsob_ts, hsib_ts) are dropped from the content."""
    msgtype = field(body, "msgtype", str, required=True)
    if f"m.{msgtype}" in MSGTYPES:
        msgtype = f"m.{msgtype}"
    elif msgtype not in MSGTYPES and "." not in msgtype:
        raise MatrixError("M_BAD_JSON", f"msgtype must be one of {', '.join(MSGTYPES)} or a namespaced type")
    for key in MSGTYPES.get(msgtype, ()):
        field(body, key, str, required=True)
    for key, kind in OPTIONAL_KEYS.items():
        field(body, key, kind)
    content = {key: value for key, value in body.items() if key not in SERVER_KEYS}
    content["msgtype"] = msgtype
    return content


def _msg_id(request: web.Request) -> str:
    msg_id = request.match_info["msg_id"]
    if len(msg_id.encode()) > MAX_MSG_ID_BYTES:  # a NUL never gets here (web/app.py refuses it)
        raise MatrixError("M_BAD_JSON", f"A msg_id is at most {MAX_MSG_ID_BYTES} bytes")
    return msg_id


async def _message(request: web.Request, who_id: str, room_id: str, sender: str, msg_id: str) -> EventRow:
    """The message `sender` sent with `msg_id` (one sent through today's API has its event ID
    as msg_id), if the caller may see it; else M_NOT_FOUND (or M_FORBIDDEN for strangers)."""
    hs = request.app[HOMESERVER]
    history = await hs.timeline.reader_history(room_id, who_id)
    event_id = await hs.legacy.store.event_of_msg_id(room_id, sender, msg_id)
    if event_id is None and msg_id.startswith("$"):
        event_id = msg_id
    row = (await hs.rooms.store.get_event_rows([event_id])).get(event_id) if event_id else None
    if (row is None or row.event.room_id != room_id or row.event.sender != sender or row.event.type != MESSAGE
            or not has_draft_form(row.event, bool(row.redacted_by)) or not is_visible(row, who_id, history)):
        raise MatrixError("M_NOT_FOUND", "No such message")
    return row


@routes.put("/rooms/{room_id}/messages/{from}/{msg_id}")
async def send_message(request: web.Request) -> web.Response:
    """PUT .../messages/$from/$msg_id: send a message (members who may post). $from is
    replaced by the caller; a msg_id the caller used in the room before changes nothing."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    content = draft_message_content(await read_json(request))
    msg_id = _msg_id(request)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    hs.limits.message.check(who.user_id)
    async with hs.legacy.claiming_msg_id(room_id, who.user_id, msg_id) as earlier:
        if earlier is None:
            await hs.rooms.send_event(who.user_id, who.device_id, room_id, MESSAGE, content)
    return done()


@routes.get("/rooms/{room_id}/messages/{from}/{msg_id}")
async def get_message(request: web.Request) -> web.Response:
    """GET .../messages/$from/$msg_id: the message's content, for those who may see it."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    sender = user_from_draft(request.match_info["from"], hs.config.server_name)
    row = await _message(request, who.user_id, room_id, sender, _msg_id(request))
    return json_response(row.event.content)


def _feedback_kind(request: web.Request) -> str:
    kind = request.match_info["feedback"]
    if kind not in FEEDBACK_KINDS:
        raise MatrixError("M_BAD_JSON", "feedback is d (delivered) or r (read)")
    return kind


@routes.put("/rooms/{room_id}/messages/{msgfrom}/{msg_id}/feedback/{from}/{feedback}")
async def send_feedback(request: web.Request) -> web.Response:
    """PUT .../feedback/$from/$feedback: delivery (d) or read (r) feedback on a message, by
    a joined member ($from is replaced by the caller), with an optional sender_ts. A read
    feedback also moves the caller's read receipt (it never moves back). Giving the same
    feedback again changes nothing."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request, allow_empty=True)
    sender_ts = field(body, "sender_ts", int)
    if sender_ts is not None and not 0 <= sender_ts <= MAX_JSON_INTEGER:
        raise MatrixError("M_BAD_JSON", "sender_ts must be a timestamp in milliseconds")
    kind = _feedback_kind(request)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    msgfrom = user_from_draft(request.match_info["msgfrom"], hs.config.server_name)
    row = await _message(request, who.user_id, room_id, msgfrom, _msg_id(request))
    if who.user_id not in (await hs.rooms.head(room_id)).joined:
        raise MatrixError("M_FORBIDDEN", "You are not joined to this room")
    if kind == "r":
        await hs.receipts.send(who.user_id, room_id, READ, row.event.event_id, None)
    await hs.legacy.add_feedback(room_id, row.event.event_id, row.stream_ordering, who.user_id, kind, sender_ts,
                                 int(time.time() * 1000))
    return done()


@routes.get("/rooms/{room_id}/messages/{msgfrom}/{msg_id}/feedback/{from}/{feedback}")
async def get_feedback(request: web.Request) -> web.Response:
    """GET .../feedback/$from/$feedback: the content ({sender_ts}) of the feedback $from gave;
    a read receipt of today's API reads as an "r" feedback with no sender_ts."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    kind = _feedback_kind(request)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    msgfrom = user_from_draft(request.match_info["msgfrom"], hs.config.server_name)
    giver = user_from_draft(request.match_info["from"], hs.config.server_name)
    row = await _message(request, who.user_id, room_id, msgfrom, _msg_id(request))
    for feedback in (await feedback_on(request, [row])).get(row.event.event_id, []):
        if feedback.user_id == giver and feedback.kind == kind:
            return json_response(feedback_content(feedback))
    raise MatrixError("M_NOT_FOUND", "No such feedback")


@routes.get("/rooms/{room_id}/messages/list")
async def message_list(request: web.Request) -> web.Response:
    """GET /rooms/$room_id/messages/list: the room's messages as the pagination streaming API
    pages them (tokens are positions in the room's timeline), for those who may read the
    room; feedback=true bundles each message's compressed feedback. Bad from/to/limit/
    feedback: M_BAD_PAGINATION."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id = await resolve_room(hs.rooms, request.match_info["room_id"])
    await hs.timeline.reader_history(room_id, who.user_id)
    pages = await message_pages(request, who.user_id, [room_id], page_request(request),
                                feedback=query_flag(request, "feedback"))
    return json_response(pages[room_id])


# -- shared with /im/sync and the event stream --------------------------------------------

async def feedback_on(request: web.Request, rows: list[EventRow]) -> dict[str, list[Feedback]]:
    """event_id -> the feedback on each of these messages, oldest first: what draft clients
    gave, and today's read receipts pointing at the message (one per reader)."""
    hs = request.app[HOMESERVER]
    event_ids = [row.event.event_id for row in rows]
    found: dict[str, list[Feedback]] = {}
    given = await hs.legacy.store.feedback_on(event_ids)
    read = {(feedback.event_id, feedback.user_id) for feedback in given if feedback.kind == "r"}
    for receipt in await hs.receipts.read_receipts_at({row.event.room_id for row in rows}, event_ids):
        if (receipt.event_id, receipt.user_id) not in read:
            read.add((receipt.event_id, receipt.user_id))
            given.append(Feedback.of_receipt(receipt, receipt.event_stream_ordering))
    for feedback in sorted(given, key=lambda feedback: feedback.hs_ts):
        found.setdefault(feedback.event_id, []).append(feedback)
    return found


def _room_position(token: str) -> RoomPosition | None:
    if token in (START, END):
        return None
    try:
        position = parse_room_token(token)
    except MatrixError:
        position = None
    if position is None or not all(0 <= part < MAX_POSITION for part in position):
        raise bad_pagination(f"{token!r} is not a token of a room's messages")
    return position


async def message_pages(request: web.Request, user_id: str, room_ids: list[str], page: PageRequest, *,
                        feedback: bool) -> dict[str, dict[str, Any]]:
    """room_id -> {chunk, start, end}: a page of each room's messages in the draft's form,
    all rooms read together. `start` is the boundary before the page's earliest message and
    `end` the one after its latest, so from=start&to=START continues backwards and
    from=end&to=END forwards; history the reader may not see is skipped."""
    hs = request.app[HOMESERVER]
    from_position, to_position = _room_position(page.from_token), _room_position(page.to_token)
    backwards = page.backwards(lambda: to_position < from_position)
    lower, upper = (to_position, from_position) if backwards else (from_position, to_position)
    # Going back from START or on from END there is nothing to read.
    if page.from_token == (START if backwards else END) or not page.limit:
        pages: dict[str, list[EventRow]] = {room_id: [] for room_id in room_ids}
    else:
        pages = await hs.rooms.store.pages_per_room(room_ids, event_type=MESSAGE, lower=lower, upper=upper,
                                                    backwards=backwards, limit=page.limit)
    seen = [row for rows in pages.values() for row in rows]
    histories = await hs.sync.queries.membership_histories(user_id, [room_id for room_id in room_ids if pages[room_id]])
    msg_ids = await hs.legacy.store.msg_ids([row.event.event_id for row in seen])
    names = await rooms_to_draft(hs.rooms, room_ids)
    bundles = await feedback_on(request, seen) if feedback and seen else {}
    result = {}
    for room_id, rows in pages.items():
        chunk = []
        for row in rows:
            if has_draft_form(row.event, False) and is_visible(row, user_id, histories[room_id]):
                data = message(row.event, names[room_id], msg_ids.get(row.event.event_id))
                if feedback:
                    data["feedback"] = [compressed_feedback(item) for item in bundles.get(row.event.event_id, [])]
                chunk.append(data)
        result[room_id] = {"chunk": chunk, **await _page_tokens(request, room_id, rows, page, backwards)}
    return result


async def _page_tokens(request: web.Request, room_id: str, rows: list[EventRow], page: PageRequest,
                       backwards: bool) -> dict[str, str]:
    """start and end of a room's page: the boundaries around what was read (a full page may
    go on), or the far bound asked for (a page that came short reached it)."""
    hs = request.app[HOMESERVER]
    head = await hs.rooms.head(room_id)

    def concrete(token: str) -> str:
        if token == START:
            return ROOM_START
        if token == END:
            return room_token(position_after((head.depth, hs.rooms.positions.current)))
        return token

    near = concrete(page.from_token)
    if not page.limit:
        far = near
    elif len(rows) == page.limit:
        far = room_token(rows[-1].key) if backwards else room_token(position_after(rows[-1].key))
    else:
        far = concrete(page.to_token)
    return {"start": far, "end": near} if backwards else {"start": near, "end": far}
