"""The Matrix client: the hardcopy, handlers, the room store and the sync loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from . import hardcopy as hardcopy_file
from .backoff import Backoff
from .commands import Command, CommandRegistry
from .dispatch import Handler, Job, Ordering, Registered, SendScope, WorkQueue, send_scope
from .errors import GranolinError, HomeserverError, MatrixError, RateLimitedError, UnknownTokenError
from .events import Event, TextMessage, TimelineEvent, current_room_id
from .encrypted_rooms import EncryptedRooms
from .rooms import Room
from .syncing import SyncFilter, events_of, joined_rooms, page_back, sync_events
from .transport import CLIENT_V3, log, quote_segment

H = TypeVar("H", bound=Handler)


class Client(EncryptedRooms):
    """A Matrix client for bots.

    Subclass it and override :meth:`handle_event`, or register handlers with
    :meth:`on` and :meth:`command`; then :meth:`run` (blocking) or
    ``await start()``. State that must survive a restart is kept in the
    hardcopy file (``None`` disables it); subclasses add theirs by extending
    :meth:`hardcopy_state` and :meth:`restore_hardcopy_state` with ``super()``.

    With the ``e2e`` extra installed (and ``encryption=True``), the bot reads
    and writes end-to-end encrypted rooms; its crypto state is kept in
    ``crypto_store`` (by default beside the hardcopy), encrypted with
    ``crypto_key`` (by default a key file beside it): see :mod:`granolin.e2ee`.
    """

    shutdown_grace = 10.0
    """Seconds :meth:`clean_up` lets running handlers finish; the rest are cancelled and re-run at the next start."""
    gap_fill_limit = 1000
    """At most this many missed events are fetched per room when a sync's timeline is limited."""

    def __init__(
        self,
        homeserver: str,
        user_id: str | None = None,
        hardcopy: str | os.PathLike[str] | None = "granolin.hardcopy.json",
        timeout: int = 30_000,
        ssl: bool = True,
        *,
        skip_backlog: bool = True,
        ordering: Ordering = "room",
        help_command: str | None = "!help",
        backoff: Backoff = Backoff(),
        sync_filter: SyncFilter | None = SyncFilter(),
        refresh_tokens: bool = False,
        encryption: bool = True,
        crypto_store: str | os.PathLike[str] | None = None,
        crypto_key: bytes | str | None = None,
    ) -> None:
        super().__init__(homeserver, ssl=ssl, backoff=backoff, refresh_tokens=refresh_tokens)
        if ordering not in ("room", "none"):
            raise ValueError(f"ordering is 'room' or 'none', not {ordering!r}")
        self.user_id = user_id
        self.next_batch: str | None = None
        """The ``since`` of the next /sync; saved as soon as the sync's events are queued."""
        self.timeout = timeout
        """Milliseconds a /sync long-poll waits for new events."""
        self.hardcopy = Path(hardcopy) if hardcopy is not None else None
        self.skip_backlog = skip_backlog
        self.ordering = ordering
        self.sync_filter = sync_filter
        self.running = False
        self.rooms: dict[str, Room] = {}
        """The joined rooms' state (see :class:`granolin.rooms.Room`)."""
        self.last_event_ids: dict[str, str] = {}
        """The last timeline event received in each room: where gap filling stops."""
        self._handlers: dict[str, Registered] = {}
        self._commands = CommandRegistry(help_command)
        self._work = WorkQueue(self._execute, self._save_soon)
        self._collecting: list[Job] | None = None
        self._save_pending = False
        self._stopped: asyncio.Event | None = None
        self.setup_encryption(encryption, crypto_store, crypto_key)
        if self.hardcopy is not None and self.hardcopy.exists():
            self.load_state()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(homeserver={self.homeserver.url!r}, user_id={self.user_id!r}, logged_in={self.logged_in})"

    # --- state and the hardcopy -------------------------------------------------

    def hardcopy_state(self) -> dict[str, Any]:
        """What to save in the hardcopy. Extend with ``{**super().hardcopy_state(), ...}``."""
        return {
            "homeserver": self.homeserver.url,
            "base_url": self.base_url,
            "user_id": self.user_id,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "device_id": self.device_id,
            "next_batch": self.next_batch,
            "pending": self._work.to_json(),
            "last_event_ids": self.last_event_ids,
            "rooms": {room_id: room.to_json() for room_id, room in self.rooms.items()},
        }

    def restore_hardcopy_state(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`hardcopy_state` saved. Extend with ``super()``."""
        if state.get("homeserver") not in (None, self.homeserver.url):
            raise HomeserverError(f"the hardcopy belongs to {state['homeserver']}, not {self.homeserver.url}")
        if self.user_id is not None and state.get("user_id") not in (None, self.user_id):
            raise GranolinError(f"the hardcopy belongs to {state['user_id']}, not {self.user_id}")
        self.base_url = state.get("base_url") or self.base_url
        self.user_id = state.get("user_id") or self.user_id
        self.access_token = state.get("access_token")
        self.refresh_token = state.get("refresh_token")
        self.device_id = state.get("device_id")
        self.next_batch = state.get("next_batch")
        self._work.restore([Job.from_json(job) for job in state.get("pending") or [] if isinstance(job, dict)])
        self.last_event_ids = dict(state.get("last_event_ids") or {})
        self.rooms = {room_id: Room.from_json(room_id, room) for room_id, room in (state.get("rooms") or {}).items()}

    def save_state(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the hardcopy atomically (to ``path`` or the client's hardcopy)."""
        target = path if path is not None else self.hardcopy
        if target is not None:
            hardcopy_file.write_atomically(target, self.hardcopy_state())

    def load_state(self, path: str | os.PathLike[str] | None = None) -> None:
        """Read the hardcopy (from ``path`` or the client's hardcopy)."""
        target = path if path is not None else self.hardcopy
        if target is None:
            raise GranolinError("this client has no hardcopy file")
        self.restore_hardcopy_state(hardcopy_file.read(target))

    def session_changed(self) -> None:
        self.save_state()

    def _save_soon(self) -> None:
        """Save once the current burst of finished handlers is over (one write for many)."""
        if not self._save_pending:
            self._save_pending = True
            asyncio.get_running_loop().call_soon(self._save_now)

    def _save_now(self) -> None:
        self._save_pending = False
        self.save_state()

    # --- handler registration ---------------------------------------------------

    def on(self, *event_types: type[Event], own: bool = False, concurrent: bool = False) -> Callable[[H], H]:
        """Decorator: call the function for each event of these types (all events if none).

        The bot's own events are skipped unless ``own`` is true. The handler
        runs after the handlers of the room's earlier events, unless it is
        ``concurrent``.
        """
        types = event_types or (Event,)

        def register(handler: H) -> H:
            name = f"on:{getattr(handler, '__qualname__', type(handler).__name__)}"
            handler_id, n = name, 1
            while handler_id in self._handlers:
                n += 1
                handler_id = f"{name}#{n}"
            self._handlers[handler_id] = Registered(handler_id, handler, types, own, concurrent)
            return handler

        return register

    def command(self, name: str, help: str = "", *, power_level: int | None = None, concurrent: bool = False) -> Callable[[H], H]:
        """Decorator: run the function when a text message starts with ``name``.

        The function gets the event and then the words of the message, converted
        as its signature says (see :mod:`granolin.commands`). With
        ``power_level``, only senders with at least that power level in the
        room may run it.
        """

        def register(handler: H) -> H:
            self._commands.add(Command.from_handler(name, handler, help, power_level=power_level, concurrent=concurrent))
            return handler

        return register

    @property
    def commands(self) -> CommandRegistry:
        return self._commands

    def im_the_sender(self, event: Event) -> bool:
        """True when the event was sent by this client's user."""
        return event.sender is not None and event.sender == self.user_id

    # --- the room store ---------------------------------------------------------

    def get_room(self, room_id: str) -> Room | None:
        """What the bot knows of a joined room, or None."""
        return self.rooms.get(room_id)

    def power_level(self, room_id: str, user_id: str) -> int | float:
        room = self.rooms.get(room_id)
        return room.power_level(user_id) if room is not None else 0

    def is_admin(self, room_id: str, user_id: str) -> bool:
        """True when ``user_id`` has power level 100 or more in the room."""
        room = self.rooms.get(room_id)
        return room is not None and room.is_admin(user_id)

    def display_name(self, room_id: str, user_id: str) -> str:
        """The name to show for ``user_id`` in the room (disambiguated when shared)."""
        room = self.rooms.get(room_id)
        return room.display_name(user_id) if room is not None else user_id

    def mention(self, room_id: str, user_id: str) -> tuple[str, str]:
        """A mention of ``user_id``: (plain text, HTML pill); send it with ``mentions=[user_id]``."""
        return (self.rooms.get(room_id) or Room(room_id)).mention(user_id)

    async def load_members(self, room_id: str) -> Room:
        """Fetch every member of a room into the store (lazy loading only sends those who speak)."""
        answer = await self.api("GET", f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/members")
        room = self.rooms.setdefault(room_id, Room(room_id))
        for raw in answer.get("chunk") or []:
            if isinstance(raw, dict) and raw.get("type") == "m.room.member" and isinstance(raw.get("state_key"), str):
                room.apply("m.room.member", raw["state_key"], raw.get("content") or {})
        return room

    def _update_rooms(self, response: Mapping[str, Any]) -> None:
        for room_id, section in joined_rooms(response).items():
            room = self.rooms.setdefault(room_id, Room(room_id))
            for raw in events_of(section, "state") + events_of(section, "state_after") + events_of(section, "timeline"):
                if isinstance(raw.get("state_key"), str) and isinstance(raw.get("content"), dict):
                    room.apply(str(raw.get("type")), raw["state_key"], raw["content"], raw.get("sender"))
                if raw.get("type") == "m.room.encrypted" and self.encryption is None:
                    self.warn_encrypted(room_id)
            if room.encrypted and self.encryption is None:
                self.warn_encrypted(room_id)
        for room_id, section in ((response.get("rooms") or {}).get("leave") or {}).items():
            if isinstance(section, dict):
                self.rooms.pop(room_id, None)
                self.last_event_ids.pop(room_id, None)

    # --- dispatch ---------------------------------------------------------------

    async def handle_event(self, event: Event) -> None:
        """Called for each event of a sync, in order. Override it (calling super()).

        The default queues the event for the handlers registered with
        :meth:`on` and :meth:`command` that want it.
        """
        mine = self.im_the_sender(event)
        wanted = [r.handler_id for r in self._handlers.values() if isinstance(event, r.types) and (r.own or not mine)]
        if isinstance(event, TextMessage) and not mine:
            match = self._commands.match(event.body)
            if match is not None:
                wanted.append(f"command:{match[0]}")
        if wanted:
            job = Job(event, wanted)
            if self._collecting is not None:
                self._collecting.append(job)
            else:
                self._work.add(job, self._concurrent_handlers(job))
                self._save_soon()

    def _concurrent_handlers(self, job: Job) -> set[str]:
        if self.ordering == "none":
            return set(job.remaining)
        concurrent = set()
        for handler_id in job.remaining:
            registered = self._handlers.get(handler_id)
            command = self._commands.get(handler_id.removeprefix("command:")) if handler_id.startswith("command:") else None
            if (registered is not None and registered.concurrent) or (command is not None and command.concurrent):
                concurrent.add(handler_id)
        return concurrent

    async def _execute(self, job: Job, handler_id: str) -> None:
        """Run one handler on one event, with its room and its send scope set."""
        room_token = current_room_id.set(job.event.room_id)
        scope_token = send_scope.set(SendScope(f"{job.seed}|{handler_id}"))
        try:
            if handler_id.startswith("command:"):
                await self._invoke(self._run_command, job.event)
            elif handler_id in self._handlers:
                await self._invoke(self._handlers[handler_id].handler, job.event)
            else:
                log.warning("no handler %s any more: event %s is dropped for it", handler_id, job.event.raw.get("event_id"))
        finally:
            send_scope.reset(scope_token)
            current_room_id.reset(room_token)

    async def _run_command(self, event: TextMessage) -> None:
        match = self._commands.match(event.body)
        if match is None:
            return
        command = self._commands.get(match[0])
        if command is None:
            await self.reply(event, self._commands.help_text(), notice=True)
            return
        if command.power_level is not None and event.room_id is not None and event.sender is not None:
            level = self.power_level(event.room_id, event.sender)
            if level < command.power_level:
                await self.reply(event, f"{command.name} needs power level {command.power_level}; yours is {level}.", notice=True)
                return
        try:
            values = command.parse(match[1])
        except ValueError as exc:
            await self.reply(event, str(exc), notice=True)
            return
        result = command.handler(event, *values)
        if inspect.isawaitable(result):
            await result

    async def _invoke(self, handler: Handler, *args: Any) -> None:
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("handler %s failed on %r", getattr(handler, "__qualname__", handler), args[0] if args else None)

    @property
    def pending(self) -> list[Job]:
        """The events whose handlers have not all finished (``job.event``, ``job.remaining``), oldest first."""
        return list(self._work.jobs)

    async def drain(self) -> None:
        """Wait until every queued handler (and any queued meanwhile) has finished.

        ``sync()`` returns once the events are queued, not handled; a script
        or test that calls it directly awaits this before looking at the results.
        """
        await self._work.drain()

    def sync_events(
        self, response: Mapping[str, Any], *, initial: bool = False, decrypted: Mapping[str, TimelineEvent | None] | None = None,
    ) -> Iterator[Event]:
        """The typed events of a /sync answer, in dispatch order (see :func:`granolin.syncing.sync_events`)."""
        return sync_events(response, skip_messages=initial and self.skip_backlog, decrypted=decrypted)

    async def dispatch(self, response: Mapping[str, Any], *, initial: bool = False) -> None:
        """Hand every event of a /sync answer to :meth:`handle_event`, then save and start the handlers.

        The room store is updated with the whole answer first. Encrypted
        events are decrypted; those held earlier whose room key has now
        arrived come first. The hardcopy then records, in one write, the new
        token with the handlers it brought (pending until they finish): a
        crash after it re-runs just those.
        """
        token = response.get("next_batch")
        if not isinstance(token, str):
            raise GranolinError("the /sync answer has no next_batch")
        self._update_rooms(response)
        late: list[TimelineEvent] = []
        decrypted: dict[str, TimelineEvent | None] = {}
        if self.encryption is not None and self.encryption.store is not None:
            late = self.encryption.take_decrypted()
            if not (initial and self.skip_backlog):
                decrypted = await self.encryption.decrypt_timelines(response)
        self._collecting = collected = []
        events = [*late, *self.sync_events(response, initial=initial, decrypted=decrypted)]
        try:
            for event in events:
                room_token = current_room_id.set(event.room_id)
                try:
                    await self._invoke(self.handle_event, event)
                finally:
                    current_room_id.reset(room_token)
        finally:
            self._collecting = None
        for room_id, section in joined_rooms(response).items():
            timeline = events_of(section, "timeline")
            if timeline and isinstance(timeline[-1].get("event_id"), str):
                self.last_event_ids[room_id] = timeline[-1]["event_id"]
        self.next_batch = token
        for job in collected:
            self._work.add(job, self._concurrent_handlers(job))  # the handlers start at the next await
        self.save_state()
        await self.room_verifications(events)
        if self.encryption is not None and self.encryption.store is not None:
            for event, reason in self.encryption.take_undecryptable(self.undecryptable_timeout):
                await self._invoke(self.on_undecryptable, event, reason)

    # --- sync -------------------------------------------------------------------

    async def fetch_sync(self, full_state: bool = False, extra_params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One /sync request (long-polling up to ``timeout`` ms), without dispatch."""
        params = {"timeout": str(self.timeout)}
        if self.sync_filter is not None:
            params["filter"] = json.dumps(self.sync_filter.to_json(), separators=(",", ":"))
        params |= extra_params or {}
        if self.next_batch:
            params["since"] = self.next_batch
        if full_state:
            params["full_state"] = "true"
        wait = aiohttp.ClientTimeout(total=self.timeout / 1000 + 60, sock_connect=30)
        return await self.api("GET", f"{CLIENT_V3}/sync", params=params, timeout=wait)

    async def fill_gaps(self, response: dict[str, Any]) -> None:
        """Put back the events a limited timeline left out (see :mod:`granolin.syncing`)."""
        for room_id, section in joined_rooms(response).items():
            timeline = section.get("timeline") or {}
            if not timeline.get("limited") or not isinstance(timeline.get("prev_batch"), str):
                continue

            async def fetch_page(token: str, limit: int, room_id: str = room_id) -> tuple[list[dict[str, Any]], str | None]:
                path = f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/messages"
                answer = await self.api("GET", path, params={"dir": "b", "from": token, "limit": str(limit)})
                end = answer.get("end")
                return [raw for raw in answer.get("chunk") or [] if isinstance(raw, dict)], end if isinstance(end, str) else None

            gap = await page_back(fetch_page, timeline["prev_batch"], last_handled=self.last_event_ids.get(room_id),
                                  own_user_id=self.user_id, limit=self.gap_fill_limit)
            shown = {raw.get("event_id") for raw in timeline.get("events") or []}
            missed = [raw for raw in gap.events if raw.get("event_id") not in shown]
            timeline["events"] = missed + list(timeline.get("events") or [])
            if missed:
                log.info("room %s: %d missed events fetched with /messages", room_id, len(missed))
            if not gap.closed:
                await self.on_gap(room_id, gap.resume_from)

    async def on_gap(self, room_id: str, older_from: str | None) -> None:
        """Called when more than ``gap_fill_limit`` events were missed in a room.

        The newest ``gap_fill_limit`` are handled; the older ones are not.
        ``older_from`` is the /messages token behind which they lie (see
        :meth:`messages`). The default logs a warning; override it to react.
        """
        log.warning("room %s: more than %d events were missed; the older ones are not handled", room_id, self.gap_fill_limit)

    async def sync(self, full_state: bool = False, extra_params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Synchronise once: fetch what changed since ``next_batch``, fill gaps, dispatch.

        With encryption on, the device's keys are published first (once), and
        the sync's to-device events and key counts are taken before dispatch.
        """
        initial = self.next_batch is None
        await self.prepare_encryption()
        response = await self.fetch_sync(full_state, extra_params)
        if self.encryption is not None:
            await self.encryption.receive_sync(response)
        if not initial:
            await self.fill_gaps(response)
        await self.dispatch(response, initial=initial)
        return response

    def stop(self) -> None:
        """Ask the sync loop to end; it interrupts a waiting /sync and cleans up."""
        self.running = False
        if self._stopped is not None:
            self._stopped.set()

    async def _unless_stopped(self, awaitable: Awaitable[Any]) -> tuple[bool, Any]:
        """Await ``awaitable`` unless stop() comes first; returns (finished, result)."""
        stopped = self._stopped or asyncio.Event()
        work = asyncio.ensure_future(awaitable)
        stopping = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if work.cancelled():
            return False, None
        return True, work.result()

    async def start(self, *, handle_signals: bool = True) -> None:
        """Run the sync loop until :meth:`stop`, then :meth:`clean_up`.

        The handlers left unfinished by the last run are queued again first.
        Failures back off exponentially with jitter; 429 waits as long as the
        server asks (capped); an access token that cannot be renewed ends the
        loop with :class:`UnknownTokenError`. SIGINT and SIGTERM stop the loop
        cleanly (when called from the main thread).
        """
        if not self.logged_in:
            raise GranolinError("log in (or load a hardcopy with an access token) before start()")
        self.running = True
        self._stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
        for room_id, room in self.rooms.items():
            if room.encrypted and self.encryption is None:
                self.warn_encrypted(room_id)
        if self._work.waiting:
            self._decrypt_pending()
            log.info("re-running the unfinished handlers of %d events", self._work.waiting)
            self._work.resume(self._concurrent_handlers)
        failures = 0
        try:
            while self.running:
                pause = 0.0
                try:
                    finished, _ = await self._unless_stopped(self.sync())
                    if not finished:
                        break
                    failures = 0
                except UnknownTokenError as exc:
                    how = "soft logout, and no password or refresh token to log in again" if exc.soft_logout else "hard logout"
                    log.error("the access token of %s is no longer valid (%s, %s): the bot stops; log in again", self.user_id, exc.errcode, how)
                    self.access_token = self.refresh_token = None
                    raise
                except RateLimitedError as exc:
                    failures += 1
                    pause = self.rate_limit_wait(exc, failures)
                    log.warning("sync rate limited; waiting %.1fs", pause)
                except Exception as exc:
                    failures += 1
                    pause = self.backoff.delay(failures)
                    expected = isinstance(exc, (MatrixError, aiohttp.ClientError, TimeoutError, OSError))
                    log.warning("sync failed (%s: %s); retry %d in %.1fs", type(exc).__name__, exc, failures, pause, exc_info=not expected)
                if pause:
                    await self._unless_stopped(asyncio.sleep(pause))
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.clean_up()

    async def clean_up(self) -> None:
        """Stop, let running handlers finish (up to ``shutdown_grace`` seconds), save the hardcopy, close."""
        self.running = False
        await self._work.stop(self.shutdown_grace)
        self.save_state()
        await self.close()

    def run(self, user: str | None = None, password: str | None = None, *, access_token: str | None = None) -> None:
        """Blocking entry point for scripts: log in if needed, then run the sync loop.

        A session in the hardcopy is used as it is; else ``access_token``
        (a token obtained elsewhere), else ``user`` and ``password``.
        """

        async def main() -> None:
            try:
                if user is not None and password is not None:
                    self._password_login = (user, password)  # for a soft logout, even with a saved session
                if not self.logged_in:
                    if access_token is not None:
                        await self.use_access_token(access_token)
                    elif user is not None and password is not None:
                        await self.login(user, password)
                    else:
                        raise GranolinError("not logged in: give user and password, an access token, or a hardcopy with a session")
            except BaseException:
                await self.close()
                raise
            await self.start()

        asyncio.run(main())

