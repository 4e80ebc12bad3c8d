"""`ranvier backup`, `restore` and `migrate-database`, run as the real command against real
servers: a backup taken while 16 senders write restores to a server serving every event
acknowledged before the backup began; a SQLite database moved to PostgreSQL keeps every row."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time

import aiohttp
import asyncpg
import pytest
import yaml

from ranvier.server import Homeserver
from tests.conftest import Api, new_database_url, test_config

RANVIER = [sys.executable, "-m", "ranvier"]
SENDERS = 16


def write_config(path, config) -> str:
    """A YAML file for the command naming the same data directory and database."""
    path.write_text(yaml.safe_dump({"server_name": config.server_name, "data_dir": config.data_dir,
                                    "database": {"url": config.database_url}}))
    return str(path)


async def run(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(*RANVIER, *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


async def new_database(engine: str, tmp_path, request) -> str:
    """A second empty database on the engine under test (the restore's target)."""
    return await new_database_url(engine, tmp_path / "restored" / "homeserver.db", request)


async def test_a_backup_under_load_restores_every_acknowledged_event(homeserver, api, tmp_path, engine, request):
    users = await api.register_all(*(f"sender{n}" for n in range(SENDERS)))
    rooms = [await api.create_room(user["access_token"]) for user in users]
    media = await api.post("/_matrix/media/v3/upload", data=b"picture bytes", token=users[0]["access_token"],
                           headers={"Content-Type": "image/png"})
    acked: list[tuple[float, str, str]] = []  # (when acknowledged, room, event)
    stop = asyncio.Event()

    async def sender(user, room):
        n = 0
        while not stop.is_set() and n < 2000:
            event_id = await api.send_text(user["access_token"], room, f"message {n}")
            acked.append((time.monotonic(), room, event_id))
            n += 1

    senders = [asyncio.create_task(sender(user, room)) for user, room in zip(users, rooms)]
    deadline = time.monotonic() + 30
    while len(acked) <= SENDERS * 5 and time.monotonic() < deadline:  # the load is running
        await asyncio.sleep(0.05)
    config_file = write_config(tmp_path / "ranvier.yaml", homeserver.config)
    backup_dir = tmp_path / "backup"
    started = time.monotonic()
    code, out, err = await run("backup", str(backup_dir), "--config", config_file)
    finished = time.monotonic()
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*senders)
    assert code == 0, err
    method = "SQLite online backup API" if engine == "sqlite" else "pg_dump"
    assert method in out and "media: 1 files" in out
    before_backup = [(room, event_id) for when, room, event_id in acked if when < started]
    during_or_after = [event_id for when, _, event_id in acked if when > finished]
    assert len(before_backup) > SENDERS * 5 and during_or_after, "the load ran before and after the backup"

    restored_config = test_config(tmp_path / "restored", await new_database(engine, tmp_path, request))
    restored_file = write_config(tmp_path / "restored.yaml", restored_config)
    code, out, err = await run("restore", str(backup_dir), "--config", restored_file)
    assert code == 0, err
    restored = Homeserver(restored_config)
    await restored.start()
    try:
        async with aiohttp.ClientSession() as session:
            restored_api = Api(session, restored.base_url)
            served: set[str] = set()
            for user, room in zip(users, rooms):
                status, page = await restored_api.get(f"/rooms/{room}/messages", token=user["access_token"],
                                                      params={"limit": "1000", "dir": "b"})
                assert status == 200, page
                served.update(event["event_id"] for event in page["chunk"])
            missing = [event_id for _, event_id in before_backup if event_id not in served]
            assert not missing, f"{len(missing)} acknowledged events lost"
            assert not served & set(during_or_after), "events sent after the backup ended cannot be in it"
            media_id = media[1]["content_uri"].rsplit("/", 1)[1]
            async with session.get(f"{restored.base_url}/_matrix/client/v1/media/download/localhost/{media_id}",
                                   headers={"Authorization": f"Bearer {users[0]['access_token']}"}) as response:
                assert response.status == 200 and await response.read() == b"picture bytes"
            await restored_api.send_text(users[0]["access_token"], rooms[0], "the restored server goes on")
    finally:
        await restored.stop()
    with open(homeserver.config.signing_key_path, "rb") as a, open(restored_config.signing_key_path, "rb") as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_restore_refuses_a_running_server_and_backup_a_used_directory(homeserver, tmp_path):
    config_file = write_config(tmp_path / "ranvier.yaml", homeserver.config)
    backup_dir = tmp_path / "backup"
    assert (await run("backup", str(backup_dir), "--config", config_file))[0] == 0
    code, out, err = await run("backup", str(backup_dir), "--config", config_file)
    assert code != 0 and "not empty" in err
    code, out, err = await run("restore", str(backup_dir), "--config", config_file)
    assert code != 0 and "in use by a running ranvier" in err
    code, out, err = await run("restore", str(tmp_path), "--config", config_file)
    assert code != 0 and "holds no ranvier backup" in err


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_a_second_process_cannot_serve_a_data_directory_in_use(homeserver, tmp_path):
    config_file = write_config(tmp_path / "ranvier.yaml", homeserver.config)
    code, out, err = await run("serve", "--config", config_file, "--port", "0")
    assert code != 0 and "in use by a running ranvier" in err


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_sqlite_to_postgresql_keeps_every_row(server_config, tmp_path, request):
    first = Homeserver(server_config)
    await first.start()
    async with aiohttp.ClientSession() as session:
        api = Api(session, first.base_url)
        alice, bob = await api.register_all("alice", "bob")
        room = await api.create_room(alice["access_token"], name="moving house", preset="public_chat",
                                     room_alias_name="house")
        await api.post(f"/rooms/{room}/join", {}, token=bob["access_token"])
        sent = [await api.send_text(alice["access_token"], room, f"it's a 'quote' \\ {n} ☃") for n in range(30)]
        await api.post(f"/rooms/{room}/receipt/m.read/{sent[-1]}", {}, token=bob["access_token"])
        await api.put("/user/@alice:localhost/account_data/org.example", {"moving": True}, token=alice["access_token"])
        await api.post(f"/rooms/{room}/report/{sent[0]}", {"reason": "noise"}, token=bob["access_token"])
        await api.post("/_matrix/media/v3/upload", data=b"box", token=alice["access_token"],
                       headers={"Content-Type": "text/plain"})
    await first.stop()

    target = await new_database("postgresql", tmp_path, request)
    config_file = write_config(tmp_path / "ranvier.yaml", server_config)
    code, out, err = await run("migrate-database", "--to", target, "--config", config_file)
    assert code == 0, err
    assert "every table has the same number of rows" in out and "copying rows" in err

    source = sqlite3.connect(server_config.database_url[len("sqlite:"):])
    # The search index is each engine's own (FTS5 tables, a tsvector column): rebuilt, not
    # copied, so it is checked by searching on the moved server below.
    tables = [name for (name,) in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
              if not name.startswith("search_")]
    conn = await asyncpg.connect(target)
    try:
        for table in tables:
            source_rows = sorted(map(tuple, source.execute(f'SELECT * FROM "{table}"').fetchall()), key=repr)
            target_rows = sorted((tuple(row) for row in await conn.fetch(f'SELECT * FROM "{table}"')), key=repr)
            assert source_rows == target_rows, table
    finally:
        await conn.close()
        source.close()
    assert any(table == "events" for table in tables)

    moved = Homeserver(test_config(server_config.data_dir, target))
    await moved.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, moved.base_url)
            status, page = await api.get(f"/rooms/{room}/messages", token=alice["access_token"],
                                         params={"limit": "100"})
            assert [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"] == sent[::-1]
            assert (await api.get("/directory/room/%23house:localhost"))[1]["room_id"] == room
            query = {"search_categories": {"room_events": {"search_term": "quote", "order_by": "recent"}}}
            status, found = await api.post("/search", query, token=bob["access_token"])
            assert status == 200, found
            assert found["search_categories"]["room_events"]["count"] == 30
            await api.send_text(bob["access_token"], room, "settled in")
    finally:
        await moved.stop()
    code, out, err = await run("migrate-database", "--to", target, "--config", config_file)
    assert code != 0 and "not empty" in err
