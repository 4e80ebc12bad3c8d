"""The data directory: private to its owner, and tidied at start."""

from __future__ import annotations

import logging
import os
import stat

import aiohttp

from ranvier.server import Homeserver
from tests.conftest import Api, test_config


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_the_data_directory_database_signing_key_and_media_are_private(tmp_path, engine, database_url):
    """Whatever the umask (here the test process's, typically 022), nothing the server
    creates can be read by other local users."""
    data_dir = tmp_path / "data"
    url = f"sqlite:{data_dir / 'homeserver.db'}" if engine == "sqlite" else database_url
    hs = Homeserver(test_config(data_dir, url))
    await hs.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            token = (await api.register("alice"))["access_token"]
            status, _ = await api.post("/_matrix/media/v3/upload", data=b"private bytes", token=token,
                                       headers={"Content-Type": "text/plain"})
            assert status == 200
    finally:
        await hs.stop()
    paths = [os.path.join(root, name) for root, dirs, files in os.walk(data_dir) for name in dirs + files]
    assert any("content" in path for path in paths) and os.path.exists(data_dir / "signing.key")
    assert mode_of(data_dir) == 0o700
    for path in paths:
        assert mode_of(path) == (0o700 if os.path.isdir(path) else 0o600), (path, oct(mode_of(path)))


async def test_looser_existing_files_are_named_in_a_warning_at_start(tmp_path, database_url, caplog):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    hs = Homeserver(test_config(data_dir, database_url))
    await hs.start()
    await hs.stop()
    os.chmod(data_dir / "signing.key", 0o644)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ranvier"):
        hs = Homeserver(test_config(data_dir, database_url))
        await hs.start()
        await hs.stop()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(str(data_dir) in w and "0755" in w for w in warnings), warnings
    assert any(str(data_dir / "signing.key") in w and "0644" in w for w in warnings), warnings
    assert mode_of(data_dir) == 0o755, "an operator's choice is named, not overridden"


async def test_partial_uploads_left_by_a_crash_are_removed_at_start(tmp_path, database_url):
    temp_dir = tmp_path / "data" / "media" / "tmp"
    temp_dir.mkdir(parents=True)
    (temp_dir / "tmpabc123").write_bytes(b"half an upl")
    hs = Homeserver(test_config(tmp_path / "data", database_url))
    await hs.start()
    try:
        assert os.listdir(temp_dir) == []
    finally:
        await hs.stop()
