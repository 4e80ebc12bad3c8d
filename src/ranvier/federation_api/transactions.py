"""Transactions: the PDUs and EDUs another server pushes (server-server API, "Transactions")."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.federation_api.common import FEDERATION, federation, signed_request
from ranvier.web.app import large_body
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


@routes.put(f"{FEDERATION}/v1/send/{{txn_id}}", versions=None)
@large_body
async def send_transaction(request: web.Request) -> web.Response:
    """PUT /_matrix/federation/v1/send/{txnId}: at most 50 PDUs and 100 EDUs (else 413
    M_TOO_LARGE), from the signing server only (`origin` must be it, else 403). Each PDU's
    result is keyed by its event ID: `{}` when taken (a rejected event is taken), an
    `error` when dropped (bad format or signature, server ACL, a room this server is not
    in). A repeated transaction ID gets the first answer again."""
    origin, body = await signed_request(request)
    if body.get("origin", origin) != origin:
        raise MatrixError("M_FORBIDDEN", "The transaction's origin is not the server that signed it")
    return json_response(await federation(request).transaction(origin, request.match_info["txn_id"], body))
