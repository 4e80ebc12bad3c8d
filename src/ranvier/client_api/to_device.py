"""Send-to-device messaging: PUT /sendToDevice/{eventType}/{txnId}."""

from __future__ import annotations

from aiohttp import web

from ranvier.client_api.keys import device_ids, user_map
from ranvier.errors import MatrixError
from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.routing import Routes

routes = Routes()
MAX_ID_LENGTH = 255


@routes.put("/sendToDevice/{event_type}/{txn_id}")
async def send_to_device(request: web.Request) -> web.Response:
    """PUT /sendToDevice/{eventType}/{txnId}: `messages` is {user: {device ID or '*': content}}.

    '*' means every device of that user. One message per device, all of one type; each
    content must be an object (M_BAD_JSON). Unknown local devices are skipped; messages
    for users of other servers go to their server as one `m.direct_to_device` EDU per
    server when federation is on (dropped when it is off). Idempotent per sending device and
    txnId: a repeat sends nothing again. Long-polling /sync of each recipient wakes.
    """
    hs = request.app[HOMESERVER]
    who = await requester(request, allow_guest=True)
    event_type, txn_id = request.match_info["event_type"], request.match_info["txn_id"]
    if not event_type or len(event_type) > MAX_ID_LENGTH or len(txn_id) > MAX_ID_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "Invalid event type or transaction ID")
    body = await read_json(request)
    messages = user_map(body, "messages", dict)
    for devices in messages.values():
        device_ids(list(devices), "messages")
        if not all(isinstance(content, dict) for content in devices.values()):
            raise MatrixError("M_BAD_JSON", "Each message must be an object")
    await hs.to_device.send(who.user_id, who.transaction_scope, txn_id, event_type, messages)
    return json_response({})
