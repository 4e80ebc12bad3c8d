"""Server-side key backups: /room_keys/version[/{version}] and /room_keys/keys[/{roomId}[/{sessionId}]]."""

from __future__ import annotations

from aiohttp import web

from ranvier.e2ee.backup import check_room_id, check_session_id, key_json, parse_room_key, sessions_json, version_json
from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_str
from ranvier.web.routing import Routes

routes = Routes()


@routes.post("/room_keys/version")
async def create_version(request: web.Request) -> web.Response:
    """POST /room_keys/version: a new backup, which becomes the current one. The algorithm
    must be m.megolm_backup.v1.curve25519-aes-sha2 (M_INVALID_PARAM), auth_data an object.
    Version numbers are never reused, even after a delete.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    version = await hs.key_backup.create_version(who.user_id, body.get("algorithm"), body.get("auth_data"))
    return json_response({"version": version})


@routes.get("/room_keys/version")
async def current_version(request: web.Request) -> web.Response:
    """GET /room_keys/version: the current backup with its key count and etag; M_NOT_FOUND if none."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    return json_response(version_json(await hs.key_backup.version(who.user_id)))


@routes.get("/room_keys/version/{version}")
async def get_version(request: web.Request) -> web.Response:
    """GET /room_keys/version/{version}: that backup; M_NOT_FOUND if it does not exist or was deleted."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    return json_response(version_json(await hs.key_backup.version(who.user_id, request.match_info["version"])))


@routes.put("/room_keys/version/{version}")
async def update_version(request: web.Request) -> web.Response:
    """PUT /room_keys/version/{version}: replace auth_data. The algorithm must stay the
    same and a `version` in the body must equal the path's (M_INVALID_PARAM); an unknown
    version is M_NOT_FOUND.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    await hs.key_backup.update_version(who.user_id, request.match_info["version"], body)
    return json_response({})


@routes.delete("/room_keys/version/{version}")
async def delete_version(request: web.Request) -> web.Response:
    """DELETE /room_keys/version/{version}: the backup and all its keys. Deleting it again
    succeeds; a version that never existed is M_NOT_FOUND.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request)
    await hs.key_backup.delete_version(who.user_id, request.match_info["version"])
    return json_response({})


def _version(request: web.Request) -> str:
    return query_str(request, "version", required=True)


def _path_ids(request: web.Request) -> tuple[str | None, str | None]:
    room_id, session_id = request.match_info.get("room_id"), request.match_info.get("session_id")
    return (check_room_id(room_id) if room_id is not None else None,
            check_session_id(session_id) if session_id is not None else None)


@routes.put("/room_keys/keys")
async def put_all_keys(request: web.Request) -> web.Response:
    """PUT /room_keys/keys?version=: {rooms: {room: {sessions: {session: key data}}}}.

    Keys go into the current backup only: another version is 403
    M_WRONG_ROOM_KEYS_VERSION with `current_version`, no backup at all M_NOT_FOUND. An
    uploaded key replaces a stored one only if it is verified and the stored one not,
    else if its first_message_index is lower, else if its forwarded_count is lower.
    Answers the backup's new etag (changed by every change) and key count.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request)
    version = _version(request)
    rooms = field(await read_json(request), "rooms", dict, required=True)
    keys = []
    for room_id, room in rooms.items():
        sessions = room.get("sessions") if isinstance(room, dict) else None
        if not isinstance(sessions, dict):
            raise MatrixError("M_BAD_JSON", "Each room must hold a sessions object")
        keys += [parse_room_key(room_id, session_id, data) for session_id, data in sessions.items()]
    return json_response(await hs.key_backup.put_keys(who.user_id, version, keys))


@routes.put("/room_keys/keys/{room_id}")
async def put_room_keys(request: web.Request) -> web.Response:
    """PUT /room_keys/keys/{roomId}?version=: {sessions: {session: key data}}, as PUT /room_keys/keys."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    version = _version(request)
    room_id, _ = _path_ids(request)
    sessions = field(await read_json(request), "sessions", dict, required=True)
    keys = [parse_room_key(room_id, session_id, data) for session_id, data in sessions.items()]
    return json_response(await hs.key_backup.put_keys(who.user_id, version, keys))


@routes.put("/room_keys/keys/{room_id}/{session_id}")
async def put_session_key(request: web.Request) -> web.Response:
    """PUT /room_keys/keys/{roomId}/{sessionId}?version=: one key's data, as PUT /room_keys/keys."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    version = _version(request)
    room_id, session_id = _path_ids(request)
    key = parse_room_key(room_id, session_id, await read_json(request))
    return json_response(await hs.key_backup.put_keys(who.user_id, version, [key]))


@routes.get("/room_keys/keys")
async def get_all_keys(request: web.Request) -> web.Response:
    """GET /room_keys/keys?version=: every key of that backup ({"rooms": {}} if none);
    an unknown version is M_NOT_FOUND."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    return json_response({"rooms": sessions_json(await hs.key_backup.get_keys(who.user_id, _version(request)))})


@routes.get("/room_keys/keys/{room_id}")
async def get_room_keys(request: web.Request) -> web.Response:
    """GET /room_keys/keys/{roomId}?version=: the room's keys ({"sessions": {}} if none)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id, _ = _path_ids(request)
    keys = await hs.key_backup.get_keys(who.user_id, _version(request), room_id)
    return json_response(sessions_json(keys).get(room_id, {"sessions": {}}))


@routes.get("/room_keys/keys/{room_id}/{session_id}")
async def get_session_key(request: web.Request) -> web.Response:
    """GET /room_keys/keys/{roomId}/{sessionId}?version=: one key; M_NOT_FOUND if it is not there."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id, session_id = _path_ids(request)
    keys = await hs.key_backup.get_keys(who.user_id, _version(request), room_id, session_id)
    if not keys:
        raise MatrixError("M_NOT_FOUND", "No such key in the backup")
    return json_response(key_json(keys[0]))


@routes.delete("/room_keys/keys")
async def delete_all_keys(request: web.Request) -> web.Response:
    """DELETE /room_keys/keys?version=: every key of that backup; answers etag and count."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    return json_response(await hs.key_backup.delete_keys(who.user_id, _version(request)))


@routes.delete("/room_keys/keys/{room_id}")
async def delete_room_keys(request: web.Request) -> web.Response:
    """DELETE /room_keys/keys/{roomId}?version=: the room's keys; answers etag and count."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id, _ = _path_ids(request)
    return json_response(await hs.key_backup.delete_keys(who.user_id, _version(request), room_id))


@routes.delete("/room_keys/keys/{room_id}/{session_id}")
async def delete_session_key(request: web.Request) -> web.Response:
    """DELETE /room_keys/keys/{roomId}/{sessionId}?version=: one key; answers etag and count."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    room_id, session_id = _path_ids(request)
    return json_response(await hs.key_backup.delete_keys(who.user_id, _version(request), room_id, session_id))
