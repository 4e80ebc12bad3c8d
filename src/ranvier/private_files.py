"""The data directory is its owner's alone: the database, the signing key and the media.

New directories are made 0700 and new files 0600 whatever the umask (`ranvier serve` also
sets the umask to 077, for files that libraries create). Existing ones are left as they
are, since an operator may have chosen a group on purpose, but each one other local
users can read or enter is named in a warning at start.
"""

from __future__ import annotations

import logging
import os
import stat

from ranvier.config import Config

log = logging.getLogger("ranvier")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: str) -> None:
    """Create `path` and its missing parents readable by the owner only (`os.makedirs`
    would give the parents the umask's mode); existing ones are kept as they are."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if parent != os.path.abspath(path):
        make_private_dir(parent)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        pass


def make_private_file(path: str) -> None:
    """Create an empty file readable by the owner only, unless it exists (so that a library
    opening it afterwards, such as SQLite, finds it private; SQLite gives its WAL and
    shared-memory files the database file's mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass


def sqlite_path(config: Config) -> str | None:
    url = config.database_url
    path = url[len("sqlite:"):] if url.startswith("sqlite:") else None
    return None if path == ":memory:" else path


def prepare_data_dir(config: Config) -> None:
    """Create the data directory (and an SQLite database file) private, and warn about
    what others can read among the existing ones."""
    make_private_dir(config.data_dir)
    database = sqlite_path(config)
    if database is not None:
        make_private_dir(os.path.dirname(os.path.abspath(database)))
        make_private_file(database)
    for path in looser_than_private(config):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        log.warning("%s is open to other local users (mode %04o): it holds secrets; chmod %s it", path, mode,
                    "700" if os.path.isdir(path) else "600")


def looser_than_private(config: Config) -> list[str]:
    """The data directory, database, signing key and media directory, where they exist
    with any permission for the group or others."""
    candidates = [config.data_dir, config.signing_key_path, config.media_dir]
    database = sqlite_path(config)
    if database is not None:
        candidates += [database, database + "-wal", database + "-shm"]
    return [path for path in candidates if os.path.exists(path) and os.stat(path).st_mode & 0o077]
