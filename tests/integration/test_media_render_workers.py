"""Thumbnail render workers (`media/renderer.py`): real worker processes, started, reused,
stopped when idle, killed when they fail, never more than asked for."""

from __future__ import annotations

import asyncio
import io
import os
import time

import pytest
from PIL import Image

from ranvier.media import renderer as renderer_module
from ranvier.media.renderer import ThumbnailRenderer
from ranvier.media.sizes import CannotThumbnail, ImageTooLarge, Size

MAX_PIXELS = 32 * 1024 * 1024
SMALL = Size(96, 96, "crop")


def workers() -> set[int]:
    """PIDs of this process's children that are render workers."""
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                arguments = cmdline.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b"ranvier.media.render_worker" in arguments:
            found.add(int(pid))
    return found


async def until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
def image(tmp_path) -> str:
    path = tmp_path / "photo.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return str(path)


def stalled(tmp_path, name: str) -> str:
    """A FIFO nobody writes to: a worker opening it blocks until the test lets it go."""
    path = tmp_path / name
    os.mkfifo(path)
    return str(path)


def released(path: str) -> bool:
    """Let a worker blocked on the FIFO at `path` go on (it then finds no image); False
    while no worker has opened it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


@pytest.fixture
async def renderers():
    made = []

    def make(**options) -> ThumbnailRenderer:
        made.append(ThumbnailRenderer(2, **options))
        return made[-1]

    yield make
    for each in made:
        await each.close()
    assert not workers(), "workers outlived their renderer"


async def test_a_worker_renders_and_is_reused(renderers, image):
    render = renderers()
    assert not workers()
    first = await render.render(image, SMALL, False, MAX_PIXELS)
    assert first.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(first.data)).size == (96, 96)
    started = workers()
    assert len(started) == 1
    second = await render.render(image, Size(320, 240, "scale"), False, MAX_PIXELS)
    assert Image.open(io.BytesIO(second.data)).size == (320, 240)
    assert workers() == started, "the idle worker should have rendered the second thumbnail"


async def test_refusals_come_back_and_keep_the_worker(renderers, image, tmp_path):
    render = renderers()
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(CannotThumbnail):
        await render.render(str(tmp_path / "notes.txt"), SMALL, False, MAX_PIXELS)
    with pytest.raises(ImageTooLarge):
        await render.render(image, SMALL, False, 640 * 480 - 1)
    started = workers()
    assert (await render.render(image, None, False, MAX_PIXELS)).data is None  # fit to serve as it is
    assert workers() == started and len(started) == 1


async def test_idle_workers_are_stopped(renderers, image):
    render = renderers(idle_seconds=0.3)
    await render.render(image, SMALL, False, MAX_PIXELS)
    assert workers()
    await until(lambda: not workers())
    assert (await render.render(image, SMALL, False, MAX_PIXELS)).data, "a new worker is started when needed"


async def test_a_dying_worker_fails_one_thumbnail_only(renderers, image, tmp_path):
    render = renderers()
    pending = asyncio.ensure_future(render.render(stalled(tmp_path, "fifo"), SMALL, False, MAX_PIXELS))
    await until(lambda: len(workers()) == 1)
    (victim,) = workers()
    os.kill(victim, 9)  # as a decoder crashing would end it
    with pytest.raises(CannotThumbnail):
        await pending
    assert (await render.render(image, SMALL, False, MAX_PIXELS)).data
    assert victim not in workers()


async def test_a_slow_render_is_killed(renderers, image, tmp_path):
    render = renderers(timeout_seconds=1.0)
    with pytest.raises(CannotThumbnail):
        await render.render(stalled(tmp_path, "fifo"), SMALL, False, MAX_PIXELS)
    await until(lambda: not workers())
    assert (await render.render(image, SMALL, False, MAX_PIXELS)).data


async def test_a_worker_that_is_not_ready_in_time_is_killed(renderers, image, monkeypatch):
    monkeypatch.setattr(renderer_module, "START_SECONDS", 0.001)
    render = renderers()
    with pytest.raises(CannotThumbnail):
        await render.render(image, SMALL, False, MAX_PIXELS)
    await until(lambda: not workers())
    monkeypatch.setattr(renderer_module, "START_SECONDS", 30.0)
    assert (await render.render(image, SMALL, False, MAX_PIXELS)).data


async def test_a_cancelled_render_kills_its_worker(renderers, image, tmp_path):
    render = renderers()
    pending = asyncio.ensure_future(render.render(stalled(tmp_path, "fifo"), SMALL, False, MAX_PIXELS))
    await until(lambda: len(workers()) == 1)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await until(lambda: not workers())
    first = await render.render(image, SMALL, False, MAX_PIXELS)
    assert Image.open(io.BytesIO(first.data)).size == (96, 96), "no answer of the cancelled job was read"


async def test_never_more_workers_than_asked(renderers, tmp_path):
    render = renderers()
    fifos = [stalled(tmp_path, f"fifo{n}") for n in range(3)]
    pending = [asyncio.ensure_future(render.render(fifo, SMALL, False, MAX_PIXELS)) for fifo in fifos]
    await until(lambda: len(workers()) == 2)
    await asyncio.sleep(0.5)
    assert len(workers()) == 2, "the third job must wait for a worker"
    for fifo in fifos:
        await until(lambda: released(fifo))
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(result, CannotThumbnail) for result in results), results
    assert len(workers()) == 2


async def test_close_stops_every_worker_at_once(renderers, image, tmp_path):
    render = renderers()
    busy = asyncio.ensure_future(render.render(stalled(tmp_path, "fifo"), SMALL, False, MAX_PIXELS))
    await render.render(image, SMALL, False, MAX_PIXELS)
    await until(lambda: len(workers()) == 2)
    started = time.monotonic()
    await render.close()
    assert not workers()
    assert time.monotonic() - started < 2, "a busy worker is killed, not waited for"
    with pytest.raises(CannotThumbnail):
        await busy
