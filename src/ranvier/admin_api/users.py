"""Admin API: user accounts, as Synapse's user admin API shapes them. Local users only.

Not served: third-party IDs and external (SSO) IDs (a non-empty list is refused, an empty
one accepted) and user types (only null). `locked` and `suspended` are the flags of the
client API's account moderation (`/_matrix/client/v1/admin/lock|suspend`), `erased` that
of deactivation with erasure.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.admin_api.common import (SYNAPSE_ADMIN, AdminRoutes, direction, existing_user, local_user_id,
                                      next_token, paging)
from ranvier.errors import MatrixError
from ranvier.admin_api.media import media_json
from ranvier.media.store import MEDIA_ORDER
from ranvier.requester import Requester
from ranvier.users.admin_store import USER_ORDER, AccountSummary, UserQuery
from ranvier.users.service import new_device_id
from ranvier.users.tokens import hash_token, new_secret, now_ms
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_bool, query_str

routes = AdminRoutes()

V1, V2 = f"{SYNAPSE_ADMIN}/v1", f"{SYNAPSE_ADMIN}/v2"


def _user_json(account: AccountSummary) -> dict[str, Any]:
    return {
        "name": account.user_id,
        "is_guest": account.is_guest,
        "admin": account.is_admin,
        "user_type": None,
        "deactivated": account.deactivated,
        "shadow_banned": account.shadow_banned,
        "locked": account.locked,
        "suspended": account.suspended,
        "displayname": account.displayname,
        "avatar_url": account.avatar_url,
        "creation_ts": account.created_ts,
        "last_seen_ts": account.last_seen_ts,
    }


async def _details(request: web.Request, user_id: str) -> dict[str, Any]:
    hs = request.app[HOMESERVER]
    account = await hs.user_admin.account(user_id)
    if account is None:
        raise MatrixError("M_NOT_FOUND", "User not found")
    service = hs.appservices.owner_of_user(user_id)
    return {**_user_json(account), "erased": user_id in hs.erasure.erased,
            "threepids": [], "external_ids": [], "appservice_id": service.id if service else None,
            "consent_server_notice_sent": None, "consent_version": None, "consent_ts": None}


def _optional_bool(request: web.Request, name: str) -> bool | None:
    return query_bool(request, name, False) if name in request.query else None


@routes.get(f"{V2}/users")
async def list_users(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v2/users: local accounts, `from`/`limit` offset paging
    (`next_token` while more follow), `name` (in the localpart or display name) or
    `user_id` (in the user ID), `guests` (default true), `deactivated` (default false),
    `admins` (absent: both), `order_by` (name, is_guest, admin, user_type, deactivated,
    shadow_banned, displayname, avatar_url, creation_ts, last_seen_ts) and `dir`."""
    hs = request.app[HOMESERVER]
    start, limit = paging(request)
    query = UserQuery(
        name=query_str(request, "name") or None, user_id=query_str(request, "user_id") or None,
        guests=query_bool(request, "guests", True), deactivated=query_bool(request, "deactivated", False),
        admins=_optional_bool(request, "admins"),
    )
    order = query_str(request, "order_by", default="name")
    if order not in USER_ORDER:
        raise MatrixError("M_INVALID_PARAM", f"order_by must be one of {', '.join(USER_ORDER)}")
    accounts, total = await hs.user_admin.list_accounts(query, order_by=order, backwards=direction(request),
                                                        start=start, limit=limit)
    return json_response({"users": [_user_json(a) for a in accounts], "total": total,
                          **next_token(start, len(accounts), total)})


@routes.get(f"{V2}/users/{{user_id}}")
async def get_user(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v2/users/{userId}: one account (404 M_NOT_FOUND if unknown);
    `appservice_id` names the application service whose namespaces hold it."""
    user_id = local_user_id(request, request.match_info["user_id"])
    return json_response(await _details(request, user_id))


def _check_unsupported(body: dict[str, Any]) -> None:
    for name in ("threepids", "external_ids"):
        if field(body, name, list):
            raise MatrixError("M_INVALID_PARAM", f"{name} are not supported by this server")
    if "user_type" in body and body["user_type"] is not None:
        raise MatrixError("M_INVALID_PARAM", "user types are not supported by this server")


@routes.put(f"{V2}/users/{{user_id}}")
async def put_user(request: web.Request, admin: Requester) -> web.Response:
    """PUT /_synapse/admin/v2/users/{userId}: create the account (201) or change it (200):
    `password` (devices logged out unless `logout_devices` is false), `displayname` and
    `avatar_url` ("" removes, an mxc:// URI otherwise; announced in the user's rooms),
    `admin`, `deactivated` (true deactivates and leaves every room; false reactivates and
    then needs `password`), `locked` (refused with 401 M_USER_LOCKED everywhere but logout).
    Every field is checked before anything changes."""
    hs = request.app[HOMESERVER]
    user_id = local_user_id(request, request.match_info["user_id"])
    body = await read_json(request)
    _check_unsupported(body)
    password = field(body, "password", str)
    logout_devices = field(body, "logout_devices", bool, default=True)
    displayname = field(body, "displayname", str, default="") if "displayname" in body else None
    avatar_url = field(body, "avatar_url", str, default="") if "avatar_url" in body else None
    make_admin = field(body, "admin", bool)
    deactivated = field(body, "deactivated", bool)
    locked = field(body, "locked", bool)
    if avatar_url and not avatar_url.startswith("mxc://"):
        raise MatrixError("M_INVALID_PARAM", "avatar_url must be an mxc:// URI")
    if password is not None:
        hs.users.check_password_strength(password)
    account = await hs.users.store.get_account(user_id)
    created = account is None
    if created:
        if deactivated:
            raise MatrixError("M_INVALID_PARAM", "A new account cannot be deactivated")
        localpart = user_id[1:].split(":", 1)[0]
        await hs.users.register(localpart, password, admin=bool(make_admin), inhibit_login=True)
    else:
        if deactivated is False and account.deactivated:
            if password is None:
                raise MatrixError("M_INVALID_PARAM", "Reactivating an account needs a password")
            await hs.user_admin.reactivate(user_id, await hs.users.passwords.hash(password))
        elif password is not None:
            await hs.users.store.set_password_hash(user_id, await hs.users.passwords.hash(password), keep_device=None,
                                                   logout_devices=logout_devices)
            if logout_devices:
                hs.users.tokens.forget_user(user_id)
        if make_admin is not None:
            await hs.user_admin.set_admin(user_id, make_admin)
    if displayname is not None:
        await hs.profiles.set_field(user_id, "displayname", displayname or None)
    if avatar_url is not None:
        await hs.profiles.set_field(user_id, "avatar_url", avatar_url or None)
    if locked is not None:
        await hs.users.set_locked(user_id, locked)
    if deactivated and not account.deactivated:
        await _deactivate(hs, user_id)
    return json_response(await _details(request, user_id), 201 if created else 200)


async def _deactivate(hs, user_id: str) -> None:
    await hs.users.deactivate(user_id)
    await hs.rooms.leave_all_rooms(user_id)


@routes.post(f"{V1}/deactivate/{{user_id}}")
async def deactivate(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/deactivate/{userId}: deactivate for good: devices and tokens
    revoked, password removed, every room left, invites and knocks withdrawn, display
    name and avatar cleared. With `erase: true` the profile and account data are deleted
    and the user's events are served redacted to users who were not joined when they were
    sent. Repeating it is harmless."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    body = await read_json(request, allow_empty=True)
    erase = field(body, "erase", bool, default=False)
    await _deactivate(hs, account.user_id)
    if erase:
        await hs.erasure.erase(account.user_id)
    return json_response({"id_server_unbind_result": "success"})


@routes.post(f"{V1}/reset_password/{{user_id}}")
async def reset_password(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/reset_password/{userId}: set `new_password` (the password
    rules apply), logging out every device unless `logout_devices` is false."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    body = await read_json(request)
    new_password = field(body, "new_password", str, required=True)
    logout_devices = field(body, "logout_devices", bool, default=True)
    if account.deactivated:
        raise MatrixError("M_INVALID_PARAM", "The account is deactivated; reactivate it with PUT /v2/users")
    hs.users.check_password_strength(new_password)
    await hs.users.store.set_password_hash(account.user_id, await hs.users.passwords.hash(new_password),
                                           keep_device=None, logout_devices=logout_devices)
    if logout_devices:
        hs.users.tokens.forget_user(account.user_id)
    return json_response({})


@routes.get(f"{V1}/users/{{user_id}}/admin")
async def get_admin(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/users/{userId}/admin: whether the user is a server admin."""
    account = await existing_user(request, request.match_info["user_id"])
    return json_response({"admin": account.is_admin})


@routes.put(f"{V1}/users/{{user_id}}/admin")
async def set_admin(request: web.Request, admin: Requester) -> web.Response:
    """PUT /_synapse/admin/v1/users/{userId}/admin: make (`admin: true`) or unmake a
    server admin; an admin cannot demote themself (400)."""
    account = await existing_user(request, request.match_info["user_id"])
    make_admin = field(await read_json(request), "admin", bool, required=True)
    if account.user_id == admin.user_id and not make_admin:
        raise MatrixError("M_UNKNOWN", "You cannot demote yourself", status=400)
    await request.app[HOMESERVER].user_admin.set_admin(account.user_id, make_admin)
    return json_response({})


@routes.get(f"{V1}/whois/{{user_id}}")
async def whois(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/whois/{userId}: each device's last connection (address,
    time, user agent; recorded at most once a minute per device)."""
    account = await existing_user(request, request.match_info["user_id"])
    devices: dict[str, Any] = {}
    for device_id, _name, ip, last_seen, user_agent in await request.app[HOMESERVER].users.store.list_devices(
            account.user_id):
        connections = [{"ip": ip, "last_seen": last_seen, "user_agent": user_agent}] if last_seen else []
        devices[device_id] = {"sessions": [{"connections": connections}]}
    return json_response({"user_id": account.user_id, "devices": devices})


def _device_json(user_id: str, row: tuple[Any, ...]) -> dict[str, Any]:
    device_id, display_name, ip, last_seen, user_agent = row
    device = {"device_id": device_id, "last_seen_ip": ip, "last_seen_user_agent": user_agent,
              "last_seen_ts": last_seen, "user_id": user_id, "dehydrated": False}
    if display_name is not None:
        device["display_name"] = display_name
    return device


@routes.get(f"{V2}/users/{{user_id}}/devices")
async def list_devices(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v2/users/{userId}/devices: every device, with `total`."""
    account = await existing_user(request, request.match_info["user_id"])
    rows = await request.app[HOMESERVER].users.store.list_devices(account.user_id)
    return json_response({"devices": [_device_json(account.user_id, row) for row in rows], "total": len(rows)})


@routes.get(f"{V2}/users/{{user_id}}/devices/{{device_id}}")
async def get_device(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}: one device (404 if unknown)."""
    account = await existing_user(request, request.match_info["user_id"])
    row = await request.app[HOMESERVER].users.store.get_device(account.user_id, request.match_info["device_id"])
    if row is None:
        raise MatrixError("M_NOT_FOUND", "Unknown device")
    return json_response(_device_json(account.user_id, row))


@routes.put(f"{V2}/users/{{user_id}}/devices/{{device_id}}")
async def rename_device(request: web.Request, admin: Requester) -> web.Response:
    """PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}: set `display_name`
    (absent: unchanged); 404 for an unknown device."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    body = await read_json(request, allow_empty=True)
    device_id = request.match_info["device_id"]
    if "display_name" in body:
        await hs.users.rename_device(account.user_id, device_id, field(body, "display_name", str))
    else:
        await hs.users.get_device(account.user_id, device_id)
    return json_response({})


@routes.delete(f"{V2}/users/{{user_id}}/devices/{{device_id}}")
async def delete_device(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}: delete the device and
    its tokens (a device already gone is not an error)."""
    account = await existing_user(request, request.match_info["user_id"])
    await request.app[HOMESERVER].users.delete_devices(account.user_id, [request.match_info["device_id"]])
    return json_response({})


@routes.post(f"{V2}/users/{{user_id}}/delete_devices")
async def delete_devices(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v2/users/{userId}/delete_devices: delete the `devices` listed
    (an array of device ID strings) and their tokens."""
    account = await existing_user(request, request.match_info["user_id"])
    devices = field(await read_json(request), "devices", list, required=True)
    if not all(isinstance(device, str) for device in devices):
        raise MatrixError("M_BAD_JSON", "devices must be an array of device IDs")
    await request.app[HOMESERVER].users.delete_devices(account.user_id, devices)
    return json_response({})


@routes.get(f"{V1}/users/{{user_id}}/joined_rooms")
async def joined_rooms(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/users/{userId}/joined_rooms: the rooms the user is joined to."""
    account = await existing_user(request, request.match_info["user_id"])
    memberships = await request.app[HOMESERVER].rooms.user_memberships(account.user_id)
    rooms = sorted(room_id for room_id, (membership, _) in memberships.items() if membership == "join")
    return json_response({"joined_rooms": rooms, "total": len(rooms)})


@routes.get(f"{V1}/users/{{user_id}}/memberships")
async def memberships(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/users/{userId}/memberships: room -> the user's latest
    membership, for every room they have not forgotten."""
    account = await existing_user(request, request.match_info["user_id"])
    memberships = await request.app[HOMESERVER].rooms.user_memberships(account.user_id)
    return json_response({"memberships": {room_id: m for room_id, (m, _) in sorted(memberships.items())}})


def _media_order(request: web.Request) -> tuple[str, bool]:
    """Synapse's default is newest first; `order_by`/`dir` change it."""
    if "order_by" not in request.query and "dir" not in request.query:
        return "created_ts", True
    order = query_str(request, "order_by", default="created_ts")
    if order not in MEDIA_ORDER:
        raise MatrixError("M_INVALID_PARAM", f"order_by must be one of {', '.join(MEDIA_ORDER)}")
    return order, direction(request)


@routes.get(f"{V1}/users/{{user_id}}/media")
async def user_media(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/users/{userId}/media: the user's uploads, newest first by
    default (`order_by`: media_id, upload_name, created_ts, last_access_ts, media_length,
    media_type, quarantined_by, safe_from_quarantine; `dir`), `from`/`limit` paging with an
    integer `next_token`. Access times are not recorded: `last_access_ts` is null."""
    account = await existing_user(request, request.match_info["user_id"])
    start, limit = paging(request)
    order, backwards = _media_order(request)
    media, total = await request.app[HOMESERVER].media.store.media_of_user(
        account.user_id, order_by=order, backwards=backwards, start=start, limit=limit)
    result: dict[str, Any] = {"media": [media_json(m) for m in media], "total": total}
    if start + len(media) < total:
        result["next_token"] = start + len(media)
    return json_response(result)


@routes.delete(f"{V1}/users/{{user_id}}/media")
async def delete_user_media(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v1/users/{userId}/media: delete a page of the user's media
    (same ordering and `limit`, default 100, as the list) with their files when no other
    media shares them."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    start, limit = paging(request)
    order, backwards = _media_order(request)
    media, _ = await hs.media.store.media_of_user(account.user_id, order_by=order, backwards=backwards,
                                                   start=start, limit=limit)
    media_ids = [m.media_id for m in media]
    await hs.media.delete(media_ids)
    return json_response({"deleted_media": media_ids, "total": len(media_ids)})


@routes.post(f"{V1}/users/{{user_id}}/shadow_ban")
async def shadow_ban(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/users/{userId}/shadow_ban: the user's messages, state events
    and invites are answered as if sent, but never stored, so nobody sees them; joins and
    leaves still work. Idempotent."""
    account = await existing_user(request, request.match_info["user_id"])
    await request.app[HOMESERVER].moderation.set_shadow_banned(account.user_id, True)
    return json_response({})


@routes.delete(f"{V1}/users/{{user_id}}/shadow_ban")
async def lift_shadow_ban(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v1/users/{userId}/shadow_ban: lift the shadow ban. Idempotent."""
    account = await existing_user(request, request.match_info["user_id"])
    await request.app[HOMESERVER].moderation.set_shadow_banned(account.user_id, False)
    return json_response({})


def _override_json(override: tuple[int, int] | None) -> dict[str, Any]:
    return {"messages_per_second": override[0], "burst_count": override[1]} if override else {}


@routes.get(f"{V1}/users/{{user_id}}/override_ratelimit")
async def get_ratelimit(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/users/{userId}/override_ratelimit: the user's own message
    and join rate limit, `{}` when they have none."""
    account = await existing_user(request, request.match_info["user_id"])
    return json_response(_override_json(request.app[HOMESERVER].moderation.ratelimit_override(account.user_id)))


@routes.post(f"{V1}/users/{{user_id}}/override_ratelimit")
async def set_ratelimit(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/users/{userId}/override_ratelimit: `messages_per_second` and
    `burst_count` (non-negative integers, default 0; 0 per second lifts the limit) replace
    the configured message and join limits for this user, at once."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    body = await read_json(request, allow_empty=True)
    per_second = field(body, "messages_per_second", int, default=0)
    burst = field(body, "burst_count", int, default=0)
    if per_second < 0 or burst < 0 or per_second > 2**31 or burst > 2**31:
        raise MatrixError("M_INVALID_PARAM", "messages_per_second and burst_count must be non-negative integers")
    await hs.moderation.set_ratelimit_override(account.user_id, per_second, burst)
    return json_response(_override_json((per_second, burst)))


@routes.delete(f"{V1}/users/{{user_id}}/override_ratelimit")
async def delete_ratelimit(request: web.Request, admin: Requester) -> web.Response:
    """DELETE /_synapse/admin/v1/users/{userId}/override_ratelimit: back to the configured
    limits. Idempotent."""
    account = await existing_user(request, request.match_info["user_id"])
    await request.app[HOMESERVER].moderation.delete_ratelimit_override(account.user_id)
    return json_response({})


@routes.get(f"{V1}/users/{{user_id}}/accountdata")
async def account_data(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/users/{userId}/accountdata: the user's global account data
    and per-room account data, by type."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    global_events, room_events = await hs.account_data.changes(account.user_id, 0, hs.account_data.position)
    return json_response({"account_data": {
        "global": {event["type"]: event["content"] for event in global_events},
        "rooms": {room_id: {event["type"]: event["content"] for event in events}
                  for room_id, events in room_events.items()},
    }})


@routes.post(f"{V1}/users/{{user_id}}/login")
async def login_as(request: web.Request, admin: Requester) -> web.Response:
    """POST /_synapse/admin/v1/users/{userId}/login: an access token to act as the user,
    on a device that their device list does not show, valid until `valid_until_ms` (or
    until logged out). Not for oneself (400), nor for a deactivated account (403)."""
    hs = request.app[HOMESERVER]
    account = await existing_user(request, request.match_info["user_id"])
    body = await read_json(request, allow_empty=True)
    valid_until = field(body, "valid_until_ms", int)
    if account.user_id == admin.user_id:
        raise MatrixError("M_UNKNOWN", "Cannot use the admin API to log in as yourself", status=400)
    if account.deactivated:
        raise MatrixError("M_USER_DEACTIVATED", "This account has been deactivated")
    now = now_ms()
    if valid_until is not None and valid_until <= now:
        raise MatrixError("M_INVALID_PARAM", "valid_until_ms must be in the future")
    token = new_secret("rva_")
    await hs.user_admin.add_token_without_device(hash_token(token), account.user_id, new_device_id(), now,
                                                  valid_until)
    return json_response({"access_token": token})


@routes.get(f"{V1}/username_available")
async def username_available(request: web.Request, admin: Requester) -> web.Response:
    """GET /_synapse/admin/v1/username_available?username=: `{"available": true}`, or 400
    M_USER_IN_USE / M_INVALID_USERNAME, whatever the registration mode."""
    localpart = query_str(request, "username", required=True)
    await request.app[HOMESERVER].users.check_username(localpart)
    return json_response({"available": True})
