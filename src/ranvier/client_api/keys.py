"""End-to-end encryption keys: upload, query, claim, changes, cross-signing keys and signatures."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.client_api.login import PASSWORD_FLOWS
from ranvier.e2ee.cross_signing import USAGES
from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_user_id
from ranvier.notify.tokens import SyncToken
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field, query_str
from ranvier.web.routing import Routes

routes = Routes()


def user_map(body: dict[str, Any], name: str, value_type: type) -> dict[str, Any]:
    """A required {user ID: value} object of the body, each value of `value_type`."""
    users = field(body, name, dict, required=True)
    for user_id, value in users.items():
        if not is_valid_user_id(user_id):
            raise MatrixError("M_INVALID_PARAM", f"{user_id!r} in {name} is not a user ID")
        if not isinstance(value, value_type):
            raise MatrixError("M_BAD_JSON", f"Each entry of {name} must be {'a list' if value_type is list else 'an object'}")
    return users


def device_ids(values: list[Any] | dict[str, Any], what: str) -> None:
    if not all(isinstance(value, str) for value in values):
        raise MatrixError("M_BAD_JSON", f"{what} must hold device IDs")


@routes.post("/keys/upload")
async def upload_keys(request: web.Request) -> web.Response:
    """POST /keys/upload: the device's identity keys, one-time keys and fallback keys.

    device_keys must be for the user and device of the access token and signed by the
    device's own ed25519 key (M_INVALID_SIGNATURE). A one-time key ID the device still
    holds with a different key is refused (M_INVALID_PARAM); the same key again is a
    harmless repeat. At most one fallback key per algorithm; a new one replaces the old
    and counts as unused. Answers the device's one-time key counts. An application
    service must name the device it acts from (`device_id`, else 400 M_MISSING_PARAM).
    """
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    if not who.device_id:  # an application service acting without naming a device
        raise MatrixError("M_MISSING_PARAM", "Keys belong to a device: name it with device_id")
    body = await read_json(request, allow_empty=True)
    counts = await hs.keys.upload(who.user_id, who.device_id, field(body, "device_keys", dict),
                                  field(body, "one_time_keys", dict), field(body, "fallback_keys", dict))
    return json_response({"one_time_key_counts": counts})


@routes.post("/keys/query")
async def query_keys(request: web.Request) -> web.Response:
    """POST /keys/query: the identity keys of the listed users' devices (all of them for
    an empty list), with display names, and their cross-signing keys with the signatures
    the requester may see; the user-signing key only for the requester's own user.
    Unknown users and devices are left out; users of other servers are in `failures`.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    body = await read_json(request)
    field(body, "timeout", int)
    wanted = user_map(body, "device_keys", list)
    for devices in wanted.values():
        device_ids(devices, "device_keys")
    return json_response(await hs.keys.query(who.user_id, wanted))


@routes.post("/keys/claim")
async def claim_keys(request: web.Request) -> web.Response:
    """POST /keys/claim: one key of the named algorithm for each listed device. Each
    one-time key is handed out exactly once, however many claims run at once; a device
    with none left gives its fallback key (reported used in its /sync). Devices without
    keys are left out; users of other servers are in `failures`.
    """
    hs = request.app[HOMESERVER]
    await requester(request, allow_guest=True)
    body = await read_json(request)
    field(body, "timeout", int)
    wanted = user_map(body, "one_time_keys", dict)
    for devices in wanted.values():
        device_ids(list(devices), "one_time_keys")
        if not all(isinstance(algorithm, str) and algorithm for algorithm in devices.values()):
            raise MatrixError("M_BAD_JSON", "one_time_keys must map device IDs to algorithm names")
    return json_response(await hs.keys.claim(wanted))


@routes.get("/keys/changes")
async def key_changes(request: web.Request) -> web.Response:
    """GET /keys/changes?from=&to=: between two /sync tokens, the users whose devices or
    keys changed and who share a room with the requester (or who started sharing one),
    and those who no longer share any. Tokens that do not parse are M_INVALID_PARAM.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    since = SyncToken.parse(query_str(request, "from", required=True))
    upto = SyncToken.parse(query_str(request, "to", required=True))
    return json_response(await hs.device_lists.changes_between(who.user_id, since, upto))


@routes.post("/keys/device_signing/upload")
async def upload_cross_signing_keys(request: web.Request) -> web.Response:
    """POST /keys/device_signing/upload: the user's master, self-signing and user-signing
    keys. The self-signing and user-signing keys must be signed by the master key (the
    uploaded one, else the stored one; M_INVALID_SIGNATURE), and with neither there is
    M_MISSING_PARAM. A public key equal to one of the user's device IDs is M_FORBIDDEN.
    Needs user-interactive auth, except for the first upload and for a repeat of the
    stored keys (which changes nothing).
    """
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    uploaded = {usage: body[f"{usage}_key"] for usage in USAGES if body.get(f"{usage}_key") is not None}

    async def authenticate() -> None:
        await hs.users.uia.authenticate(body.get("auth"), flows=PASSWORD_FLOWS, operation="device_signing_upload",
                                        user_id=who.user_id)

    await hs.cross_signing.upload_keys(who.user_id, uploaded, authenticate)
    return json_response({})


@routes.post("/keys/signatures/upload")
async def upload_signatures(request: web.Request) -> web.Response:
    """POST /keys/signatures/upload: {user: {key ID: signed key}}. Accepted: one's own
    devices signed by one's self-signing key, one's master key signed by one's devices,
    other users' master keys signed by one's user-signing key. The signed object must
    equal the stored key but for its signatures. Each refused signature is reported in
    `failures` under its user and key ID (M_INVALID_SIGNATURE, M_NOT_FOUND,
    M_INVALID_PARAM, M_BAD_JSON) and never stored; the others are.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    for user_id, keys in body.items():
        if not is_valid_user_id(user_id):
            raise MatrixError("M_INVALID_PARAM", f"{user_id!r} is not a user ID")
        if not isinstance(keys, dict):
            raise MatrixError("M_BAD_JSON", "Each user's entry must map key IDs to signed keys")
    return json_response({"failures": await hs.cross_signing.upload_signatures(who.user_id, body)})
