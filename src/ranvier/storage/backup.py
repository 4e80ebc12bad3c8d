"""`ranvier backup DIR` and `ranvier restore DIR`.

A backup is taken while the server runs and is consistent: SQLite's online backup API
copies one snapshot of the database (readers and the writer go on meanwhile); on
PostgreSQL `pg_dump` does the same from one transaction. Media files are content-addressed
and never change, so they are copied in two passes around the database snapshot: the
first takes what exists, the second what was uploaded meanwhile (a file is on disk before
any row names it), so every medium the snapshot names is in the backup. The signing key
goes with it. `backup.json` describes the backup.

A restore needs the server stopped (it takes the data directory's lock), puts the
database back (a file replaced atomically, or `pg_restore --clean` into the configured
PostgreSQL database), the media files and the signing key.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from typing import Callable

from ranvier import __version__
from ranvier.config import Config

MANIFEST = "backup.json"
SQLITE_FILE = "homeserver.db"
POSTGRES_FILE = "database.dump"
MEDIA_DIR = "media"
SIGNING_KEY = "signing.key"
#: SQLite pages copied per step of the online backup (the copy restarts if the database
#: changes between steps, so one step copies one consistent snapshot).
_ALL_PAGES = -1


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why."""


@dataclass
class BackupReport:
    database_method: str
    database_file: str
    media_files: int
    media_bytes: int


def engine_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:") else "postgresql"


def _sqlite_path(url: str) -> str:
    return url[len("sqlite:"):]


def _postgres_tool(name: str) -> str:
    """pg_dump or pg_restore: on PATH, or from the newest PostgreSQL installed."""
    found = shutil.which(name)
    if found:
        return found
    for version in sorted(os.listdir("/usr/lib/postgresql"), reverse=True) if os.path.isdir("/usr/lib/postgresql") else []:
        candidate = f"/usr/lib/postgresql/{version}/bin/{name}"
        if os.path.exists(candidate):
            return candidate
    raise BackupError(f"{name} is needed for a PostgreSQL database: install PostgreSQL's client tools")


def _copy_media(source_root: str, target_root: str) -> tuple[int, int]:
    """Copy every content file not yet in the target; (files copied, bytes)."""
    files = size = 0
    for directory, _, names in os.walk(source_root):
        relative = os.path.relpath(directory, source_root)
        for name in names:
            source = os.path.join(directory, name)
            target = os.path.join(target_root, relative, name)
            if os.path.exists(target):
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target + ".part")
            os.replace(target + ".part", target)
            files += 1
            size += os.path.getsize(target)
    return files, size


def _fsync_tree(root: str) -> None:
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())


def backup(config: Config, target: str, say: Callable[[str], None]) -> BackupReport:
    """Write a consistent backup of the configured server into `target` (new or empty)."""
    if os.path.exists(target) and os.listdir(target):
        raise BackupError(f"{target} is not empty; back up into a new directory")
    os.makedirs(target, exist_ok=True)
    media_source = os.path.join(config.media_dir, "content")
    media_target = os.path.join(target, MEDIA_DIR, "content")
    files, size = _copy_media(media_source, media_target) if os.path.isdir(media_source) else (0, 0)
    url = config.database_url
    if engine_of(url) == "sqlite":
        path = _sqlite_path(url)
        if not os.path.exists(path):
            raise BackupError(f"no database at {path}")
        method, database_file = "SQLite online backup API", SQLITE_FILE
        say(f"database: {method}, {path} -> {os.path.join(target, database_file)}")
        source = sqlite3.connect(path, timeout=30)
        destination = sqlite3.connect(os.path.join(target, database_file))
        try:
            source.backup(destination, pages=_ALL_PAGES)
        finally:
            destination.close()
            source.close()
    else:
        method, database_file = "pg_dump (PostgreSQL, custom format)", POSTGRES_FILE
        say(f"database: {method} -> {os.path.join(target, database_file)}")
        done = subprocess.run([_postgres_tool("pg_dump"), "--format=custom", "--no-owner",
                               f"--file={os.path.join(target, database_file)}", url],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    if os.path.isdir(media_source):
        more_files, more_size = _copy_media(media_source, media_target)
        files, size = files + more_files, size + more_size
    say(f"media: {files} files, {size} bytes -> {os.path.join(target, MEDIA_DIR)}")
    if os.path.exists(config.signing_key_path):
        shutil.copy2(config.signing_key_path, os.path.join(target, SIGNING_KEY))
        say(f"signing key -> {os.path.join(target, SIGNING_KEY)}")
    manifest = {"format": 1, "ranvier": __version__, "engine": engine_of(url), "database_file": database_file,
                "database_method": method, "server_name": config.server_name, "media_files": files,
                "media_bytes": size, "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    with open(os.path.join(target, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    _fsync_tree(target)
    os.chmod(target, 0o700)
    return BackupReport(method, database_file, files, size)


def read_manifest(source: str) -> dict:
    try:
        with open(os.path.join(source, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        raise BackupError(f"{source} holds no ranvier backup ({MANIFEST} is missing or unreadable)") from None
    if manifest.get("format") != 1:
        raise BackupError(f"{source}: unknown backup format {manifest.get('format')!r}")
    return manifest


def restore(config: Config, source: str, say: Callable[[str], None]) -> dict:
    """Put a backup back into the configured server's place; the server must be stopped
    (the caller holds the data directory's lock)."""
    manifest = read_manifest(source)
    engine = engine_of(config.database_url)
    if manifest["engine"] != engine:
        raise BackupError(f"the backup is of a {manifest['engine']} database but this server is configured for "
                          f"{engine}; restore it with a matching database setting (then use migrate-database)")
    if manifest["server_name"] != config.server_name:
        raise BackupError(f"the backup is of server {manifest['server_name']!r}, this one is {config.server_name!r}")
    database_file = os.path.join(source, manifest["database_file"])
    if engine == "sqlite":
        path = _sqlite_path(config.database_url)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        say(f"database: {database_file} -> {path}")
        shutil.copy2(database_file, path + ".restoring")
        with open(path + ".restoring", "rb") as handle:
            os.fsync(handle.fileno())
        for leftover in (path + "-wal", path + "-shm"):
            if os.path.exists(leftover):
                os.remove(leftover)
        os.replace(path + ".restoring", path)
    else:
        say(f"database: pg_restore --clean {database_file} -> the configured PostgreSQL database")
        done = subprocess.run([_postgres_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
                               f"--dbname={config.database_url}", database_file], capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
    media_source = os.path.join(source, MEDIA_DIR, "content")
    if os.path.isdir(media_source):
        files, size = _copy_media(media_source, os.path.join(config.media_dir, "content"))
        say(f"media: {files} files, {size} bytes -> {config.media_dir}")
    key = os.path.join(source, SIGNING_KEY)
    if os.path.exists(key):
        os.makedirs(os.path.dirname(os.path.abspath(config.signing_key_path)), exist_ok=True)
        shutil.copy2(key, config.signing_key_path)
        say(f"signing key -> {config.signing_key_path}")
    return manifest
