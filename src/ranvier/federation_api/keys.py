"""Server keys: this server's signing keys, and the notary service (server-server API,
"Retrieving server keys"). No request signature is needed: the answers are signed."""

from __future__ import annotations

import time

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_server_name
from ranvier.federation_api.common import federation
from ranvier.web.http import json_response, read_json
from ranvier.web.params import query_int
from ranvier.web.routing import Routes

routes = Routes()

KEY = "/_matrix/key/v2"
#: The most servers one notary query may name.
MAX_SERVERS_PER_QUERY = 100


@routes.get(f"{KEY}/server", versions=None)
async def server_keys(request: web.Request) -> web.Response:
    """GET /_matrix/key/v2/server: this server's signing key, signed by itself, valid for a day."""
    return json_response(federation(request).keys.own_keys())


@routes.get(f"{KEY}/query/{{server_name}}", versions=None)
async def query_one(request: web.Request) -> web.Response:
    """GET /_matrix/key/v2/query/{serverName}: a server's keys as this notary knows them
    (fetched again when they expire before `minimum_valid_until_ts`), countersigned; an
    empty list when they cannot be had."""
    server_name = request.match_info["server_name"]
    if not is_valid_server_name(server_name):
        raise MatrixError("M_INVALID_PARAM", "Not a server name")
    minimum = query_int(request, "minimum_valid_until_ts", _now_ms(), minimum=0, maximum=2**53)
    return json_response({"server_keys": await federation(request).keys.query({server_name: minimum})})


@routes.post(f"{KEY}/query", versions=None)
async def query_many(request: web.Request) -> web.Response:
    """POST /_matrix/key/v2/query: the keys of several servers (`server_keys`: server ->
    key ID -> `minimum_valid_until_ts`), as the GET form; at most 100 servers."""
    service = federation(request)
    body = await read_json(request)
    wanted = body.get("server_keys")
    if not isinstance(wanted, dict) or len(wanted) > MAX_SERVERS_PER_QUERY:
        raise MatrixError("M_BAD_JSON", f"server_keys must map at most {MAX_SERVERS_PER_QUERY} server names to objects")
    minimums = {}
    for server_name, key_ids in wanted.items():
        if not is_valid_server_name(server_name) or not isinstance(key_ids, dict):
            raise MatrixError("M_BAD_JSON", "server_keys must map server names to objects")
        values = [v.get("minimum_valid_until_ts") for v in key_ids.values() if isinstance(v, dict)]
        minimums[server_name] = max([v for v in values if isinstance(v, int)], default=_now_ms())
    return json_response({"server_keys": await service.keys.query(minimums)})


def _now_ms() -> int:
    return int(time.time() * 1000)
