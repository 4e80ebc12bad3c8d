"""The aiohttp application: error mapping, CORS, body limits and a request log without secrets."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ranvier.errors import InteractiveAuthRequired, MatrixError
from ranvier.metrics import count_request
from ranvier.web.http import json_response
from ranvier.web.keys import HOMESERVER, MAX_BODY

log = logging.getLogger("ranvier.web")


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
    "Access-Control-Expose-Headers": "Content-Disposition, Content-Type",
}

_SECRET_QUERY = re.compile(r"(access_token|token|login_token)=[^&\s]*")


def large_body(handler):
    """Mark a handler that streams its body itself, so the JSON body limit does not apply."""
    handler.large_body = True
    return handler


def _error(status: int, errcode: str, message: str) -> web.Response:
    return json_response({"errcode": errcode, "error": message}, status)


@web.middleware
async def matrix_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await _answer(request, handler)
    if not response.prepared:
        response.headers.update(CORS_HEADERS)
    resource = request.match_info.route.resource
    # The route's pattern, never the raw path: one series per endpoint, not per room.
    count_request(request.method, resource.canonical if resource is not None else "unmatched", response.status,
                  time.perf_counter() - started)
    return response


async def _answer(request: web.Request, handler) -> web.StreamResponse:
    limit = request.app[MAX_BODY]
    route_handler = request.match_info.route.handler
    try:
        if (request.content_length or 0) > limit and not getattr(route_handler, "large_body", False):
            return _error(413, "M_TOO_LARGE", f"Request body is larger than {limit} bytes")
        refuse_nul_in_url(request)
        return await handler(request)
    except MatrixError as exc:
        # A route table answering in other terms (the 2014 draft's codes) says how.
        exc = getattr(route_handler, "translate_error", lambda error: error)(exc)
        return json_response(exc.to_json(), exc.status)
    except InteractiveAuthRequired as exc:
        return json_response(exc.body, exc.status)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "M_TOO_LARGE", f"Request body is larger than {limit} bytes")
    except web.HTTPMethodNotAllowed:
        return _error(405, "M_UNRECOGNIZED", "Method not allowed on this endpoint")
    except web.HTTPNotFound:
        return _error(404, "M_UNRECOGNIZED", "Unrecognized request")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, "M_UNKNOWN", exc.reason)
    except ConnectionResetError:
        return client_went_away(request)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("request %s %s failed", request.method, _redact(request.path_qs))
        return _error(500, "M_UNKNOWN", "Internal server error")


def client_went_away(request: web.Request) -> web.Response:
    """The client closed the connection before its request was answered (while it was
    being read, or written): not the server's error, so no traceback and no 500. The
    access log shows 499, the status other servers use for it; nothing reaches the client."""
    log.info("client %s went away during %s %s", request.remote, request.method, _redact(request.path))
    return web.Response(status=499, reason="Client Closed Request")


def refuse_nul_in_url(request: web.Request) -> None:
    """A NUL (U+0000, `%00`) in a path parameter or query value is 400 M_INVALID_PARAM:
    no Matrix identifier holds one, PostgreSQL text cannot store one, and refusing it
    here keeps both engines alike (JSON bodies: `read_json`)."""
    if "%00" in request.raw_path:
        raise MatrixError("M_INVALID_PARAM", "The request's path or query holds a NUL character (U+0000)")


def _redact(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1=<redacted>", text)


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request; tokens in the query string are never written."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.1fms', request.remote, request.method, _redact(request.path_qs), response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def make_app(homeserver: Any, *, max_body: int) -> web.Application:
    app = web.Application(middlewares=[matrix_middleware], client_max_size=max_body)
    app[HOMESERVER] = homeserver
    app[MAX_BODY] = max_body
    return app
