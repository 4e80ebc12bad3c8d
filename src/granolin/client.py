"""The Matrix client: session state, the hardcopy, the API calls and the sync loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import mimetypes
import os
import signal
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from . import hardcopy as hardcopy_file
from .backoff import Backoff
from .commands import Command, CommandError, CommandRegistry
from .errors import GranolinError, HomeserverError, LoginError, MatrixError, RateLimitedError, UnknownTokenError
from .events import (
    AccountDataEvent,
    EphemeralEvent,
    Event,
    InvitationEvent,
    MessageEvent,
    RoomStateEvent,
    TextMessage,
    current_room_id,
    timeline_event,
)
from .homeserver import parse_homeserver, resolve_homeserver

log = logging.getLogger("granolin")

CLIENT_V3 = "/_matrix/client/v3"
MEDIA_V3 = "/_matrix/media/v3"
CLIENT_V1_MEDIA = "/_matrix/client/v1/media"

Handler = Callable[..., Awaitable[Any] | Any]
H = TypeVar("H", bound=Handler)


def _quote(segment: str) -> str:
    return quote(segment, safe="")


def _drop_none(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def parse_mxc(uri: str) -> tuple[str, str]:
    """Split ``mxc://server/media_id`` into its server name and media ID."""
    if not uri.startswith("mxc://"):
        raise ValueError(f"not an mxc:// URI: {uri!r}")
    server, _, media_id = uri[len("mxc://") :].partition("/")
    if not server or not media_id or "/" in media_id:
        raise ValueError(f"malformed mxc:// URI: {uri!r}")
    return server, media_id


@dataclass(frozen=True, slots=True)
class Media:
    """Downloaded content: its bytes and what the server said about them."""

    content: bytes
    content_type: str
    filename: str | None = None


@dataclass(slots=True, eq=False)
class _Batch:
    """The handlers still running for one sync; its token is durable once they end."""

    token: str
    pending: int = 0
    sealed: bool = False

    @property
    def done(self) -> bool:
        return self.sealed and self.pending == 0


def _matrix_error(method: str, path: str, status: int, headers: CIMultiDictProxy[str], body: bytes) -> MatrixError:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    errcode = data.get("errcode") if isinstance(data.get("errcode"), str) else None
    error = data.get("error") if isinstance(data.get("error"), str) else None
    retry_after = data.get("retry_after_ms")
    if not isinstance(retry_after, int):
        header = headers.get("Retry-After", "")
        retry_after = int(header) * 1000 if header.isdigit() else None
    cls: type[MatrixError] = MatrixError
    if status == 401 and errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
        cls = UnknownTokenError
    elif status == 429 or errcode == "M_LIMIT_EXCEEDED":
        cls = RateLimitedError
    return cls(status, errcode, error, method=method, path=path, body=data, retry_after_ms=retry_after)


class Client:
    """A Matrix client for bots.

    Subclass it and override :meth:`handle_event`, or register handlers with
    :meth:`on` and :meth:`command`; then :meth:`run` (blocking) or
    ``await start()``. State that must survive a restart is kept in the
    hardcopy file (``None`` disables it); subclasses add theirs by extending
    :meth:`hardcopy_state` and :meth:`restore_hardcopy_state` with ``super()``.
    """

    rate_limit_retries = 5
    """How many times a request answered 429 is retried before the error is raised."""
    shutdown_grace = 10.0
    """Seconds :meth:`clean_up` lets running handlers finish; the rest are cancelled and their syncs replayed."""

    def __init__(
        self,
        homeserver: str,
        user_id: str | None = None,
        hardcopy: str | os.PathLike[str] | None = "granolin.hardcopy.json",
        timeout: int = 30_000,
        ssl: bool = True,
        *,
        skip_backlog: bool = True,
        ordered: bool = False,
        help_command: str | None = "!help",
        backoff: Backoff = Backoff(),
    ) -> None:
        self.homeserver = parse_homeserver(homeserver, ssl=ssl)
        self.base_url: str | None = None if self.homeserver.discover else self.homeserver.url
        self.ssl = ssl
        self.user_id = user_id
        self.access_token: str | None = None
        self.device_id: str | None = None
        self.next_batch: str | None = None
        """The ``since`` of the next /sync."""
        self.handled_batch: str | None = None
        """The newest sync token whose events, and all before, were fully handled: what the hardcopy keeps."""
        self.timeout = timeout
        """Milliseconds a /sync long-poll waits for new events."""
        self.hardcopy = Path(hardcopy) if hardcopy is not None else None
        self.skip_backlog = skip_backlog
        self.ordered = ordered
        self.backoff = backoff
        self.running = False
        self._handlers: list[tuple[tuple[type[Event], ...], Handler, bool]] = []
        self._commands = CommandRegistry(help_command)
        self._session: aiohttp.ClientSession | None = None
        self._batches: deque[_Batch] = deque()
        self._batch: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped: asyncio.Event | None = None
        self._legacy_media = False
        if self.hardcopy is not None and self.hardcopy.exists():
            self.load_state()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(homeserver={self.homeserver.url!r}, user_id={self.user_id!r}, logged_in={self.logged_in})"

    # --- state and the hardcopy -------------------------------------------------

    @property
    def logged_in(self) -> bool:
        """True when the client holds an access token."""
        return self.access_token is not None

    def new_txn_id(self) -> str:
        """A transaction ID unique across restarts, even without the hardcopy."""
        return uuid.uuid4().hex

    def hardcopy_state(self) -> dict[str, Any]:
        """What to save in the hardcopy. Extend with ``{**super().hardcopy_state(), ...}``."""
        return {
            "homeserver": self.homeserver.url,
            "base_url": self.base_url,
            "user_id": self.user_id,
            "access_token": self.access_token,
            "device_id": self.device_id,
            "next_batch": self.handled_batch,
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
        self.device_id = state.get("device_id")
        self.next_batch = self.handled_batch = state.get("next_batch")

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

    # --- HTTP -------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120, sock_connect=30))
        return self._session

    async def resolve(self) -> str:
        """The base URL, found through .well-known the first time when needed."""
        if self.base_url is None:
            self.base_url = await resolve_homeserver(self._get_session(), self.homeserver)
        return self.base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[CIMultiDictProxy[str], bytes]:
        """Send one request; return the headers and body of a 2xx answer, else raise MatrixError.

        A 429 answer is retried after the delay the server asks for.
        """
        session = self._get_session()
        url = await self.resolve() + path
        sent_headers = dict(headers or {})
        if auth and self.access_token:
            sent_headers["Authorization"] = f"Bearer {self.access_token}"
        if json is not None:
            data = orjson.dumps(json)
            sent_headers["Content-Type"] = "application/json"
        options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        attempt = 0
        while True:
            async with session.request(method, url, data=data, params=params, headers=sent_headers, **options) as response:
                body = await response.read()
                log.debug("%s %s -> %d", method, path, response.status)
                if response.status < 300:
                    return response.headers, body
                error = _matrix_error(method, path, response.status, response.headers, body)
            attempt += 1
            if not isinstance(error, RateLimitedError) or attempt > self.rate_limit_retries:
                raise error
            wait = error.retry_after_ms / 1000 if error.retry_after_ms is not None else self.backoff.delay(attempt)
            log.info("rate limited on %s %s, retrying in %.1fs", method, path, wait)
            await asyncio.sleep(wait)

    async def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Call a JSON endpoint (``path`` from ``/_matrix``) and return its JSON answer."""
        _, body = await self.request(method, path, **kwargs)
        answer = orjson.loads(body) if body else {}
        if not isinstance(answer, dict):
            raise GranolinError(f"{method} {path} did not answer with a JSON object")
        return answer

    async def close(self) -> None:
        """Close the HTTP connections (the client can be used again afterwards)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- session ----------------------------------------------------------------

    async def login(self, user: str, password: str, device_name: str = "Granolin", *, device_id: str | None = None) -> str:
        """Log in with a password and keep the access token; returns the user ID.

        ``user`` is a localpart or a full user ID. Errors never contain the password.
        """
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": device_name,
            **_drop_none(device_id=device_id or self.device_id),
        }
        try:
            answer = await self.api("POST", f"{CLIENT_V3}/login", json=body, auth=False)
        except MatrixError as exc:
            raise LoginError(
                exc.status,
                exc.errcode,
                f"login as {user} failed" + (f": {exc.error}" if exc.error else ""),
                method=exc.method,
                path=exc.path,
                body=exc.body,
                retry_after_ms=exc.retry_after_ms,
            ) from None
        self.user_id = answer["user_id"]
        self.access_token = answer["access_token"]
        self.device_id = answer.get("device_id")
        return self.user_id

    async def logout(self) -> None:
        """Invalidate the access token on the server and forget it."""
        await self.api("POST", f"{CLIENT_V3}/logout", json={})
        self.access_token = None

    async def whoami(self) -> dict[str, Any]:
        """The user (and device) the access token belongs to."""
        return await self.api("GET", f"{CLIENT_V3}/account/whoami")

    # --- handler registration ---------------------------------------------------

    def on(self, *event_types: type[Event], own: bool = False) -> Callable[[H], H]:
        """Decorator: call the function for each event of these types (all events if none).

        The bot's own events are skipped unless ``own`` is true.
        """
        types = event_types or (Event,)

        def register(handler: H) -> H:
            self._handlers.append((types, handler, own))
            return handler

        return register

    def command(self, name: str, help: str = "") -> Callable[[H], H]:
        """Decorator: run the function when a text message starts with ``name``.

        The function gets the event and then the words of the message, converted
        as its signature says (see :mod:`granolin.commands`).
        """

        def register(handler: H) -> H:
            self._commands.add(Command.from_handler(name, handler, help))
            return handler

        return register

    @property
    def commands(self) -> CommandRegistry:
        return self._commands

    def im_the_sender(self, event: Event) -> bool:
        """True when the event was sent by this client's user."""
        return event.sender is not None and event.sender == self.user_id

    # --- dispatch ---------------------------------------------------------------

    async def handle_event(self, event: Event) -> None:
        """Called for each event of a sync, in order. Override it (calling super()).

        The default runs the handlers registered with :meth:`on` and
        :meth:`command`; they run concurrently unless the client is ``ordered``.
        """
        mine = self.im_the_sender(event)
        for types, handler, own in self._handlers:
            if isinstance(event, types) and (own or not mine):
                await self._run_handler(handler, event)
        if isinstance(event, TextMessage) and not mine:
            match = self._commands.match(event.body)
            if match is not None:
                await self._run_handler(self._run_command, event, *match)

    async def _run_command(self, event: TextMessage, name: str, arguments: str) -> None:
        command = self._commands.get(name)
        if command is None:
            await self.reply(event, self._commands.help_text(), notice=True)
            return
        try:
            values = command.parse(arguments)
        except CommandError as exc:
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

    async def _run_handler(self, handler: Handler, *args: Any) -> None:
        if self.ordered:
            await self._invoke(handler, *args)
            return
        task = asyncio.get_running_loop().create_task(self._invoke(handler, *args))
        self._tasks.add(task)
        batch = self._batch
        if batch is not None:
            batch.pending += 1
        task.add_done_callback(lambda finished: self._task_done(finished, batch))

    def _task_done(self, task: asyncio.Task[None], batch: _Batch | None) -> None:
        self._tasks.discard(task)
        if batch is not None and not task.cancelled():
            batch.pending -= 1
            self._settle()

    async def drain(self) -> None:
        """Wait until every handler task started so far, and any they start, has finished.

        ``sync()`` returns once the events are dispatched, not handled; a script
        or test that calls it directly awaits this before looking at the results.
        """
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _settle(self) -> None:
        """Advance the durable token past every sync whose handlers all finished, then save."""
        advanced = False
        while self._batches and self._batches[0].done:
            self.handled_batch = self._batches.popleft().token
            advanced = True
        if advanced:
            self.save_state()

    def sync_events(self, response: Mapping[str, Any], *, initial: bool = False) -> Iterator[Event]:
        """The typed events of a /sync answer, in the order they are dispatched.

        Per joined room: state (which precedes the timeline), timeline, ephemeral
        events, room account data. Then invites, the state changes of left rooms
        and global account data. With ``initial`` and ``skip_backlog``, the
        timeline's non-state events (old messages) are left out.
        """
        rooms = response.get("rooms") or {}
        skip_messages = initial and self.skip_backlog
        for room_id, room in (rooms.get("join") or {}).items():
            for raw in _events(room, "state") + _events(room, "state_after"):
                yield timeline_event(raw, room_id)
            for raw in _events(room, "timeline"):
                event = timeline_event(raw, room_id)
                if not skip_messages or isinstance(event, RoomStateEvent):
                    yield event
            for raw in _events(room, "ephemeral"):
                yield EphemeralEvent(raw, room_id)
            for raw in _events(room, "account_data"):
                yield AccountDataEvent(raw, room_id)
        for room_id, room in (rooms.get("invite") or {}).items():
            for raw in _events(room, "invite_state"):
                yield InvitationEvent(raw, room_id)
        for room_id, room in (rooms.get("leave") or {}).items():
            for raw in _events(room, "state") + _events(room, "timeline"):
                if "state_key" in raw:
                    yield timeline_event(raw, room_id)
        for raw in _events(response, "account_data"):
            yield AccountDataEvent(raw)

    async def dispatch(self, response: Mapping[str, Any], *, initial: bool = False) -> None:
        """Hand every event of a /sync answer to :meth:`handle_event`, then checkpoint.

        The hardcopy's ``next_batch`` moves to this sync's token only once the
        handlers of this sync (and of every earlier one) have finished: a crash
        replays the unfinished syncs and never skips one.
        """
        token = response.get("next_batch")
        if not isinstance(token, str):
            raise GranolinError("the /sync answer has no next_batch")
        batch = _Batch(token)
        self._batches.append(batch)
        self._batch = batch
        try:
            for event in self.sync_events(response, initial=initial):
                room_token = current_room_id.set(event.room_id)
                try:
                    await self._invoke(self.handle_event, event)
                finally:
                    current_room_id.reset(room_token)
        except BaseException:
            # next_batch stays put, so the next /sync fetches these events again.
            self._batches.remove(batch)
            raise
        finally:
            self._batch = None
        self.next_batch = token
        batch.sealed = True
        self._settle()

    # --- sync -------------------------------------------------------------------

    async def fetch_sync(self, full_state: bool = False, extra_params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One /sync request (long-polling up to ``timeout`` ms), without dispatch."""
        params = {"timeout": str(self.timeout), **(extra_params or {})}
        if self.next_batch:
            params["since"] = self.next_batch
        if full_state:
            params["full_state"] = "true"
        wait = aiohttp.ClientTimeout(total=self.timeout / 1000 + 60, sock_connect=30)
        return await self.api("GET", f"{CLIENT_V3}/sync", params=params, timeout=wait)

    async def sync(self, full_state: bool = False, extra_params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Synchronise once: fetch what changed since ``next_batch`` and dispatch it."""
        initial = self.next_batch is None
        response = await self.fetch_sync(full_state, extra_params)
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

        Failures back off exponentially with jitter; 429 waits as long as the
        server asks; an invalid access token ends the loop with
        :class:`UnknownTokenError`. SIGINT and SIGTERM stop the loop cleanly
        (when called from the main thread).
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
        failures = 0
        try:
            while self.running:
                pause = 0.0
                initial = self.next_batch is None
                try:
                    finished, response = await self._unless_stopped(self.fetch_sync())
                    if not finished:
                        break
                    failures = 0
                    await self.dispatch(response, initial=initial)
                except UnknownTokenError as exc:
                    log.error("the access token of %s is no longer valid (%s): the bot must log in again", self.user_id, exc.errcode)
                    self.access_token = None
                    raise
                except RateLimitedError as exc:
                    failures += 1
                    pause = exc.retry_after_ms / 1000 if exc.retry_after_ms is not None else self.backoff.delay(failures)
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
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=self.shutdown_grace)
            for task in late:
                task.cancel()
        self.save_state()
        await self.close()

    def run(self, user: str | None = None, password: str | None = None) -> None:
        """Blocking entry point for scripts: log in if needed, then run the sync loop."""

        async def main() -> None:
            if not self.logged_in:
                if user is None or password is None:
                    raise GranolinError("not logged in: give user and password, or a hardcopy with a session")
                try:
                    await self.login(user, password)
                except BaseException:
                    await self.close()
                    raise
            await self.start()

        asyncio.run(main())

    # --- rooms and messages -----------------------------------------------------

    async def send_event(self, room_id: str, event_type: str, content: Mapping[str, Any]) -> str:
        """Send a room event; returns its event ID.

        A network failure is retried with the same transaction ID, so the
        server stores the event at most once.
        """
        path = f"{CLIENT_V3}/rooms/{_quote(room_id)}/send/{_quote(event_type)}/{_quote(self.new_txn_id())}"
        attempt = 1
        while True:
            try:
                return str((await self.api("PUT", path, json=content))["event_id"])
            except (aiohttp.ClientConnectionError, TimeoutError):
                if attempt == 3:
                    raise
                await asyncio.sleep(self.backoff.delay(attempt))
                attempt += 1

    async def send_state_event(self, room_id: str, event_type: str, content: Mapping[str, Any], state_key: str = "") -> str:
        """Set a piece of room state; returns the event ID."""
        path = f"{CLIENT_V3}/rooms/{_quote(room_id)}/state/{_quote(event_type)}/{_quote(state_key)}"
        return str((await self.api("PUT", path, json=content))["event_id"])

    async def send_text_message(self, room_id: str, message: str, *args: Any, html: str | None = None, notice: bool = False) -> str:
        """Send ``message`` (``message.format(*args)`` when args are given) as m.text or m.notice."""
        content: dict[str, Any] = {"msgtype": "m.notice" if notice else "m.text", "body": message.format(*args) if args else message}
        if html is not None:
            content |= {"format": "org.matrix.custom.html", "formatted_body": html}
        return await self.send_event(room_id, "m.room.message", content)

    async def send_notice(self, room_id: str, message: str, *args: Any) -> str:
        """Send an m.notice, the message type bots use so other bots do not answer."""
        return await self.send_text_message(room_id, message, *args, notice=True)

    async def send_media_message(
        self,
        room_id: str,
        alt_text: str,
        mxc_uri: str,
        msgtype: str,
        info: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Send a message pointing at uploaded content (m.image, m.video, m.audio, m.file)."""
        content: dict[str, Any] = {"msgtype": msgtype, "body": alt_text, "url": mxc_uri}
        if info:
            content["info"] = dict(info)
        content |= extra or {}
        return await self.send_event(room_id, "m.room.message", content)

    async def send_image_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        mimetype: str | None = None, w: int | None = None, h: int | None = None, size: int | None = None,
    ) -> str:
        """Send an m.image; ``info`` wins, else it is built from the other keywords."""
        built = info or _drop_none(mimetype=mimetype, w=w, h=h, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.image", built)

    async def send_video_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        duration: int | None = None, w: int | None = None, h: int | None = None, mimetype: str | None = None, size: int | None = None,
    ) -> str:
        """Send an m.video; ``info`` wins, else it is built from the other keywords."""
        built = info or _drop_none(duration=duration, w=w, h=h, mimetype=mimetype, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.video", built)

    async def send_audio_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        duration: int | None = None, mimetype: str | None = None, size: int | None = None,
    ) -> str:
        """Send an m.audio; ``info`` wins, else it is built from the other keywords."""
        built = info or _drop_none(duration=duration, mimetype=mimetype, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.audio", built)

    async def send_file_message(
        self, room_id: str, alt_text: str, mxc_uri: str, *, info: Mapping[str, Any] | None = None,
        filename: str | None = None, mimetype: str | None = None, size: int | None = None,
    ) -> str:
        """Send an m.file; ``info`` wins, else it is built from the other keywords."""
        built = info or _drop_none(mimetype=mimetype, size=size)
        return await self.send_media_message(room_id, alt_text, mxc_uri, "m.file", built, _drop_none(filename=filename))

    async def reply(self, event: MessageEvent, message: str, *args: Any, notice: bool = False) -> str:
        """Answer ``event`` with a rich reply in its room, mentioning its sender."""
        if event.room_id is None or event.event_id is None:
            raise GranolinError("can only reply to a room event with an event ID")
        content: dict[str, Any] = {
            "msgtype": "m.notice" if notice else "m.text",
            "body": message.format(*args) if args else message,
            "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
        }
        if event.sender and event.sender != self.user_id:
            content["m.mentions"] = {"user_ids": [event.sender]}
        return await self.send_event(event.room_id, "m.room.message", content)

    async def edit(self, room_id: str, event_id: str, message: str, *args: Any) -> str:
        """Replace the text of an earlier message (m.replace)."""
        text = message.format(*args) if args else message
        content = {
            "msgtype": "m.text",
            "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return await self.send_event(room_id, "m.room.message", content)

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        """Annotate an event with a reaction (usually an emoji)."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send_event(room_id, "m.reaction", content)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        """Redact (delete the content of) an event; returns the redaction's event ID."""
        path = f"{CLIENT_V3}/rooms/{_quote(room_id)}/redact/{_quote(event_id)}/{_quote(self.new_txn_id())}"
        return str((await self.api("PUT", path, json=_drop_none(reason=reason)))["event_id"])

    async def set_typing(self, room_id: str, typing: bool = True, timeout: int = 30_000) -> None:
        """Show (or stop showing) that the bot is typing in a room."""
        path = f"{CLIENT_V3}/rooms/{_quote(room_id)}/typing/{_quote(self._me())}"
        await self.api("PUT", path, json={"typing": typing, **({"timeout": timeout} if typing else {})})

    async def send_read_receipt(self, room_id: str, event_id: str, receipt_type: str = "m.read") -> None:
        """Mark an event (and everything before it) as read."""
        path = f"{CLIENT_V3}/rooms/{_quote(room_id)}/receipt/{_quote(receipt_type)}/{_quote(event_id)}"
        await self.api("POST", path, json={})

    async def create_room(
        self,
        name: str | None = None,
        *,
        invite: list[str] | tuple[str, ...] = (),
        is_direct: bool = False,
        preset: str | None = None,
        topic: str | None = None,
        visibility: str = "private",
        room_alias_name: str | None = None,
        initial_state: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Create a room; returns its ID. Extra keywords go into the request as they are."""
        body = _drop_none(name=name, preset=preset, topic=topic, room_alias_name=room_alias_name, initial_state=initial_state)
        body |= {"visibility": visibility, "invite": list(invite), "is_direct": is_direct, **extra}
        return str((await self.api("POST", f"{CLIENT_V3}/createRoom", json=body))["room_id"])

    async def join_room(self, room_id_or_alias: str) -> str:
        """Join a room by ID or alias; returns the room ID."""
        answer = await self.api("POST", f"{CLIENT_V3}/join/{_quote(room_id_or_alias)}", json={})
        return str(answer["room_id"])

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        """Invite a user to a room."""
        await self.api("POST", f"{CLIENT_V3}/rooms/{_quote(room_id)}/invite", json={"user_id": user_id, **_drop_none(reason=reason)})

    async def leave_room(self, room_id: str, reason: str | None = None) -> None:
        """Leave a room (or decline an invitation)."""
        await self.api("POST", f"{CLIENT_V3}/rooms/{_quote(room_id)}/leave", json=_drop_none(reason=reason))

    async def get_joined_rooms(self) -> list[str]:
        """The IDs of the rooms the bot has joined."""
        return list((await self.api("GET", f"{CLIENT_V3}/joined_rooms"))["joined_rooms"])

    async def get_state(self, room_id: str, event_type: str | None = None, state_key: str = "") -> Any:
        """All state events of a room (no ``event_type``), or the content of one."""
        path = f"{CLIENT_V3}/rooms/{_quote(room_id)}/state"
        if event_type is None:
            _, body = await self.request("GET", path)
            return orjson.loads(body)
        return await self.api("GET", f"{path}/{_quote(event_type)}/{_quote(state_key)}")

    async def get_room_members(self, room_id: str) -> dict[str, dict[str, Any]]:
        """The joined members of a room: user ID -> display_name and avatar_url."""
        return dict((await self.api("GET", f"{CLIENT_V3}/rooms/{_quote(room_id)}/joined_members"))["joined"])

    # --- account ----------------------------------------------------------------

    def _me(self) -> str:
        if self.user_id is None:
            raise GranolinError("the client has no user ID yet: log in first")
        return self.user_id

    async def update_account_data(self, event_type: str, data: Mapping[str, Any]) -> None:
        """Store ``data`` as the account data of ``event_type`` (e.g. m.direct)."""
        await self.api("PUT", f"{CLIENT_V3}/user/{_quote(self._me())}/account_data/{_quote(event_type)}", json=dict(data))

    async def get_account_data(self, event_type: str) -> dict[str, Any]:
        """Read the account data of ``event_type``."""
        return await self.api("GET", f"{CLIENT_V3}/user/{_quote(self._me())}/account_data/{_quote(event_type)}")

    async def user_search(self, query: str, limit: int = 10) -> dict[str, Any]:
        """Search the user directory: ``{"results": [{"user_id", "display_name", "avatar_url"}], "limited"}``."""
        return await self.api("POST", f"{CLIENT_V3}/user_directory/search", json={"search_term": query, "limit": limit})

    # --- media ------------------------------------------------------------------

    async def upload(self, filename: str, content: bytes | str, content_type: str | None = None) -> str:
        """Upload content to the media repository; returns its mxc:// URI.

        ``content_type`` defaults to a guess from the file name.
        """
        data = content.encode() if isinstance(content, str) else content
        kind = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        answer = await self.api(
            "POST", f"{MEDIA_V3}/upload", data=data, params={"filename": filename}, headers={"Content-Type": kind},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
        )
        return str(answer["content_uri"])

    async def _media(self, kind: str, mxc_uri: str, params: Mapping[str, str]) -> Media:
        server, media_id = parse_mxc(mxc_uri)
        tail = f"/{kind}/{_quote(server)}/{_quote(media_id)}"
        if not self._legacy_media:
            try:
                headers, body = await self.request("GET", CLIENT_V1_MEDIA + tail, params=params)
                return _media_from(headers, body)
            except MatrixError as exc:
                if not exc.unrecognized:
                    raise
                log.info("the server has no authenticated media endpoints; using %s", MEDIA_V3)
                self._legacy_media = True
        headers, body = await self.request("GET", MEDIA_V3 + tail, params=params)
        return _media_from(headers, body)

    async def download(self, mxc_uri: str) -> Media:
        """Download content (authenticated media, falling back to the old endpoint)."""
        return await self._media("download", mxc_uri, {})

    async def thumbnail(self, mxc_uri: str, width: int, height: int, method: str = "scale", animated: bool | None = None) -> Media:
        """Download a thumbnail of content, ``method`` being "scale" or "crop"."""
        params = {"width": str(width), "height": str(height), "method": method}
        if animated is not None:
            params["animated"] = "true" if animated else "false"
        return await self._media("thumbnail", mxc_uri, params)


def _events(container: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
    events = (container.get(section) or {}).get("events") or []
    return [event for event in events if isinstance(event, dict)]


def _media_from(headers: CIMultiDictProxy[str], body: bytes) -> Media:
    disposition = headers.get("Content-Disposition", "")
    filename = None
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            filename = value.strip('"')
    return Media(content=body, content_type=headers.get("Content-Type", "application/octet-stream"), filename=filename)
