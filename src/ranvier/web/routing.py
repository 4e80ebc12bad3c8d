"""The route table: each API module declares its endpoints once.

A route lists the client API versions it is served under (`v3` plus the `r0` alias older
clients still call, or `v1` for newer endpoints); `add_routes` mounts every prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT_PREFIX = "/_matrix/client"
STABLE = ("v3", "r0")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    versions: tuple[str, ...] | None


class Routes:
    def __init__(self) -> None:
        self.entries: list[Route] = []

    def route(self, method: str, path: str, *, versions: tuple[str, ...] | None = STABLE):
        """Declare a client API endpoint; `versions=None` mounts `path` as it is."""

        def register(handler: Handler) -> Handler:
            self.entries.append(Route(method, path, handler, versions))
            return handler

        return register

    def get(self, path: str, **kw):
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw):
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw):
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw):
        return self.route("DELETE", path, **kw)


def add_routes(router: web.UrlDispatcher, routes: Routes) -> None:
    """Fixed paths get one plain resource per version (looked up by the whole path, no
    pattern); a path with parameters gets one resource whose versions are matched by one
    segment, which halves the patterns compiled at start."""
    for route in routes.entries:
        if route.versions is None:
            router.add_route(route.method, route.path, route.handler)
        elif len(route.versions) == 1 or "{" not in route.path:
            for version in route.versions:
                router.add_route(route.method, f"{CLIENT_PREFIX}/{version}{route.path}", route.handler)
        else:
            versions = "|".join(route.versions)
            router.add_route(route.method, f"{CLIENT_PREFIX}/{{api_version:{versions}}}{route.path}", route.handler)
