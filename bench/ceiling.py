"""The ceiling: a server that does nothing but answer, on the same aiohttp and uvloop stack
as ranvier, so the table shows how far the send and delivery loads could go in Python HTTP
on this machine.

It answers just enough of the API for those scenarios to run unchanged: registration, room
creation and joins get one canned answer; sends append their content to one list kept in
memory (every room is the same room) and wake the long polls; `/sync` answers at once
without `since`, and with it waits until the list has grown past that position, then
returns what came after it. The answer for a position is serialised once and shared by
every poller that asked from there: the least a real server could do per wake-up.
"""

import argparse
import asyncio
import contextlib

import orjson
import uvloop
from aiohttp import web

CANNED = b'{"user_id":"@bench:localhost","access_token":"t","device_id":"D","room_id":"!r:localhost"}'
ROOM = "!r:localhost"


class Room:
    """The one room: its messages, and a future per wake-up that every long poll awaits."""

    def __init__(self):
        self.messages = []
        self.grown = asyncio.get_running_loop().create_future()
        self.answers = {}  # (since, length) -> serialised /sync answer

    def append(self, content):
        position = len(self.messages)
        self.messages.append({"type": "m.room.message", "event_id": f"$e{position}", "content": content,
                              "sender": "@bench:localhost", "origin_server_ts": 0})
        self.grown.set_result(None)
        self.grown = asyncio.get_running_loop().create_future()
        self.answers.clear()
        return position

    def answer(self, since):
        length = len(self.messages)
        body = self.answers.get((since, length))
        if body is None:
            events = self.messages[since:]
            rooms = {"join": {ROOM: {"timeline": {"events": events, "limited": False}}}} if events else {}
            body = self.answers[(since, length)] = orjson.dumps({"next_batch": str(length), "rooms": rooms})
        return body


async def versions(request):
    return web.Response(body=b'{"versions":["v1.11"]}', content_type="application/json")


async def canned(request):
    await request.read()
    return web.Response(body=CANNED, content_type="application/json")


async def send(request):
    content = orjson.loads(await request.read())
    position = request.app["room"].append(content)
    return web.Response(body=b'{"event_id":"$e%d"}' % position, content_type="application/json")


async def sync(request):
    room = request.app["room"]
    if "since" not in request.query:
        return web.Response(body=room.answer(len(room.messages)), content_type="application/json")
    since = int(request.query["since"])
    timeout = int(request.query.get("timeout", "0")) / 1000
    if len(room.messages) <= since and timeout > 0:
        # a long poll that times out answers with nothing new, as the spec says
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(room.grown), timeout)
    return web.Response(body=room.answer(since), content_type="application/json")


async def make_room(app):
    app["room"] = Room()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    app = web.Application()
    app.on_startup.append(make_room)
    app.router.add_get("/_matrix/client/versions", versions)
    app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", send)
    app.router.add_get("/_matrix/client/v3/sync", sync)
    app.router.add_post("/_matrix/client/v3/{tail:.*}", canned)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
