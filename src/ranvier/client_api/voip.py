"""Voice over IP: TURN server credentials (GET /voip/turnServer).

The credentials follow the TURN REST scheme coturn checks with `use-auth-secret`: the
user name is `<expiry in unix seconds>:<user ID>` and the password the base64 of the
HMAC-SHA1 of that user name under the secret shared with the TURN server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from aiohttp import web

from ranvier.web.app import HOMESERVER
from ranvier.web.auth import requester
from ranvier.web.http import json_response
from ranvier.web.routing import Routes

routes = Routes()


def turn_credentials(shared_secret: str, user_id: str, uris: list[str], lifetime_s: int, now_s: int) -> dict[str, Any]:
    """The turnServer answer for `user_id`, valid for `lifetime_s` from `now_s`."""
    username = f"{now_s + lifetime_s}:{user_id}"
    digest = hmac.new(shared_secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return {"username": username, "password": base64.b64encode(digest).decode("ascii"), "uris": list(uris),
            "ttl": lifetime_s}


@routes.get("/voip/turnServer")
async def turn_server(request: web.Request) -> web.Response:
    """GET /voip/turnServer: time-limited TURN credentials from `turn.shared_secret` for
    `turn.uris`; `{}` when no TURN server is configured, as Synapse answers: clients then
    call without one and stop asking (an error would make matrix-js-sdk retry every
    minute). The spec's schema has no answer for this case."""
    who = await requester(request, allow_guest=True)
    turn = request.app[HOMESERVER].config.turn
    if not turn.uris or not turn.shared_secret:
        return json_response({})
    return json_response(turn_credentials(turn.shared_secret, who.user_id, turn.uris,
                                          turn.credential_lifetime_ms // 1000, int(time.time())))
