"""Thumbnails with Pillow: which size answers a request, and rendering it.

`render` is blocking and runs in a render worker process (`render_worker.py`). Its work is bounded before any pixel is
decoded: an image with more than `max_pixels` pixels is refused from its header alone
(a decompression bomb costs nothing), and an animation is only kept when its frames
together stay within the same budget.

Memory: a JPEG is decoded at the smallest scale its decoder offers above what is needed
(`draft`). Other formats decode in full, in their own mode (one byte a pixel for palette,
grey and bilevel images), and are then shrunk by whole factors (`reduce`) a band of rows
at a time, each band converted to the mode the thumbnail is made in on its own: a
5,700 x 5,700 palette PNG costs its 31 MiB of indexes, not four bytes a pixel for every
conversion and resize of the whole. Only the small result is turned by its EXIF
orientation and resampled. Afterwards the C allocator is asked to hand freed memory back
to the system (`malloc_trim`, glibc), since its per-thread arenas otherwise keep the peak.
"""

from __future__ import annotations

import io
import math
import warnings

from PIL import ExifTags, Image, ImageSequence

from ranvier.media.sizes import CannotThumbnail, ImageTooLarge, Rendered, Size
from ranvier.memory import return_free_memory

#: Pillow only warns between its limit and twice its limit; a warning must stop decoding too.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


#: Longest animation kept animated; longer ones get a still thumbnail.
MAX_ANIMATION_FRAMES = 100

#: Image formats served as they are when they are small enough: all are safe inline.
SERVABLE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
ANIMATED_FORMATS = {"GIF", "PNG", "WEBP"}

#: EXIF orientations that turn the image by 90 degrees, swapping width and height.
_TRANSPOSING = {5, 6, 7, 8}


#: Rows of a band are at most about this many bytes once converted.
_BAND_BYTES = 4 * 1024 * 1024
#: Whole-factor shrinking stops at this multiple of the output size; resampling does the rest.
_REDUCING_GAP = 3

#: The transposition that undoes each EXIF orientation.
_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def render(path: str, size: Size | None, animated: bool, max_pixels: int) -> Rendered:
    """Make the thumbnail of the image at `path` for `size` (None: the original's size).

    Anything Pillow cannot decode, whatever exception its decoders raise, is CannotThumbnail.
    """
    try:
        return _render_file(path, size, animated, max_pixels)
    finally:
        return_free_memory()  # once the decoded image, a local of the call above, is gone


def _render_file(path: str, size: Size | None, animated: bool, max_pixels: int) -> Rendered:
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own guard, behind the explicit check
    try:
        with Image.open(path) as image:
            return _render(image, size, animated, max_pixels)
    except (ImageTooLarge, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge() from None
    except Exception as exc:
        raise CannotThumbnail(str(exc)) from None


def _render(image: Image.Image, size: Size | None, animated: bool, max_pixels: int) -> Rendered:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge()
    frames = getattr(image, "n_frames", 1) if image.format in ANIMATED_FORMATS else 1
    is_animated = frames > 1
    orientation = 1 if is_animated else image.getexif().get(ExifTags.Base.Orientation, 1)
    shown = (height, width) if orientation in _TRANSPOSING else (width, height)
    box = (size.width, size.height) if size else shown
    method = size.method if size else "scale"
    animate = animated and is_animated and frames <= MAX_ANIMATION_FRAMES and frames * width * height <= max_pixels
    fits = shown[0] <= box[0] and shown[1] <= box[1]
    if fits and image.format in SERVABLE_FORMATS and orientation == 1 and (animate or not is_animated):
        return Rendered(None, SERVABLE_FORMATS[image.format])
    if animate:
        return _animated(image, box, method)
    return _still(image, box, method, shown, orientation)


def geometry(width: int, height: int, box: tuple[int, int], method: str) -> tuple[tuple[float, ...], tuple[int, int]]:
    """The source region to keep and the output size; never scales up.

    scale: the whole image, fitted inside the box. crop: the centred part with the box's
    aspect, scaled so it covers the box (a side shorter than the box stays as it is).
    """
    box_width, box_height = box
    factor = _scale_factor(width, height, box, method)
    if method == "crop":
        kept_width, kept_height = min(width, box_width / factor), min(height, box_height / factor)
    else:
        kept_width, kept_height = width, height
    left, top = (width - kept_width) / 2, (height - kept_height) / 2
    region = (left, top, left + kept_width, top + kept_height)
    return region, (max(1, round(kept_width * factor)), max(1, round(kept_height * factor)))


def _scale_factor(width: int, height: int, box: tuple[int, int], method: str) -> float:
    if method == "crop":
        return min(max(box[0] / width, box[1] / height), 1.0)
    return min(box[0] / width, box[1] / height, 1.0)


def _still(image: Image.Image, box: tuple[int, int], method: str, shown: tuple[int, int],
           orientation: int) -> Rendered:
    source_format = image.format
    scale = _scale_factor(shown[0], shown[1], box, method)
    needed = (math.ceil(image.width * scale), math.ceil(image.height * scale))
    if source_format in ("JPEG", "MPO"):
        image.draft(None, needed)  # the decoder skips detail we would throw away, never below `needed`
    image.load()
    factor = max(1, min(image.width // (_REDUCING_GAP * needed[0]), image.height // (_REDUCING_GAP * needed[1])))
    frame = _reduce_in_bands(image, factor, _working_mode(image))
    if orientation in _ORIENTATIONS:
        frame = frame.transpose(_ORIENTATIONS[orientation])
    region, out = geometry(frame.width, frame.height, box, method)
    result = frame.resize(out, Image.Resampling.LANCZOS, box=region)
    buffer = io.BytesIO()
    if source_format in ("JPEG", "MPO") and result.mode in ("RGB", "L"):
        result.save(buffer, "JPEG", quality=85)
        return Rendered(buffer.getvalue(), "image/jpeg")
    result.save(buffer, "PNG")
    return Rendered(buffer.getvalue(), "image/png")


def _animated(image: Image.Image, box: tuple[int, int], method: str) -> Rendered:
    """An animated WebP (the format the spec prefers), keeping each frame's duration."""
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        durations.append(frame.info.get("duration", 100))
        rgba = frame.convert("RGBA")
        region, out = geometry(rgba.width, rgba.height, box, method)
        frames.append(rgba.resize(out, Image.Resampling.LANCZOS, box=region))
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
                   loop=image.info.get("loop", 0), quality=80)
    return Rendered(buffer.getvalue(), "image/webp")


def _working_mode(image: Image.Image) -> str:
    """The mode a thumbnail is made in (one PNG and JPEG encoders take, and `reduce` and
    LANCZOS work in): palettes and transparency become RGBA."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image.mode
    if image.mode in ("P", "PA") or "transparency" in image.info:
        return "RGBA"
    return "L" if image.mode == "1" else "RGB"


def _reduce_in_bands(image: Image.Image, factor: int, mode: str) -> Image.Image:
    """`image` in `mode`, shrunk `factor` times (box average), a band of rows at a time so
    that no converted copy of the whole image is ever made."""
    if factor == 1:
        return image if image.mode == mode else image.convert(mode)
    width, height = image.size
    bytes_per_row = width * Image.getmodebands(mode)
    rows = max(factor, _BAND_BYTES // bytes_per_row // factor * factor)
    reduced = Image.new(mode, (math.ceil(width / factor), math.ceil(height / factor)))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        if band.mode != mode:
            band = band.convert(mode)
        reduced.paste(band.reduce(factor), (0, top // factor))
    return reduced
