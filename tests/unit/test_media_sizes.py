"""Choosing a thumbnail size and its geometry: pure functions, checked without a server."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ranvier.media.sizes import SIZES, CannotThumbnail, ImageTooLarge, Size, choose_size
from ranvier.media.thumbnails import geometry, render


@pytest.mark.parametrize("request_size, expected", [
    ((32, 32, "crop"), Size(32, 32, "crop")),
    ((1, 1, "crop"), Size(32, 32, "crop")),
    ((33, 20, "crop"), Size(96, 96, "crop")),
    ((96, 96, "crop"), Size(96, 96, "crop")),
    ((97, 97, "crop"), Size(320, 240, "scale")),
    ((1, 1, "scale"), Size(320, 240, "scale")),
    ((320, 240, "scale"), Size(320, 240, "scale")),
    ((321, 240, "scale"), Size(640, 480, "scale")),
    ((640, 481, "scale"), Size(800, 600, "scale")),
    ((800, 600, "crop"), Size(800, 600, "scale")),
    ((801, 600, "scale"), None),
    ((100, 2000, "scale"), None),
])
def test_choose_size_picks_the_smallest_size_covering_the_request(request_size, expected):
    assert choose_size(*request_size) == expected


@given(st.integers(1, 5000), st.integers(1, 5000), st.sampled_from(SIZES))
def test_geometry_never_upscales_and_stays_in_the_box(width, height, size):
    region, (out_width, out_height) = geometry(width, height, (size.width, size.height), size.method)
    left, top, right, bottom = region
    assert 0 <= left <= right <= width and 0 <= top <= bottom <= height
    assert 1 <= out_width <= max(1, min(width, size.width))
    assert 1 <= out_height <= max(1, min(height, size.height))
    assert out_width <= right - left + 0.5 and out_height <= bottom - top + 0.5


@given(st.integers(200, 5000), st.integers(200, 5000), st.sampled_from([s for s in SIZES if s.method == "crop"]))
def test_crop_of_a_large_image_fills_the_box_exactly(width, height, size):
    _, out = geometry(width, height, (size.width, size.height), "crop")
    assert out == (size.width, size.height)


@given(st.integers(1000, 5000), st.integers(1000, 5000), st.sampled_from([s for s in SIZES if s.method == "scale"]))
def test_scale_of_a_large_image_keeps_its_aspect_and_touches_the_box(width, height, size):
    _, (out_width, out_height) = geometry(width, height, (size.width, size.height), "scale")
    assert out_width == size.width or out_height == size.height
    assert abs(out_width / out_height - width / height) < 0.02 * (width / height) + 1 / out_height


def _write(tmp_path, data: bytes):
    path = tmp_path / "file"
    path.write_bytes(data)
    return str(path)


def _png(size) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (10, 20, 30, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def test_render_serves_a_small_image_as_it_is(tmp_path):
    rendered = render(_write(tmp_path, _png((20, 20))), Size(96, 96, "crop"), False, 1_000_000)
    assert (rendered.data, rendered.content_type) == (None, "image/png")


def test_render_keeps_transparency_in_png(tmp_path):
    rendered = render(_write(tmp_path, _png((400, 400))), Size(96, 96, "crop"), False, 1_000_000)
    thumbnail = Image.open(io.BytesIO(rendered.data))
    assert rendered.content_type == "image/png" and thumbnail.mode == "RGBA" and thumbnail.size == (96, 96)


def test_render_refuses_more_pixels_than_allowed_from_the_header(tmp_path):
    with pytest.raises(ImageTooLarge):
        render(_write(tmp_path, _png((100, 100))), Size(32, 32, "crop"), False, 9_999)


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\xff\xd8\xff\xe0" + b"\x00" * 50, b"%PDF-1.4\n"])
def test_render_of_non_images_is_cannot_thumbnail(tmp_path, data):
    with pytest.raises(CannotThumbnail):
        render(_write(tmp_path, data), Size(32, 32, "crop"), False, 1_000_000)


def test_palette_images_become_rgba(tmp_path):
    buffer = io.BytesIO()
    Image.new("P", (300, 300), 3).save(buffer, "GIF", transparency=3)
    rendered = render(_write(tmp_path, buffer.getvalue()), Size(32, 32, "crop"), False, 1_000_000)
    assert Image.open(io.BytesIO(rendered.data)).mode == "RGBA"
