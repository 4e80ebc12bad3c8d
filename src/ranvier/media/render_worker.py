"""A thumbnail render worker: the process `ThumbnailRenderer` starts (`python -m
ranvier.media.render_worker`).

Once Pillow is loaded it writes `ready` and a newline on its standard output; then it
reads one job a line on its standard input and answers each on its standard output, in
order, until its input ends:

- job: a JSON object `{"path", "size": [width, height, method] | null, "animated",
  "max_pixels"}` (`thumbnails.render`'s arguments);
- answer: a JSON line `{"content_type", "length"}` followed by `length` bytes of
  thumbnail (`length` null: the original is fit to serve as it is), or `{"error":
  "too_large"}`, or `{"error": "cannot", "reason"}`.

Pillow and the decoded images live only here. The worker ignores the terminal's
interrupt (the server stops it by closing its input) and runs at a lower priority than
the server, so that a large image does not slow the requests the server is answering.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, BinaryIO, Callable

from ranvier.media.sizes import CannotThumbnail, ImageTooLarge, Rendered, Size

#: The line a worker writes once it can render.
READY = b"ready\n"
#: The `error` values of an answer.
TOO_LARGE = "too_large"
CANNOT = "cannot"
#: How much lower than the server's the worker's scheduling priority is.
NICENESS = 5


def job(path: str, size: tuple[int, int, str] | None, animated: bool, max_pixels: int) -> bytes:
    """The line that asks a worker for one thumbnail."""
    return json.dumps({"path": path, "size": size, "animated": animated, "max_pixels": max_pixels}).encode() + b"\n"


def _answer(request: dict[str, Any], render: Callable[..., Rendered]) -> tuple[dict[str, Any], bytes]:
    size = Size(*request["size"]) if request["size"] else None
    try:
        rendered = render(request["path"], size, request["animated"], request["max_pixels"])
    except ImageTooLarge:
        return {"error": TOO_LARGE}, b""
    except CannotThumbnail as exc:
        return {"error": CANNOT, "reason": str(exc)}, b""
    data = rendered.data or b""
    return {"content_type": rendered.content_type, "length": None if rendered.data is None else len(data)}, data


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Load Pillow and say READY, then answer every job line of `requests` until it ends."""
    from ranvier.media.thumbnails import render

    answers.write(READY)
    answers.flush()
    for line in requests:
        header, data = _answer(json.loads(line), render)
        answers.write(json.dumps(header).encode() + b"\n" + data)
        answers.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(NICENESS)
    # Answers get a descriptor of their own; what anything else prints goes to the log.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
