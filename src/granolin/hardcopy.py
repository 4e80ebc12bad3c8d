"""The hardcopy: a JSON file holding what a bot must remember across restarts.

Writes are atomic (a temporary file in the same directory, flushed to disk,
then renamed over the old one), so a crash leaves either the old or the new
file, never a torn one. The file holds the access token, so it is created
readable by its owner only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any



def write_atomically(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Replace ``path`` with ``state`` as JSON, all or nothing."""
    target = Path(path)
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps(state, indent=2, sort_keys=True, ensure_ascii=False).encode()
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a hardcopy written by :func:`write_atomically`."""
    state = json.loads(Path(path).read_bytes())
    if not isinstance(state, dict):
        raise ValueError(f"hardcopy {os.fspath(path)!r} does not hold a JSON object")
    return state
