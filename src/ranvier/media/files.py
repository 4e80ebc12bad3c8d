"""Media files on disk, addressed by the SHA-256 of their bytes.

The same bytes are stored once however often they are uploaded. A file is written to a
temporary name while it is hashed, made durable, then renamed into place, so a reader
never sees half a file and a crash leaves at most a stray temporary file, which the next
start removes (the server owns its database alone, see `storage/lock.py`, so no upload
is in progress then). Files are 0600 and directories 0700, like the rest of the data
directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from typing import AsyncIterator

from ranvier.private_files import make_private_dir

log = logging.getLogger(__name__)


class ContentTooLarge(Exception):
    """The stream went past the byte limit it was given."""


class FileStore:
    def __init__(self, root: str) -> None:
        self.content_dir = os.path.join(root, "content")
        self.temp_dir = os.path.join(root, "tmp")
        make_private_dir(self.content_dir)
        make_private_dir(self.temp_dir)
        removed = self._remove_partial_uploads()
        if removed:
            log.info("removed %d partial upload(s) left in %s by an earlier stop", removed, self.temp_dir)

    def path(self, content_hash: str) -> str:
        """Where the bytes with this hash live; two levels of fan-out keep directories small."""
        return os.path.join(self.content_dir, content_hash[:2], content_hash[2:4], content_hash)

    async def write_stream(self, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int]:
        """Store a stream of chunks without holding it in memory; returns (hash, size).

        Raises ContentTooLarge as soon as more than `limit` bytes arrive.
        """
        fd, temp_path = tempfile.mkstemp(dir=self.temp_dir)  # mode 0600
        try:
            hasher = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise ContentTooLarge()
                    hasher.update(chunk)
                    handle.write(chunk)
                handle.flush()
                await asyncio.to_thread(os.fsync, handle.fileno())
            content_hash = hasher.hexdigest()
            await asyncio.to_thread(self._move_into_place, temp_path, content_hash)
        except BaseException:
            _remove_quietly(temp_path)
            raise
        return content_hash, size

    async def write_bytes(self, data: bytes) -> str:
        """Store bytes already in memory (thumbnails); returns their hash."""

        async def single() -> AsyncIterator[bytes]:
            yield data

        content_hash, _ = await self.write_stream(single(), len(data))
        return content_hash

    def _move_into_place(self, temp_path: str, content_hash: str) -> None:
        final = self.path(content_hash)
        if os.path.exists(final):
            os.remove(temp_path)
            return
        directory = os.path.dirname(final)
        make_private_dir(directory)
        os.replace(temp_path, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def remove(self, content_hash: str) -> None:
        """Delete the file with this hash (gone already is fine)."""
        _remove_quietly(self.path(content_hash))

    def _remove_partial_uploads(self) -> int:
        """Remove the temporary files a crash left behind (at start, before any upload can
        begin); returns how many there were."""
        removed = 0
        for entry in os.scandir(self.temp_dir):
            if entry.is_file(follow_symlinks=False):
                _remove_quietly(entry.path)
                removed += 1
        return removed


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
