"""What the application carries for every handler: the homeserver and the body limit."""

from __future__ import annotations

from typing import Any

from aiohttp import web

#: Handlers reach the services through `request.app[HOMESERVER]`.
HOMESERVER: web.AppKey[Any] = web.AppKey("homeserver", object)
MAX_BODY: web.AppKey[int] = web.AppKey("max_body", int)
