"""The ceiling: a server that does nothing but answer, on the same aiohttp and uvloop stack
as ranvier, so the table shows how far the send load could go in Python HTTP on this machine.

It answers just enough of the API for the send scenarios to run unchanged: registration and
room creation/joins get one canned answer, sends get {"event_id": "$x"}.
"""

import argparse

import uvloop
from aiohttp import web

CANNED = b'{"user_id":"@bench:localhost","access_token":"t","device_id":"D","room_id":"!r:localhost"}'


async def versions(request):
    return web.Response(body=b'{"versions":["v1.11"]}', content_type="application/json")


async def canned(request):
    await request.read()
    return web.Response(body=CANNED, content_type="application/json")


async def send(request):
    await request.read()
    return web.Response(body=b'{"event_id":"$x"}', content_type="application/json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    app = web.Application()
    app.router.add_get("/_matrix/client/versions", versions)
    app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", send)
    app.router.add_post("/_matrix/client/v3/{tail:.*}", canned)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
