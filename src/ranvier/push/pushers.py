"""Pushers: the push gateways a user's notifications go to, one per app and device, and
their delivery as the Push Gateway API defines it.

Each pusher is a destination of the `push` delivery queue (`outbound.queue`): the queue
keeps how far each pusher has delivered, and asks here for the user's notifications after
that position (the push tables are the queue's contents, nothing is copied) and for
their delivery, one POST per notification. A gateway that lists the pushkey in
`rejected` has the pusher removed. Pushers live as long as the device that set them up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

import aiohttp
import orjson
from yarl import URL

from ranvier.config import Config
from ranvier.errors import MatrixError
from ranvier.events.model import MEMBER
from ranvier.outbound.addresses import BlockedAddress, checked_session, literal_allowed, parse_networks
from ranvier.outbound.queue import DeliveryQueue, DestinationGone, Item, RetryLater, RetryPolicy
from ranvier.push.service import PreparedPush, PushService
from ranvier.push.store import PushStore
from ranvier.requester import Requester
from ranvier.rooms.service import RoomServer
from ranvier.storage.engine import Database, UniqueViolation

log = logging.getLogger(__name__)

QUEUE = "push"
NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_APP_ID_CHARS = 64
MAX_PUSHKEY_BYTES = 512
USER_AGENT = "ranvier pusher"
KINDS = ("http", "email")


@dataclass(frozen=True, slots=True)
class Pusher:
    pusher_id: int
    user_id: str
    device_id: str
    kind: str
    app_id: str
    pushkey: str
    pushkey_ts: int
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "Pusher":
        return cls(*row[:11], orjson.loads(row[11]))

    def json(self) -> dict[str, Any]:
        """As GET /pushers shows it."""
        shown = {"pushkey": self.pushkey, "kind": self.kind, "app_id": self.app_id,
                 "app_display_name": self.app_display_name, "device_display_name": self.device_display_name,
                 "lang": self.lang, "data": self.data}
        if self.profile_tag is not None:
            shown["profile_tag"] = self.profile_tag
        return shown


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise MatrixError("M_MISSING_PARAM", f"Missing required field: {name}")
        return None
    if not isinstance(value, str):
        raise MatrixError("M_BAD_JSON", f"Field {name} must be a string")
    return value


class Pushers:
    def __init__(self, store: PushStore, push: PushService, rooms: RoomServer, db: Database, config: Config) -> None:
        self.store = store
        self.push = push
        self.rooms = rooms
        self.http_gateway_urls = tuple(config.push.http_gateway_urls)
        self.allowed = parse_networks(config.outbound.allowed_networks)
        self.timeout_s = config.outbound.request_timeout_ms / 1000
        policy = RetryPolicy(config.outbound.initial_backoff_ms, config.outbound.max_backoff_ms,
                             config.push.give_up_after_ms)
        self.queue = DeliveryQueue(QUEUE, db, self, policy)
        self._by_user: dict[str, set[int]] = {}
        self._next_id = 1
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._next_id = await self.store.max_pusher_id() + 1
        for pusher_id, user_id in await self.store.live_pushers():
            self._by_user.setdefault(user_id, set()).add(pusher_id)
        self.push.pusher_users = set(self._by_user)
        self.push.on_notified = self._notified
        await self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the API -----------------------------------------------------------------------------

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        return [Pusher.from_row(row).json() for row in await self.store.pushers_of(user_id)]

    async def set(self, requester: Requester, body: dict[str, Any]) -> None:
        """POST /pushers/set: create, update (same app_id and pushkey) or, with kind null, delete."""
        if "kind" not in body:
            raise MatrixError("M_MISSING_PARAM", "Missing required field: kind")
        app_id = _text(body, "app_id", required=True)
        pushkey = _text(body, "pushkey", required=True)
        if len(app_id) > MAX_APP_ID_CHARS:
            raise MatrixError("M_INVALID_PARAM", f"app_id may be at most {MAX_APP_ID_CHARS} characters")
        if len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
            raise MatrixError("M_INVALID_PARAM", f"pushkey may be at most {MAX_PUSHKEY_BYTES} bytes")
        kind = body["kind"]
        if kind is None:
            for pusher_id in await self.store.delete_pushers(requester.user_id, app_id, pushkey):
                await self._forget(requester.user_id, pusher_id)
            return
        if not isinstance(kind, str):
            raise MatrixError("M_BAD_JSON", "kind must be a string or null")
        if kind == "email":
            raise MatrixError("M_INVALID_PARAM", "Email pushers are not available: this server sends no email")
        if kind not in KINDS:
            raise MatrixError("M_INVALID_PARAM", f"Unknown pusher kind {kind!r}; this server has http pushers")
        missing = [name for name in ("app_display_name", "device_display_name", "lang", "data") if body.get(name) is None]
        if missing:
            raise MatrixError("M_MISSING_PARAM", f"Missing parameters: {', '.join(missing)}")
        app_name, device_name, lang = (_text(body, name, required=True)
                                       for name in ("app_display_name", "device_display_name", "lang"))
        profile_tag = _text(body, "profile_tag", required=False)
        data = body["data"]
        if not isinstance(data, dict):
            raise MatrixError("M_BAD_JSON", "data must be an object")
        self._check_gateway(data)
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise MatrixError("M_BAD_JSON", "append must be a boolean")
        row = (requester.user_id, requester.device_id, kind, app_id, pushkey, int(time.time()), app_name, device_name,
               profile_tag, lang, orjson.dumps(data).decode())
        new_id, self._next_id = self._next_id, self._next_id + 1  # taken before any wait: IDs never clash
        try:
            pusher_id, removed = await self.store.set_pusher(new_id, row, replace_others=not append)
        except UniqueViolation:  # a concurrent request made this pusher first: it is now an update
            pusher_id, removed = await self.store.set_pusher(new_id, row, replace_others=not append)
        for other in removed:
            for user_id, ids in list(self._by_user.items()):
                if other in ids:
                    await self._forget(user_id, other)
        self._by_user.setdefault(requester.user_id, set()).add(pusher_id)
        self.push.pusher_users.add(requester.user_id)
        await self.queue.add(str(pusher_id), self.rooms.positions.current)

    def _check_gateway(self, data: dict[str, Any]) -> None:
        url = data.get("url")
        if not isinstance(url, str):
            raise MatrixError("M_MISSING_PARAM" if url is None else "M_BAD_JSON", "data.url must be the gateway's URL")
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise MatrixError("M_INVALID_PARAM", "data.url is not a valid URL") from None
        secure = parsed.scheme == "https" or (parsed.scheme == "http" and url.startswith(self.http_gateway_urls)
                                              and bool(self.http_gateway_urls))
        if not secure or not parsed.raw_host:
            raise MatrixError("M_INVALID_PARAM", "data.url must be an https URL")
        if parsed.path != NOTIFY_PATH:
            raise MatrixError("M_INVALID_PARAM", f"data.url must have the path {NOTIFY_PATH}")
        if not literal_allowed(parsed, self.allowed):
            raise MatrixError("M_INVALID_PARAM", "data.url is on an address this server does not reach")
        if "format" in data and data["format"] != "event_id_only":
            raise MatrixError("M_INVALID_PARAM", "data.format may only be event_id_only")

    async def _forget(self, user_id: str, pusher_id: int) -> None:
        ids = self._by_user.get(user_id, set())
        ids.discard(pusher_id)
        if not ids:
            self._by_user.pop(user_id, None)
            self.push.pusher_users.discard(user_id)
        await self.queue.remove(str(pusher_id))

    def _notified(self, room_id: str, push: PreparedPush, sender: str) -> None:
        """After commit: wake the pushers of the users the event notified."""
        for user_id in self.push.pusher_users & (push.joined.keys() | push.members.keys()):
            if push.outcome_for(user_id, sender)[0]:
                for pusher_id in self._by_user.get(user_id, ()):
                    self.queue.wake(str(pusher_id))

    # -- the delivery queue's source ---------------------------------------------------------

    async def _pusher(self, destination: str) -> Pusher:
        row = await self.store.pusher(int(destination))
        if row is None:  # deleted, or its device is gone
            await self.store.delete_pusher(int(destination))
            for user_id, ids in list(self._by_user.items()):
                if int(destination) in ids:
                    ids.discard(int(destination))
                    if not ids:
                        self._by_user.pop(user_id)
                        self.push.pusher_users.discard(user_id)
            raise DestinationGone(destination)
        return Pusher.from_row(row)

    async def pending(self, destination: str, after: int, limit: int) -> Sequence[Item]:
        pusher = await self._pusher(destination)
        rows = await self.push.store.notifications(pusher.user_id, after=after, limit=limit, newest_first=False)
        return [(row[0], row) for row in rows]

    async def deliver(self, destination: str, items: Sequence[Item]) -> None:
        pusher = await self._pusher(destination)
        for _, row in items:
            notification = await self._notification(pusher, row)
            rejected = await self._post(pusher, {"notification": notification})
            if pusher.pushkey in rejected:
                log.info("push gateway rejected a pushkey of %s; pusher removed", pusher.user_id)
                await self.store.delete_pusher(pusher.pusher_id)
                await self._forget(pusher.user_id, pusher.pusher_id)
                raise DestinationGone(destination)

    async def _post(self, pusher: Pusher, body: dict[str, Any]) -> list[Any]:
        if self._session is None:
            self._session = checked_session(self.allowed, timeout_s=self.timeout_s, user_agent=USER_AGENT)
        url = URL(pusher.data["url"])
        if not literal_allowed(url, self.allowed):
            raise RetryLater("the gateway is on an address this server does not reach")
        try:
            async with self._session.post(url, data=orjson.dumps(body), allow_redirects=False,
                                          headers={"Content-Type": "application/json"}) as response:
                if not 200 <= response.status < 300:
                    raise RetryLater(f"the gateway answered {response.status}")
                try:
                    answer = orjson.loads(await response.read())
                except orjson.JSONDecodeError:
                    answer = {}
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                raise RetryLater("the gateway is on an address this server does not reach") from None
            raise RetryLater("could not connect to the gateway") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(type(exc).__name__) from None
        rejected = answer.get("rejected") if isinstance(answer, dict) else None
        return rejected if isinstance(rejected, list) else []

    async def _notification(self, pusher: Pusher, row: Sequence[Any]) -> dict[str, Any]:
        """The `notification` of a POST to the gateway, in the pusher's format."""
        _stream, room_id, event_id, _thread, _notify, highlight, actions, _ts = row
        tweaks: dict[str, Any] = {}
        for action in orjson.loads(actions) if actions else (["notify"] + ([{"set_tweak": "highlight"}] if highlight else [])):
            if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
                tweaks[action["set_tweak"]] = action.get("value", True)
        device: dict[str, Any] = {"app_id": pusher.app_id, "pushkey": pusher.pushkey, "pushkey_ts": pusher.pushkey_ts,
                                  "data": {k: v for k, v in pusher.data.items() if k != "url"}}
        if tweaks:
            device["tweaks"] = tweaks
        joined = [room for room, (membership, _) in (await self.rooms.user_memberships(pusher.user_id)).items()
                  if membership == "join"]
        unread = sum(room["notification_count"] for room in (await self.push.counts(pusher.user_id, joined)).values())
        event = (await self.rooms.store.get_event_rows([event_id])).get(event_id)
        encrypted = event is not None and event.event.type == "m.room.encrypted"
        notification: dict[str, Any] = {
            "event_id": event_id, "room_id": room_id, "devices": [device],
            "prio": "high" if tweaks.get("sound") or tweaks.get("highlight") or encrypted else "low",
        }
        if unread:
            notification["counts"] = {"unread": unread}
        if pusher.data.get("format") == "event_id_only" or event is None:
            return notification
        head = await self.rooms.head(room_id)
        sender = event.event.sender
        member = head.state.get((MEMBER, sender))
        name = head.state.get(("m.room.name", ""))
        alias = head.state.get(("m.room.canonical_alias", ""))
        notification.update(type=event.event.type, sender=sender, content=event.event.content)
        for key, value in (("sender_display_name", member.content.get("displayname") if member else None),
                           ("room_name", name.content.get("name") if name else None),
                           ("room_alias", alias.content.get("alias") if alias else None)):
            if isinstance(value, str):
                notification[key] = value
        if event.event.type == MEMBER:
            notification["user_is_target"] = event.event.state_key == pusher.user_id
        return notification
