"""What every signed endpoint of the server-server API does first: refuse when federation
is off (404 M_UNRECOGNIZED, as for any endpoint not served) and NUL characters in the path
or query (400), read the JSON body (up to
`MAX_FEDERATION_BODY`: transactions and joins are larger than client requests), and
verify the X-Matrix signature, naming this server as the destination (else 401
M_UNAUTHORIZED)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.signing import SignatureError, verify_signed_json
from ranvier.federation.keys import KeyNotFound
from ranvier.federation.request_auth import parse_authorization, request_json
from ranvier.web.app import HOMESERVER
from ranvier.web.http import json_object

FEDERATION = "/_matrix/federation"
#: The largest body another server may send (50 PDUs of up to 64 KiB, with room to spare).
MAX_FEDERATION_BODY = 8 * 1024 * 1024


def federation(request: web.Request):
    """The federation service; 404 M_UNRECOGNIZED when this server does not federate."""
    service = request.app[HOMESERVER].federation
    if service is None:
        raise MatrixError("M_UNRECOGNIZED", "This server does not federate")
    return service


async def _body(request: web.Request) -> Any:
    if request.method in ("GET", "DELETE"):
        return None
    if (request.content_length or 0) > MAX_FEDERATION_BODY:
        raise MatrixError("M_TOO_LARGE", f"Request body is larger than {MAX_FEDERATION_BODY} bytes")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        raw += chunk
        if len(raw) > MAX_FEDERATION_BODY:
            raise MatrixError("M_TOO_LARGE", f"Request body is larger than {MAX_FEDERATION_BODY} bytes")
    return json_object(raw) if raw.strip() else {}


async def signed_request(request: web.Request) -> tuple[str, dict[str, Any]]:
    """(the origin server, the JSON body, {} for none) of a request another server signed.
    A NUL character in the path or query is refused (400): no identifier holds one."""
    service = federation(request)
    if any("\x00" in value for value in (*request.match_info.values(), *request.query.values())):
        raise MatrixError("M_INVALID_PARAM", "The request's path or query holds a NUL character")
    body = await _body(request)
    header = request.headers.get("Authorization", "")
    try:
        auth = parse_authorization(header)
    except ValueError as exc:
        raise MatrixError("M_UNAUTHORIZED", f"An X-Matrix signature is needed: {exc}") from None
    if auth.destination is not None and auth.destination != service.server_name:
        raise MatrixError("M_UNAUTHORIZED", "The request was signed for another server")
    signed = request_json(request.method, request.raw_path, auth.origin, service.server_name, body)
    signed["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
    try:
        key = await service.keys.verify_key(auth.origin, auth.key_id)
        verify_signed_json(signed, auth.origin, auth.key_id, key)
    except (KeyNotFound, SignatureError, ValueError):
        raise MatrixError("M_UNAUTHORIZED", "The request's signature does not verify") from None
    return auth.origin, body if body is not None else {}
