"""The draft's URL space and its answers: every path under /matrix/client/api/v1, errors
in the draft's codes, and writes answered 200 with an empty body, as the draft says.

Handlers raise today's errors (services know no other); `DraftRoutes` turns the codes
the draft names differently into its own (docs/legacy-api.md, "Errors").
"""

from __future__ import annotations

import functools

from aiohttp import web

from ranvier.errors import ERROR_STATUS, MatrixError
from ranvier.web.routing import Handler, Route, Routes

PREFIX = "/matrix/client/api/v1"

#: Today's error codes and the draft's codes for the same failure.
DRAFT_ERRCODES = {
    "M_MISSING_TOKEN": "M_FORBIDDEN",
    "M_UNKNOWN_TOKEN": "M_FORBIDDEN",
    "M_GUEST_ACCESS_FORBIDDEN": "M_FORBIDDEN",
    "M_USER_DEACTIVATED": "M_FORBIDDEN",
    "M_BAD_STATE": "M_FORBIDDEN",
    "M_MISSING_PARAM": "M_BAD_JSON",
    "M_INVALID_PARAM": "M_BAD_JSON",
    "M_INVALID_USERNAME": "M_BAD_JSON",
    "M_WEAK_PASSWORD": "M_BAD_JSON",
    "M_KEY_TOO_LARGE": "M_BAD_JSON",
    "M_PROFILE_TOO_LARGE": "M_BAD_JSON",
    "M_UNRECOGNIZED": "M_NOT_FOUND",
}


def draft_error(error: MatrixError) -> MatrixError:
    """The same failure in the draft's terms (extra keys such as retry_after_ms are kept
    for codes the draft shares; a renamed code drops today's extras)."""
    errcode = DRAFT_ERRCODES.get(error.errcode)
    if errcode is None:
        return error
    return MatrixError(errcode, error.message, status=ERROR_STATUS[errcode])


def in_draft_terms(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except MatrixError as error:
            raise draft_error(error) from None

    answer.translate_error = draft_error  # for the errors the web layer raises before the handler
    return answer


class DraftRoutes(Routes):
    """A route table whose paths are the draft's, mounted under PREFIX as they are."""

    def route(self, method: str, path: str, **_):
        def register(handler: Handler) -> Handler:
            self.entries.append(Route(method, PREFIX + path, in_draft_terms(handler), None))
            return handler

        return register


def done() -> web.Response:
    """The draft's success for a write: 200 OK with an empty body."""
    return web.Response(status=200)


def _unmatched() -> DraftRoutes:
    routes = DraftRoutes()

    @routes.route("*", "/{path:.*}")
    async def unmatched(request: web.Request) -> web.Response:
        """* /matrix/client/api/v1/{path}: any other path or method under the prefix: 404
        M_NOT_FOUND, or 405 M_NOT_FOUND with the methods the path takes (the draft has no code
        of its own for that)."""
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if resource.canonical.startswith(PREFIX + "/") and resource is not request.match_info.route.resource:
                _, methods = await resource.resolve(request)
                allowed |= methods
        if allowed:
            raise MatrixError("M_NOT_FOUND", f"{request.method} is not served here; this path takes "
                                             f"{', '.join(sorted(allowed))}", status=405)
        raise MatrixError("M_NOT_FOUND", "No resource was found for this request")

    return routes


#: The catch-all, made once so that every listing of the route tables names the same handler.
UNMATCHED = _unmatched()


def legacy_routes() -> list[Routes]:
    """Every route table of the draft API, the catch-all last."""
    from ranvier.legacy_api import (accounts, event_stream, im_sync, members, messages, presence, profiles,
                                    rooms)

    return [accounts.routes, rooms.routes, members.routes, messages.routes, event_stream.routes,
            im_sync.routes, profiles.routes, presence.routes, UNMATCHED]
