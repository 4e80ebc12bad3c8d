"""The web admin: plain HTML, CSS and a small script served from this package (with the
vendored charting library), no outside network. The pages hold no data: the script logs
in with an admin's password and calls the admin API, which does every check."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ranvier.web.routing import Routes

routes = Routes()

STATIC = Path(__file__).parent / "static"
#: Every file the web admin serves, by the name in its URL; nothing else is reachable.
FILES = {
    "index.html": (STATIC / "index.html", "text/html; charset=utf-8"),
    "admin.css": (STATIC / "admin.css", "text/css; charset=utf-8"),
    "admin.js": (STATIC / "admin.js", "text/javascript; charset=utf-8"),
    "uPlot.iife.min.js": (STATIC / "vendor" / "uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "uPlot.min.css": (STATIC / "vendor" / "uPlot.min.css", "text/css; charset=utf-8"),
    "uPlot.LICENSE": (STATIC / "vendor" / "uPlot.LICENSE", "text/plain; charset=utf-8"),
}
#: The page may load only its own files and talk only to this server.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _file(name: str) -> web.Response:
    path, content_type = FILES[name]
    return web.Response(body=path.read_bytes(), headers={**_HEADERS, "Content-Type": content_type})


@routes.get("/_ranvier/admin", versions=None)
async def admin_root(request: web.Request) -> web.Response:
    """GET /_ranvier/admin: redirects to /_ranvier/admin/ (the page's files are relative to it)."""
    return web.Response(status=302, headers={"Location": "/_ranvier/admin/"})


@routes.get("/_ranvier/admin/", versions=None)
async def admin_page(request: web.Request) -> web.Response:
    """GET /_ranvier/admin/: the web admin's page (no token needed; it holds no data)."""
    return _file("index.html")


@routes.get("/_ranvier/admin/{name}", versions=None)
async def admin_file(request: web.Request) -> web.Response:
    """GET /_ranvier/admin/{name}: the page's script, styles and vendored charting library
    (with its licence); any other name is 404 M_UNRECOGNIZED."""
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return _file(name)
