"""Server administration: whois, and account moderation (locks and suspensions, Matrix 1.18).

Server admins are the accounts made with `ranvier user add --admin`. Authorisation is
checked before any account is looked up, so these endpoints tell nothing to others.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import InvalidIdentifier, parse_user_id
from ranvier.requester import Requester
from ranvier.users.store import Account
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()

async def is_server_admin(request: web.Request, who: Requester) -> bool:
    account = await request.app[HOMESERVER].users.store.get_account(who.user_id)
    return account is not None and account.is_admin


def _local_user(request: web.Request) -> str:
    """The path's user ID; 400 M_INVALID_PARAM unless it is a user of this server."""
    user_id = request.match_info["user_id"]
    try:
        _, domain = parse_user_id(user_id)
    except InvalidIdentifier:
        raise MatrixError("M_INVALID_PARAM", "Not a valid user ID") from None
    if domain != request.app[HOMESERVER].config.server_name:
        raise MatrixError("M_INVALID_PARAM", "User does not belong to the local server")
    return user_id


async def _active_account(request: web.Request, user_id: str) -> Account:
    account = await request.app[HOMESERVER].users.store.get_account(user_id)
    if account is None or account.deactivated:
        raise MatrixError("M_NOT_FOUND", "User not found")
    return account


@routes.get("/admin/whois/{user_id}")
async def whois(request: web.Request) -> web.Response:
    """GET /admin/whois/{userId}: the user's devices, each with its last connection (address,
    time, user agent). For server admins, or about oneself; others 403 M_FORBIDDEN."""
    who = await requester(request)
    user_id = request.match_info["user_id"]
    if user_id != who.user_id and not await is_server_admin(request, who):
        raise MatrixError("M_FORBIDDEN", "Only server admins may look up other users")
    await _active_account(request, _local_user(request))
    return json_response(await request.app[HOMESERVER].users.whois(user_id))


async def _moderation_target(request: web.Request) -> tuple[Requester, str]:
    """(caller, target) of a lock or suspension request: server admins only (403 before any
    lookup), a local target (400 M_INVALID_PARAM)."""
    who = await requester(request)
    if not await is_server_admin(request, who):
        raise MatrixError("M_FORBIDDEN", "Requesting user is not a server administrator")
    return who, _local_user(request)


async def _get_flag(request: web.Request, flag: str) -> web.Response:
    who, user_id = await _moderation_target(request)
    account = await _active_account(request, user_id)
    if account.is_admin and user_id != who.user_id:
        raise MatrixError("M_FORBIDDEN", "The target user is another server administrator")
    return json_response({flag: getattr(account, flag)})


async def _set_flag(request: web.Request, flag: str) -> web.Response:
    who, user_id = await _moderation_target(request)
    body = await read_json(request)
    on = field(body, flag, bool, required=True)
    if user_id == who.user_id:
        raise MatrixError("M_FORBIDDEN", "You cannot change this for your own account")
    account = await _active_account(request, user_id)
    if account.is_admin:
        raise MatrixError("M_FORBIDDEN", "The target user is another server administrator")
    users = request.app[HOMESERVER].users
    setter = users.set_locked if flag == "locked" else users.set_suspended
    if not await setter(user_id, on):
        raise MatrixError("M_NOT_FOUND", "User not found")
    return json_response({flag: on})


@routes.get("/admin/lock/{user_id}", versions=("v1",))
async def get_lock(request: web.Request) -> web.Response:
    """GET /v1/admin/lock/{userId}: whether the account is locked. Server admins only (403);
    a remote user 400 M_INVALID_PARAM; an unknown or deactivated one 404; another admin 403."""
    return await _get_flag(request, "locked")


@routes.put("/admin/lock/{user_id}", versions=("v1",))
async def set_lock(request: web.Request) -> web.Response:
    """PUT /v1/admin/lock/{userId} `{"locked": bool}`: lock an account or unlock it, stored
    durably and in force at once; idempotent. Server admins only, not for their own
    account nor another admin's (403); remote 400 M_INVALID_PARAM; unknown or deactivated
    404. A locked account gets 401 M_USER_LOCKED with `soft_logout` on every endpoint but
    /logout and /logout/all (and at /login and /refresh); its tokens are kept."""
    return await _set_flag(request, "locked")


@routes.get("/admin/suspend/{user_id}", versions=("v1",))
async def get_suspension(request: web.Request) -> web.Response:
    """GET /v1/admin/suspend/{userId}: whether the account is suspended. Server admins only
    (403); a remote user 400 M_INVALID_PARAM; an unknown or deactivated one 404; another
    admin 403."""
    return await _get_flag(request, "suspended")


@routes.put("/admin/suspend/{user_id}", versions=("v1",))
async def set_suspension(request: web.Request) -> web.Response:
    """PUT /v1/admin/suspend/{userId} `{"suspended": bool}`: suspend an account or lift it,
    stored durably and in force at once; idempotent. Same rules as the lock. A suspended
    account can log in, read, leave, redact its own events, delete devices and deactivate,
    but gets 403 M_USER_SUSPENDED for the spec's list: joining and knocking (room creation
    and upgrades too), inviting, sending events, changing its profile and redacting
    others' events."""
    return await _set_flag(request, "suspended")
