"""JSON in and out, with the Matrix errors for bodies that are not what we expect."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ranvier.errors import MatrixError

JSON_TYPE = "application/json"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON_TYPE)


async def read_json(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; M_NOT_JSON or M_BAD_JSON otherwise.

    aiohttp enforces the body size limit while reading (413 M_TOO_LARGE).
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
    return body


def client_ip(request: web.Request) -> str | None:
    return request.remote
