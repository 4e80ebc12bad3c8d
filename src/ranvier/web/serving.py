"""The listeners: guarded against slow and greedy clients, and stopped without dropping
the requests in flight.

- Header timeout: aiohttp closes a connection on which no complete request arrived within
  its keep-alive timeout, counted from the connection and again from each response (data
  that does not complete a request does not restart it). That is exactly a header
  timeout, so `limits.request_header_timeout_ms` is handed to it; it is also how long an
  idle kept-alive connection stays open.
- Body timeout: `web/http.py` reads bodies part by part and answers 408 when the next
  part is `limits.request_body_timeout_ms` late.
- Connections per address: `GuardedRequestHandler`, aiohttp's protocol with a check when
  a connection is made. A connection past `limits.max_connections_per_address` is closed
  before aiohttp sets anything up for it; the address is named in a warning once a
  minute while it keeps trying, never once per connection.
- Open files: `raise_open_files_limit` lifts the soft limit to the hard one at start (a
  login shell's default of 1,024 lets about a thousand idle connections stop `accept`).
- Stop: stop accepting, answer long polls, let the requests in flight finish (at most
  `limits.shutdown_grace_ms`), then close what is left. aiohttp's own shutdown stops
  reading from every connection at once, which cuts uploads in mid-body, so it runs only
  after the requests have finished.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import ssl
import time
from typing import Any, Callable

from aiohttp import web

log = logging.getLogger("ranvier.web")

#: How often a refused address is named again while it keeps trying.
REFUSAL_LOG_INTERVAL_S = 60.0


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log.info("open files limit raised from %d to %d (each connection takes one)", soft, hard)
        return soft, hard
    return soft, soft


class ConnectionGuard:
    """Counts open connections per client address and refuses those past the cap."""

    def __init__(self, per_address: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_address = per_address
        self._clock = clock
        self._open: dict[str, int] = {}
        #: address -> (when it was last named in the log, refusals since)
        self._refusals: dict[str, tuple[float, int]] = {}

    def admit(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if self.per_address and count >= self.per_address:
            self._refused(address)
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def _refused(self, address: str) -> None:
        now = self._clock()
        logged_at, refused = self._refusals.get(address, (None, 0))
        refused += 1
        if logged_at is None or now - logged_at >= REFUSAL_LOG_INTERVAL_S:
            log.warning("refusing connections from %s: it holds %d open already (limits.max_connections_per_address); "
                        "%d refused since the last such line, next one in %.0f s at the earliest", address,
                        self.per_address, refused, REFUSAL_LOG_INTERVAL_S)
            self._refusals[address] = (now, 0)
        else:
            self._refusals[address] = (logged_at, refused)
        if len(self._refusals) > 10_000:  # forget the oldest: many addresses, each logged once a minute anyway
            self._refusals.pop(next(iter(self._refusals)))


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's HTTP protocol, which first asks the guard whether the address may connect."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, *, x_forwarded: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        #: This listener is reached through a reverse proxy whose X-Forwarded-For is trusted.
        self.x_forwarded = x_forwarded
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        if not self._guard.admit(address):
            transport.close()
            return
        self._address = address
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is None:  # refused: aiohttp never saw it
            return
        self._guard.release(self._address)
        super().connection_lost(exc)


def forwarded_address(header: str | None) -> str | None:
    """The last address of an X-Forwarded-For header (the one the proxy in front saw), if
    it is an IP address."""
    if not header:
        return None
    candidate = header.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class InFlight:
    """Counts the requests being handled, so a stop can wait for them; while draining,
    each response closes its connection. Its middleware (the outermost, one for both
    jobs: every layer costs each request) also gives a request on a listener with
    `x_forwarded` the client's address as the proxy reports it."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if getattr(request.protocol, "x_forwarded", False):
            address = forwarded_address(request.headers.get("X-Forwarded-For"))
            if address is not None:
                request = request.clone(remote=address)
        self.count += 1
        self._idle.clear()
        try:
            response = await handler(request)
            if self.draining:
                response.force_close()
            return response
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most `timeout` seconds; True if none is."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class HttpServer:
    """The application on the configured listeners."""

    def __init__(self, app: web.Application, *, header_timeout_s: float, per_address: int,
                 access_log: logging.Logger | None, access_log_class: type) -> None:
        self.in_flight = InFlight()
        app.middlewares.insert(0, self.in_flight.middleware)
        self.guard = ConnectionGuard(per_address)
        self._handler_args = {"keepalive_timeout": header_timeout_s, "access_log": access_log,
                              "access_log_class": access_log_class}
        # shutdown_timeout 0: by the time aiohttp shuts down, the grace period is over.
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0, **self._handler_args)
        self._listeners: list[asyncio.AbstractServer] = []

    async def listen(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                     x_forwarded: bool = False) -> int:
        """Start a listener (HTTPS with `ssl_context`, client addresses from X-Forwarded-For
        with `x_forwarded`); returns the port it is bound to (port 0 picks a free one)."""
        if self.runner.server is None:
            await self.runner.setup()
        loop = asyncio.get_running_loop()
        manager = self.runner.server

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(manager, self.guard, loop=loop, x_forwarded=x_forwarded,
                                         **self._handler_args)

        listener = await loop.create_server(protocol, host, port, reuse_address=True, ssl=ssl_context)
        self._listeners.append(listener)
        return listener.sockets[0].getsockname()[1]

    async def stop(self, grace_s: float, answer_long_polls: Callable[[], None]) -> None:
        """Stop accepting, answer long polls, wait for the requests in flight (at most
        `grace_s`), then close every connection and cancel what still runs."""
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self.in_flight.draining = True
        answer_long_polls()
        if not await self.in_flight.wait_idle(grace_s):
            log.warning("stopping with %d request(s) still in flight after %.1f s: they are cancelled",
                        self.in_flight.count, grace_s)
        await self.runner.cleanup()
