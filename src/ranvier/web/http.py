"""JSON in and out, with the Matrix errors for bodies that are not what we expect."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.canonical_json import contains_nul

JSON_TYPE = "application/json"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON_TYPE)


async def read_json(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; M_NOT_JSON or M_BAD_JSON otherwise.

    aiohttp enforces the body size limit while reading (413 M_TOO_LARGE). A U+0000 in any
    string or key is M_INVALID_PARAM, as in a path or query (see `contains_nul`): it is
    only looked for when the bytes hold its escape, so ordinary bodies pay one byte search.
    """
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise MatrixError("M_NOT_JSON", "Request body is empty, a JSON object was expected")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError("M_NOT_JSON", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MatrixError("M_BAD_JSON", "Request body must be a JSON object")
    if b"\\u0000" in raw and contains_nul(body):
        raise MatrixError("M_INVALID_PARAM", "Request body holds a NUL character (U+0000), which this server refuses")
    return body


def client_ip(request: web.Request) -> str | None:
    return request.remote
