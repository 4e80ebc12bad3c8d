"""Device management: list, get, rename and delete devices (deleting needs re-authentication)."""

from __future__ import annotations

from aiohttp import web

from ranvier.client_api.login import PASSWORD_FLOWS
from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester, user_interactive_auth
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()


@routes.get("/devices")
async def list_devices(request: web.Request) -> web.Response:
    """GET /devices: the caller's devices (keys left out when unknown, never null); guests too."""
    who = await requester(request, allow_guest=True)
    return json_response({"devices": await request.app[HOMESERVER].users.list_devices(who.user_id)})


@routes.get("/devices/{device_id}")
async def get_device(request: web.Request) -> web.Response:
    """GET /devices/{deviceId}: one of the caller's devices, else 404; guests too."""
    who = await requester(request, allow_guest=True)
    device = await request.app[HOMESERVER].users.get_device(who.user_id, request.match_info["device_id"])
    return json_response(device)


@routes.put("/devices/{device_id}")
async def rename_device(request: web.Request) -> web.Response:
    """PUT /devices/{deviceId}: set or clear (`{}`) the display name of one of the caller's
    devices; a body is required (none: M_NOT_JSON, `null`: M_BAD_JSON); guests too."""
    who = await requester(request, allow_guest=True)
    body = await read_json(request)
    name = field(body, "display_name", str)
    await request.app[HOMESERVER].users.rename_device(who.user_id, request.match_info["device_id"], name)
    return json_response({})


@routes.delete("/devices/{device_id}")
async def delete_device(request: web.Request) -> web.Response:
    """DELETE /devices/{deviceId}: log out and delete one device after re-authentication;
    the UIA session is bound to this device (a session begun for one cannot delete another)."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    device_id = request.match_info["device_id"]
    await hs.users.get_device(who.user_id, device_id)
    body = await read_json(request, allow_empty=True)
    await user_interactive_auth(request, body, who, flows=PASSWORD_FLOWS, operation="delete_devices")
    await hs.users.delete_devices(who.user_id, [device_id])
    return json_response({})


@routes.post("/delete_devices")
async def delete_devices(request: web.Request) -> web.Response:
    """POST /delete_devices: delete several devices after re-authentication; the UIA
    session is bound to this list of devices."""
    hs = request.app[HOMESERVER]
    who = await requester(request)
    body = await read_json(request)
    device_ids = field(body, "devices", list, required=True)
    if not all(isinstance(d, str) for d in device_ids):
        raise MatrixError("M_BAD_JSON", "devices must be a list of device IDs")
    await user_interactive_auth(request, body, who, flows=PASSWORD_FLOWS, operation="delete_devices")
    await hs.users.delete_devices(who.user_id, device_ids)
    return json_response({})
