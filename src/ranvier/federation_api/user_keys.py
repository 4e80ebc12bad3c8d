"""This server's users' devices and encryption keys for other servers (server-server API,
"End-to-End Encryption" and "Device Management")."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_response
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


def _local(request: web.Request, user_ids) -> None:
    server = federation(request).server_name
    if any(not isinstance(user_id, str) or domain_of(user_id) != server for user_id in user_ids):
        raise MatrixError("M_INVALID_PARAM", "Only this server's users can be asked about")


@routes.get(f"{FEDERATION}/v1/user/devices/{{user_id}}", versions=None)
async def user_devices(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/user/devices/{userId}: a local user's devices with their
    keys and display names, cross-signing keys, and the device list's stream position
    (400 for another server's user)."""
    await signed_request(request)
    user_id = request.match_info["user_id"]
    _local(request, [user_id])
    return json_response(await request.app[HOMESERVER].keys.devices_for_federation(user_id))


@routes.post(f"{FEDERATION}/v1/user/keys/query", versions=None)
async def query_keys(request: web.Request) -> web.Response:
    """POST /_matrix/federation/v1/user/keys/query: device and cross-signing keys of local
    users (`device_keys`: user -> device IDs, empty for all); 400 for another server's user."""
    _, body = await signed_request(request)
    wanted = field(body, "device_keys", dict, required=True)
    _local(request, wanted)
    if not all(isinstance(devices, list) for devices in wanted.values()):
        raise MatrixError("M_BAD_JSON", "device_keys must map user IDs to lists of device IDs")
    answer = await request.app[HOMESERVER].keys.query("", wanted)
    return json_response({key: answer[key] for key in ("device_keys", "master_keys", "self_signing_keys")})


@routes.post(f"{FEDERATION}/v1/user/keys/claim", versions=None)
async def claim_keys(request: web.Request) -> web.Response:
    """POST /_matrix/federation/v1/user/keys/claim: one key per listed device of local users
    (`one_time_keys`: user -> device -> algorithm), each handed out once; 400 for another
    server's user."""
    _, body = await signed_request(request)
    wanted = field(body, "one_time_keys", dict, required=True)
    _local(request, wanted)
    if not all(isinstance(devices, dict) and all(isinstance(a, str) for a in devices.values())
               for devices in wanted.values()):
        raise MatrixError("M_BAD_JSON", "one_time_keys must map user IDs to device IDs to algorithms")
    answer = await request.app[HOMESERVER].keys.claim(wanted)
    return json_response({"one_time_keys": answer["one_time_keys"]})
