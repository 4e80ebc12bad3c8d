"""Thumbnails rendered in worker processes (`render_worker.py`), never in the server's.

Decoding an image is the one place where bytes any user uploads meet a C library
(Pillow and the codecs under it). In a worker, a decoder that crashes fails that one
thumbnail (M_UNKNOWN) instead of the server, and the decoded image, Pillow itself
(2 to 3 MiB once loaded) and whatever the C allocator keeps after a large image are
the worker's, handed back to the system when it exits.

At most `workers` processes run, each rendering one image at a time. A worker is started
by the first thumbnail that finds none idle (about 0.15 s: Python and Pillow loading; it
says when it is ready, and the render's time limit starts then), kept for the next ones,
and stopped once it has been idle for `idle_seconds`. A worker that dies, answers
nonsense or takes longer than `timeout_seconds` to render is killed and the thumbnail
refused; a request cancelled while its worker renders kills that worker too,
since its answer would be read by the next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys

import ranvier
from ranvier.media import render_worker
from ranvier.media.sizes import CannotThumbnail, ImageTooLarge, Rendered, Size

log = logging.getLogger(__name__)

#: Seconds a worker stays idle before it is stopped.
IDLE_SECONDS = 30.0
#: Longest render accepted; a 32-megapixel PNG takes about two seconds here.
TIMEOUT_SECONDS = 60.0
#: Longest start of a worker (Python and Pillow loading: about 0.15 s on an idle machine).
START_SECONDS = 30.0
#: Seconds a stopped worker has to exit before it is killed.
_EXIT_SECONDS = 5.0
#: Where the `ranvier` package is, for workers started from a source checkout.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ranvier.__file__)))


class _Broken(Exception):
    """The worker died or answered something that is not an answer."""


class _Worker:
    """One worker process, and the timer that stops it once idle."""

    __slots__ = ("process", "retirement")

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.retirement: asyncio.TimerHandle | None = None

    async def render(self, job: bytes) -> Rendered:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(job)
            await stdin.drain()
            answer = json.loads(await stdout.readuntil(b"\n"))
            if answer.get("error") == render_worker.TOO_LARGE:
                raise ImageTooLarge()
            if answer.get("error") == render_worker.CANNOT:
                raise CannotThumbnail(str(answer.get("reason", "")))
            length = answer["length"]
            data = None if length is None else await stdout.readexactly(length)
            return Rendered(data, answer["content_type"])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, KeyError,
                TypeError, AttributeError) as exc:
            raise _Broken(repr(exc)) from None


class ThumbnailRenderer:
    """Renders thumbnails in at most `workers` worker processes."""

    def __init__(self, workers: int, *, idle_seconds: float = IDLE_SECONDS,
                 timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._exits: set[asyncio.Task] = set()
        self._idle_seconds = idle_seconds
        self._timeout_seconds = timeout_seconds

    async def render(self, path: str, size: Size | None, animated: bool, max_pixels: int) -> Rendered:
        """The thumbnail of the image at `path` (`thumbnails.render`'s contract):
        ImageTooLarge or CannotThumbnail when there is none, including when the worker
        failed."""
        job = render_worker.job(path, (size.width, size.height, size.method) if size else None, animated,
                                max_pixels)
        async with self._slots:
            try:
                worker = self._idle.pop() if self._idle else await self._start()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError) as exc:
                log.error("cannot start a thumbnail worker: %r", exc)
                raise CannotThumbnail("no render worker") from None
            if worker.retirement is not None:
                worker.retirement.cancel()
            try:
                rendered = await asyncio.wait_for(worker.render(job), self._timeout_seconds)
            except (ImageTooLarge, CannotThumbnail):
                self._rest(worker)
                raise
            except (_Broken, asyncio.TimeoutError) as exc:
                self._kill(worker)
                log.warning("thumbnail worker %s failed on %s: %s", worker.process.pid, path,
                            "timed out" if isinstance(exc, asyncio.TimeoutError) else exc)
                raise CannotThumbnail("the render worker failed") from None
            except BaseException:  # cancelled: the answer still coming would be the next job's
                self._kill(worker)
                raise
            self._rest(worker)
            return rendered

    async def close(self) -> None:
        """Stop every worker (a busy one is killed: its request is over) and wait for them
        to exit."""
        for worker in list(self._running):
            if worker in self._idle:
                self._stop(worker)
            else:
                self._kill(worker)
        while self._exits:
            await asyncio.gather(*self._exits, return_exceptions=True)

    async def _start(self) -> _Worker:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, environment.get("PYTHONPATH")]))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", render_worker.__name__, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=environment,
        )
        worker = _Worker(process)
        self._running.add(worker)
        assert process.stdout is not None
        try:
            ready = await asyncio.wait_for(process.stdout.readuntil(b"\n"), START_SECONDS)
        except BaseException:
            self._kill(worker)
            raise
        if ready != render_worker.READY:
            self._kill(worker)
            raise OSError(f"the worker said {ready[:80]!r} instead of being ready")
        return worker

    def _rest(self, worker: _Worker) -> None:
        self._idle.append(worker)
        worker.retirement = asyncio.get_running_loop().call_later(self._idle_seconds, self._stop, worker)

    def _stop(self, worker: _Worker) -> None:
        """Close the worker's input, which ends it; kill it if it does not exit."""
        if worker.retirement is not None:
            worker.retirement.cancel()
        if worker in self._idle:
            self._idle.remove(worker)
        if worker.process.stdin is not None:
            worker.process.stdin.close()
        self._await_exit(worker, _EXIT_SECONDS)

    def _kill(self, worker: _Worker) -> None:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            worker.process.kill()
        self._await_exit(worker, None)

    def _await_exit(self, worker: _Worker, seconds: float | None) -> None:
        if worker not in self._running:
            return
        self._running.discard(worker)

        async def exited() -> None:
            try:
                await asyncio.wait_for(worker.process.wait(), seconds)
            except asyncio.TimeoutError:
                log.warning("thumbnail worker %s did not exit; killed", worker.process.pid)
                worker.process.kill()
                await worker.process.wait()

        task = asyncio.get_running_loop().create_task(exited())
        self._exits.add(task)
        task.add_done_callback(self._exits.discard)
