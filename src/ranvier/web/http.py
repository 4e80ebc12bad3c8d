"""JSON in and out, with the Matrix errors for bodies that are not what we expect."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import orjson
from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.canonical_json import contains_nul
from ranvier.web.keys import HOMESERVER, MAX_BODY

JSON_TYPE = "application/json"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON_TYPE)


def _body_timeout_s(request: web.Request) -> float:
    return request.app[HOMESERVER].config.limits.request_body_timeout_ms / 1000


def _body_too_slow() -> MatrixError:
    return MatrixError("M_UNKNOWN", "The request body stopped arriving", status=408)


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body part by part as it arrives; a part that keeps the client waiting
    longer than `limits.request_body_timeout_ms` is 408 (aiohttp then closes the
    connection, the body being incomplete)."""
    timeout = _body_timeout_s(request)
    content = request.content
    while True:
        try:
            chunk = await asyncio.wait_for(content.readany(), timeout)
        except TimeoutError:
            raise _body_too_slow() from None
        if not chunk:
            return
        yield chunk


async def read_body(request: web.Request) -> bytes:
    """The whole body of a JSON request (at most `limits.max_request_body_bytes`, else
    413 M_TOO_LARGE), each part awaited as `body_chunks` does. A body that arrived with
    the headers, as most do, is taken without any timer."""
    if request.content.is_eof():
        return await request.read()
    limit = request.app[MAX_BODY]
    parts, size = [], 0
    async for chunk in body_chunks(request):
        size += len(chunk)
        if size > limit:
            raise MatrixError("M_TOO_LARGE", f"Request body is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def json_object(raw: bytes | bytearray) -> dict[str, Any]:
    """A request body's bytes as a JSON object: 400 M_NOT_JSON when they are not JSON,
    M_BAD_JSON when the JSON is not an object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError("M_NOT_JSON", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MatrixError("M_BAD_JSON", "Request body must be a JSON object")
    return body


async def read_json(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; M_NOT_JSON or M_BAD_JSON otherwise.

    The body is read by `read_body` (413 M_TOO_LARGE, 408 when it stops arriving). A U+0000 in any
    string or key is M_INVALID_PARAM, as in a path or query (see `contains_nul`): it is
    only looked for when the bytes hold its escape, so ordinary bodies pay one byte search.
    """
    raw = await read_body(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise MatrixError("M_NOT_JSON", "Request body is empty, a JSON object was expected")
    body = json_object(raw)
    if b"\\u0000" in raw and contains_nul(body):
        raise MatrixError("M_INVALID_PARAM", "Request body holds a NUL character (U+0000), which this server refuses")
    return body


def client_ip(request: web.Request) -> str | None:
    return request.remote
