"""A scripted client that uses simplified sliding sync (MSC4186) the way Element X does,
against any homeserver, and writes down what it sees in the order it sees it.

Its requests are those of Element X (the matrix-rust-sdk; `room_list_request` in
scenarios.py). The room list is one connection, `room-list`: a list `all_rooms` ordered by
activity with a timeline of one event and the SDK's default required state (with `$LAZY`
and `$ME` members), `pos` and `timeout` as query parameters, the account_data, receipts
and typing extensions; an opened room is a room subscription with a timeline of 20
events. A second connection, `encryption`, has no rooms, only the to_device and e2ee
extensions. The client keeps a model of each room (name, state, timeline, typing,
receipts), sorts rooms by `bump_stamp` as the SDK does, and turns every change it notices
into an observation, named by room and user names so that two servers' transcripts can
be compared.

`run_script` is the scenario: a user in 45 rooms opens the app (range 0–19), scrolls
(20–39), opens the busiest room, uploads its keys, then sees someone join (and their
devices to track), write, upload device keys, send it a to-device message and claim one
of its one-time keys; then an invitation, a renamed room, typing, a read receipt and an
old room coming back to the top. Used by
tests/integration/test_sliding_sync_client.py (ranvier) and sliding_sync_compare.py
(ranvier and Synapse).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from scenarios import QUICK, Bench, Device, Failed, User, room_list_request, sliding, upload_keys

ROOMS = 45
POLL_SECONDS = 10


@dataclass
class RoomModel:
    """What the client knows of a room."""

    name: str | None = None
    membership: str | None = None
    bump_stamp: int = 0
    state: dict[tuple[str, str], dict] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    typing: tuple[str, ...] = ()
    receipts: set[tuple[str, str]] = field(default_factory=set)


class ScriptedConnection(ABC):
    """One sliding sync connection of the scripted client, writing to a shared transcript."""

    def __init__(self, bench: Bench, user: User, people: dict[str, str], transcript: list[tuple]) -> None:
        self.bench = bench
        self.user = user
        #: user ID -> the name observations use for them.
        self.people = people
        self.transcript = transcript
        self.pos: str | None = None

    @abstractmethod
    def request(self) -> dict[str, Any]:
        """The body of the connection's next request."""

    @abstractmethod
    def apply(self, response: dict[str, Any]) -> None:
        """Take in a response, observing what changed."""

    async def sync(self, timeout: int = 0) -> dict[str, Any]:
        response = await sliding(self.bench, self.user, self.request(), self.pos, timeout)
        self.pos = response["pos"]
        self.apply(response)
        return response

    async def poll_until(self, wanted: tuple) -> None:
        """Long-poll until `wanted` is observed once more than it had been."""
        seen = self.transcript.count(wanted)
        deadline = time.monotonic() + POLL_SECONDS
        while self.transcript.count(wanted) == seen:
            if time.monotonic() > deadline:
                raise Failed(f"never observed {wanted}; saw {self.transcript[-5:]}")
            await self.sync(timeout=2000)

    def who(self, user_id: str) -> str:
        return self.people.get(user_id, user_id)


class EncryptionSync(ScriptedConnection):
    """Element X's second connection, `encryption`: to-device messages and the device's
    key counts and device-list changes, no rooms."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.since: str | None = None
        self.keys: tuple | None = None

    def request(self) -> dict[str, Any]:
        to_device: dict[str, Any] = {"enabled": True}
        if self.since is not None:
            to_device["since"] = self.since
        return {"conn_id": "encryption", "extensions": {"to_device": to_device, "e2ee": {"enabled": True}}}

    def apply(self, response: dict[str, Any]) -> None:
        extensions = response.get("extensions", {})
        to_device = extensions.get("to_device")
        if to_device is not None:
            self.since = to_device["next_batch"]
            for event in to_device.get("events", []):
                self.transcript.append(("to-device", self.who(event["sender"]), event["type"],
                                        json.dumps(event["content"], sort_keys=True)))
        e2ee = extensions.get("e2ee", {})
        keys = (tuple(sorted(e2ee.get("device_one_time_keys_count", {}).items())),
                tuple(e2ee.get("device_unused_fallback_key_types") or ()))
        if keys != self.keys:
            self.keys = keys
            self.transcript.append(("keys", *keys))
        lists = e2ee.get("device_lists", {})
        for user_id in sorted(lists.get("changed", [])):
            self.transcript.append(("devices changed", self.who(user_id)))
        for user_id in sorted(lists.get("left", [])):
            self.transcript.append(("devices left", self.who(user_id)))


class ElementXLike(ScriptedConnection):
    """The room list side of Element X: one connection, one list, room subscriptions."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.ranges = [(0, 19)]
        self.subscriptions: list[str] = []
        self.rooms: dict[str, RoomModel] = {}
        self.count: int | None = None
        #: event ID -> body of the messages seen, to name what receipts point at.
        self.messages: dict[str, str] = {}

    def request(self) -> dict[str, Any]:
        return room_list_request("room-list", self.ranges, self.subscriptions)

    def label(self, room_id: str) -> str:
        room = self.rooms.get(room_id)
        return room.name if room is not None and room.name else room_id

    # -- applying a response -------------------------------------------------------------

    def apply(self, response: dict[str, Any]) -> None:
        """Update the model; what one response changed is observed in a canonical order
        (servers order the rooms of a response as they like)."""
        seen_before = len(self.transcript)
        count = response.get("lists", {}).get("all_rooms", {}).get("count")
        if count is not None and count != self.count:
            self.count = count
            self.transcript.append(("count", count))
        for room_id, data in response.get("rooms", {}).items():
            self.apply_room(room_id, data)
        extensions = response.get("extensions", {})
        for room_id, event in extensions.get("typing", {}).get("rooms", {}).items():
            users = tuple(sorted(self.who(u) for u in event["content"].get("user_ids", [])))
            room = self.rooms.setdefault(room_id, RoomModel())
            if users != room.typing:
                room.typing = users
                self.transcript.append(("typing", self.label(room_id), users))
        for room_id, event in extensions.get("receipts", {}).get("rooms", {}).items():
            room = self.rooms.setdefault(room_id, RoomModel())
            for event_id, kinds in event["content"].items():
                for user_id in kinds.get("m.read", {}):
                    if user_id != self.user.user_id and (user_id, event_id) not in room.receipts:
                        room.receipts.add((user_id, event_id))
                        self.transcript.append(("receipt", self.label(room_id), self.who(user_id),
                                                self.messages.get(event_id, "an event")))
        self.transcript[seen_before:] = sorted(self.transcript[seen_before:], key=repr)

    def apply_room(self, room_id: str, data: dict[str, Any]) -> None:
        old = self.rooms.get(room_id)
        old_name, old_membership = (old.name, old.membership) if old else (None, None)
        fresh = old is None or bool(data.get("initial"))
        room = RoomModel(event_ids=old.event_ids if old else set()) if fresh else old
        self.rooms[room_id] = room
        for event in data.get("stripped_state", data.get("invite_state")) or []:
            room.state[(event["type"], event["state_key"])] = event
        members = []
        for event in data.get("required_state", []):
            key = (event["type"], event["state_key"])
            known = room.state.get(key)
            room.state[key] = event
            if key[0] == "m.room.member" and key[1] != self.user.user_id and (
                    known is None or known.get("content") != event.get("content")):
                members.append(event)
        name_event = room.state.get(("m.room.name", ""))
        room.name = data["name"] if "name" in data else (
            name_event["content"].get("name") if name_event is not None else room.name)
        own = room.state.get(("m.room.member", self.user.user_id))  # $ME: servers may leave out `membership`
        room.membership = data.get("membership", own["content"].get("membership") if own else room.membership)
        room.bump_stamp = data.get("bump_stamp", room.bump_stamp)
        if room.membership == "invite" and old_membership != "invite":
            inviter = room.state.get(("m.room.member", self.user.user_id), {}).get("sender", "")
            self.transcript.append(("invite", room.name, self.who(inviter)))
        if not fresh and old_name is not None and room.name != old_name:
            self.transcript.append(("name", old_name, room.name))
        for event in members:
            self.transcript.append(("member", room.name, self.who(event["state_key"]), event["content"].get("membership")))
        for event in data.get("timeline", []):
            if event["event_id"] in room.event_ids:
                continue
            room.event_ids.add(event["event_id"])
            if event["type"] == "m.room.message":
                self.messages[event["event_id"]] = event["content"].get("body")
                self.transcript.append(("message", room.name, self.who(event["sender"]), event["content"].get("body")))

    def top(self, n: int = 3) -> tuple[str, ...]:
        """The first rooms of the list as the app shows it: joined rooms by bump_stamp."""
        ordered = sorted((r for r in self.rooms.items() if r[1].membership == "join"),
                         key=lambda item: -item[1].bump_stamp)
        return tuple(room.name or room_id for room_id, room in ordered[:n])

    def note_order(self) -> None:
        self.transcript.append(("top", self.top()))


async def run_script(bench: Bench, transcript: list[tuple], rooms: int = ROOMS) -> None:
    """The Element X session described in the module docstring; what the client observes is
    appended to `transcript` as it goes (so a failure leaves what was seen before it)."""
    alice, bob = await bench.register(), await bench.register()
    people = {alice.user_id: "alice", bob.user_id: "bob"}
    room_ids = []
    for i in range(rooms):
        doc = await bench.api.call("POST /createRoom", "POST", "/_matrix/client/v3/createRoom", alice.token,
                                   body={"preset": "public_chat", "name": f"room {i:02}"})
        room_ids.append(doc["room_id"])
        await bench.send(alice, doc["room_id"], {"msgtype": "m.text", "body": f"message {i:02}"})
    newest = room_ids[-1]
    client = ElementXLike(bench, alice, people, transcript)

    await client.sync()  # the app starts: the top 20 rooms
    client.note_order()
    client.transcript.append(("rooms", len(client.rooms)))
    client.ranges = [(20, 39)]  # scrolling down
    await client.sync()
    client.transcript.append(("rooms", len(client.rooms)))
    client.ranges = [(0, 19)]
    client.subscriptions = [newest]  # opening the busiest room
    await client.sync()

    encryption = EncryptionSync(bench, alice, people, transcript)  # Element X's second connection
    alice_device = await device_of(bench, alice)
    await upload_keys(bench, alice_device, one_time_keys=5)
    await encryption.sync()

    await bench.join(bob, newest)
    await encryption.poll_until(("devices changed", "bob"))  # bob now shares a room
    await bench.send(bob, newest, {"msgtype": "m.text", "body": "hello from bob"})
    await client.poll_until(("message", f"room {rooms - 1:02}", "bob", "hello from bob"))
    client.note_order()
    await upload_keys(bench, await device_of(bench, bob))
    await encryption.poll_until(("devices changed", "bob"))  # and has new device keys
    await bench.api.call("PUT /sendToDevice/{eventType}/{txnId}", "PUT",
                         "/_matrix/client/v3/sendToDevice/org.example.ping/ping1", bob.token,
                         body={"messages": {alice.user_id: {"*": {"n": 1}}}})
    await encryption.poll_until(("to-device", "bob", "org.example.ping", '{"n": 1}'))
    await bench.api.call("POST /keys/claim", "POST", "/_matrix/client/v3/keys/claim", bob.token,
                         body={"one_time_keys": {alice.user_id: {alice_device.device_id: "signed_curve25519"}}})
    await encryption.poll_until(("keys", (("signed_curve25519", 4),), ()))

    await bench.api.call("POST /createRoom", "POST", "/_matrix/client/v3/createRoom", bob.token,
                         body={"preset": "private_chat", "name": "bob's room", "invite": [alice.user_id]})
    await client.poll_until(("invite", "bob's room", "bob"))

    renamed = room_ids[30]
    await bench.api.call("PUT /rooms/{roomId}/state/m.room.name", "PUT",
                         f"/_matrix/client/v3/rooms/{quote(renamed)}/state/m.room.name", alice.token,
                         body={"name": "renamed room"})
    await client.poll_until(("name", "room 30", "renamed room"))

    await bench.api.call("PUT /rooms/{roomId}/typing/{userId}", "PUT",
                         f"/_matrix/client/v3/rooms/{quote(newest)}/typing/{quote(bob.user_id)}", bob.token,
                         body={"typing": True, "timeout": 30000})
    await client.poll_until(("typing", f"room {rooms - 1:02}", ("bob",)))

    mine = next(event_id for event_id, body in client.messages.items() if body == f"message {rooms - 1:02}")
    await bench.api.call("POST /rooms/{roomId}/receipt/{receiptType}/{eventId}", "POST",
                         f"/_matrix/client/v3/rooms/{quote(newest)}/receipt/m.read/{quote(mine)}", bob.token, body={})
    await client.poll_until(("receipt", f"room {rooms - 1:02}", "bob", f"message {rooms - 1:02}"))

    await bench.send(alice, room_ids[0], {"msgtype": "m.text", "body": "back on top"})
    await client.poll_until(("message", "room 00", "alice", "back on top"))
    client.note_order()


async def device_of(bench: Bench, user: User) -> Device:
    doc = await bench.api.call("GET /account/whoami", "GET", "/_matrix/client/v3/account/whoami", user.token)
    return Device(user.user_id, doc["device_id"], user.token)


def new_bench(api) -> Bench:
    """A Bench for the script alone: registration and sends, no load counts or processes."""
    return Bench(api, QUICK, server=None)
