"""Which thumbnail size answers a request, and what rendering one gives: pure, so that
the server needs no image library (only its render workers do)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Size:
    width: int
    height: int
    method: str


#: The sizes the spec suggests; every thumbnail served is one of them (or the original).
SIZES = (Size(32, 32, "crop"), Size(96, 96, "crop"), Size(320, 240, "scale"), Size(640, 480, "scale"),
         Size(800, 600, "scale"))
METHODS = ("crop", "scale")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A thumbnail; `data` is None when the original is already fit to serve."""

    data: bytes | None
    content_type: str


class CannotThumbnail(Exception):
    """Not an image Pillow can read, or a damaged one."""


class ImageTooLarge(Exception):
    """More pixels than the configured limit."""


def choose_size(width: int, height: int, method: str) -> Size | None:
    """The smallest suggested size at least as large as asked, preferring the asked method.

    None when the request is larger than every size: only the original is large enough.
    """
    covering = [size for size in SIZES if size.width >= width and size.height >= height]
    candidates = [size for size in covering if size.method == method] or covering
    return min(candidates, key=lambda size: size.width * size.height, default=None)
