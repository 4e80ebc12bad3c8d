"""Thumbnails over real HTTP: sizes and methods, the cache, animation, EXIF, hostile images."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import zlib

import pytest
from PIL import Image

from tests.integration.test_media import error, fetch, media_settings, server_config, token, upload  # noqa: F401

THUMBNAIL = "/_matrix/client/v1/media/thumbnail/localhost/{}"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """A picture with detail everywhere, so a wrong crop or scale shows in the output size."""
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def animation(fmt: str, frames: int = 3, size=(400, 300)) -> bytes:
    colours = ["red", "green", "blue", "yellow"]
    images = [Image.new("RGB", size, colours[i % len(colours)]) for i in range(frames)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=80, loop=0)


async def thumbnail(api, token, media_id, **params):
    params = {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in params.items()}
    return await fetch(api, THUMBNAIL.format(media_id), token, params=params)


async def test_thumbnails_have_the_suggested_sizes_and_methods(api, token):
    media_id = await upload(api, token, encode(gradient(1000, 800), "PNG"), "image/png")
    cases = [
        ({"width": 32, "height": 32, "method": "crop"}, (32, 32)),
        ({"width": 50, "height": 50, "method": "crop"}, (96, 96)),
        ({"width": 96, "height": 96, "method": "scale"}, (300, 240)),
        ({"width": 640, "height": 480, "method": "scale"}, (600, 480)),
        ({"width": 700, "height": 500}, (750, 600)),
        ({"width": 200, "height": 150, "method": "crop"}, (300, 240)),
        ({"width": 1000, "height": 1000, "method": "scale"}, (1000, 800)),
    ]
    for params, expected in cases:
        status, headers, body = await thumbnail(api, token, media_id, **params)
        assert status == 200, (params, body)
        assert headers["Content-Type"] == "image/png"
        assert headers["Content-Disposition"] == 'inline; filename="thumbnail.png"'
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert Image.open(io.BytesIO(body)).size == expected, params

    tall = await upload(api, token, encode(gradient(300, 900), "JPEG"), "image/jpeg")
    status, headers, body = await thumbnail(api, token, tall, width=96, height=96, method="crop")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).size == (96, 96)


async def test_small_images_are_served_as_they_are(api, token):
    original = encode(gradient(20, 10), "PNG")
    media_id = await upload(api, token, original, "image/png")
    for method in ("crop", "scale"):
        status, _, body = await thumbnail(api, token, media_id, width=96, height=96, method=method)
        assert (status, body) == (200, original)
    original = animation("GIF", size=(40, 30))
    media_id = await upload(api, token, original, "image/gif")
    status, headers, body = await thumbnail(api, token, media_id, width=96, height=96, method="scale", animated=True)
    assert (status, headers["Content-Type"], body) == (200, "image/gif", original)




async def test_thumbnails_are_cached(api, token, homeserver, monkeypatch):
    media_id = await upload(api, token, encode(gradient(500, 500), "PNG"), "image/png")
    status, _, first = await thumbnail(api, token, media_id, width=96, height=96, method="crop")
    assert status == 200

    async def no_rendering(*args):
        raise AssertionError("a cached thumbnail was rendered again")

    monkeypatch.setattr(homeserver.media.renderer, "render", no_rendering)
    status, _, again = await thumbnail(api, token, media_id, width=90, height=90, method="crop")
    assert (status, again) == (200, first)


async def test_exif_orientation_is_applied(api, token):
    image = gradient(400, 200)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    media_id = await upload(api, token, encode(image, "JPEG", exif=exif), "image/jpeg")
    status, _, body = await thumbnail(api, token, media_id, width=320, height=240, method="scale")
    assert status == 200
    assert Image.open(io.BytesIO(body)).size == (120, 240)


async def test_animated_thumbnails_keep_their_animation(api, token):
    for fmt, content_type in (("GIF", "image/gif"), ("WEBP", "image/webp"), ("PNG", "image/apng")):
        media_id = await upload(api, token, animation(fmt), content_type)
        status, headers, body = await thumbnail(api, token, media_id, width=32, height=32, method="crop", animated=True)
        assert status == 200 and headers["Content-Type"] == "image/webp", fmt
        moving = Image.open(io.BytesIO(body))
        assert moving.size == (32, 32) and moving.n_frames == 3, fmt

        for params in ({"animated": False}, {}):
            status, headers, body = await thumbnail(api, token, media_id, width=32, height=32, method="crop", **params)
            assert status == 200 and headers["Content-Type"] == "image/png", fmt
            still = Image.open(io.BytesIO(body))
            assert still.size == (32, 32) and getattr(still, "n_frames", 1) == 1, fmt


async def test_animation_with_too_many_frames_gets_a_still_thumbnail(api, token):
    media_id = await upload(api, token, animation("GIF", frames=150, size=(64, 48)), "image/gif")
    status, headers, body = await thumbnail(api, token, media_id, width=32, height=32, method="crop", animated=True)
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert getattr(Image.open(io.BytesIO(body)), "n_frames", 1) == 1


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of `width` x `height` black pixels: tiny on disk, huge decoded."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    whole = encode(gradient(600, 600), "JPEG")
    return whole[: len(whole) // 2]


HOSTILE = {
    "bomb-400Mpx": (png_bomb(20_000, 20_000), 413, "M_TOO_LARGE"),
    "bomb-36Mpx": (png_bomb(6_000, 6_000), 413, "M_TOO_LARGE"),
    "truncated-jpeg": (truncated_jpeg(), 400, "M_UNKNOWN"),
    "text-named-png": (b"this is a text file named picture.png\n" * 20, 400, "M_UNKNOWN"),
    "png-header-then-garbage": (b"\x89PNG\r\n\x1a\n" + os.urandom(2000), 400, "M_UNKNOWN"),
    "empty": (b"", 400, "M_UNKNOWN"),
}


async def test_hostile_images_get_a_clear_error(api, token):
    for name, (data, status, errcode) in HOSTILE.items():
        media_id = await upload(api, token, data, "image/png", "picture.png")
        for animated in (False, True):
            got, _, raw = await asyncio.wait_for(
                thumbnail(api, token, media_id, width=96, height=96, method="crop", animated=animated), 20
            )
            assert (got, error(raw)) == (status, errcode), name
        got, _, body = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}", token)
        assert (got, body) == (200, data), name


async def test_bad_thumbnail_parameters(api, token):
    media_id = await upload(api, token, encode(gradient(50, 50), "PNG"), "image/png")
    for params, errcode in (
        ({"height": 32}, "M_MISSING_PARAM"),
        ({"width": 32}, "M_MISSING_PARAM"),
        ({"width": -1, "height": 32}, "M_INVALID_PARAM"),
        ({"width": 0, "height": 32}, "M_INVALID_PARAM"),
        ({"width": "wide", "height": 32}, "M_INVALID_PARAM"),
        ({"width": 32, "height": 32, "method": "zoom"}, "M_INVALID_PARAM"),
        ({"width": 32, "height": 32, "animated": "maybe"}, "M_INVALID_PARAM"),
        ({"width": 32, "height": 32, "timeout_ms": "soon"}, "M_INVALID_PARAM"),
    ):
        status, _, raw = await thumbnail(api, token, media_id, **params)
        assert (status, error(raw)) == (400, errcode), params


async def test_thumbnail_waits_for_a_pending_upload(api, token):
    status, body = await api.post("/_matrix/media/v1/create", token=token)
    media_id = body["content_uri"].rsplit("/", 1)[1]
    waiting = asyncio.create_task(thumbnail(api, token, media_id, width=32, height=32, method="crop", timeout_ms=10000))
    await asyncio.sleep(0.2)
    status, _ = await api.put(f"/_matrix/media/v3/upload/localhost/{media_id}", data=encode(gradient(100, 100), "PNG"),
                              token=token, headers={"Content-Type": "image/png"})
    assert status == 200
    status, _, body = await waiting
    assert status == 200 and Image.open(io.BytesIO(body)).size == (32, 32)


@pytest.mark.parametrize("media_settings", [{"unauthenticated_freeze_date": "2999-01-01"}], ids=["future-freeze"])
async def test_legacy_thumbnail_before_the_freeze(api, token):
    media_id = await upload(api, token, encode(gradient(200, 200), "PNG"), "image/png")
    status, _, body = await fetch(api, f"/_matrix/media/v3/thumbnail/localhost/{media_id}",
                                  params={"width": "32", "height": "32", "method": "crop"})
    assert status == 200 and Image.open(io.BytesIO(body)).size == (32, 32)


_MEMORY_PROBE = """
import asyncio, sys
from PIL import Image
from ranvier.media.sizes import choose_size
from ranvier.media.thumbnails import render

def status(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024

path = sys.argv[1]
Image.new("P", (5700, 5700), 0).save(path, optimize=True)

async def main():
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # restart the peak from here
    rendered = await asyncio.to_thread(render, path, choose_size(320, 240, "scale"), False, 33_554_432)
    assert rendered.content_type == "image/png" and rendered.data
    print(status("VmHWM") - before, status("VmRSS") - before)

asyncio.run(main())
"""


def test_a_tiny_png_of_huge_dimensions_costs_little_memory(tmp_path):
    """A palette PNG of 5,700 x 5,700 pixels compresses to a few KiB; rendering its
    thumbnail (as a render worker does) must not cost hundreds of MiB, nor
    keep them afterwards. Measured in a process of its own."""
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(tmp_path / "huge.png")], capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert (tmp_path / "huge.png").stat().st_size < 8192
    peak, retained = (int(value) / 2**20 for value in probe.stdout.split())
    assert peak < 80, f"peak {peak:.0f} MiB above the start"
    assert retained < 16, f"{retained:.0f} MiB kept after the render"
