"""No password or access token ever reaches a log line; tokens are stored only as hashes."""

from __future__ import annotations

import logging

from ranvier.server import Homeserver
from tests.conftest import Api, test_config

import aiohttp


async def test_logs_and_database_hold_no_secrets(tmp_path, database_url, caplog):
    config = test_config(tmp_path / "data", database_url, logging={"level": "debug", "access_log": True})
    hs = Homeserver(config)
    await hs.start()
    caplog.set_level(logging.DEBUG)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, hs.base_url)
            user = await api.register("secretive", password="hunter2 hunter2")
            token = user["access_token"]
            await api.get("/account/whoami", params={"access_token": token})
            await api.post("/login", {"type": "m.login.password", "user": "secretive", "password": "wrong hunter3"})
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "whoami" in logged, "the access log is on, so requests are logged"
        for secret in ("hunter2", "hunter3", token):
            assert secret not in logged
        rows = await hs.db.fetchall("SELECT token_hash FROM access_tokens")
        assert rows and all(row[0] != token and len(row[0]) == 64 for row in rows)
        password_hash = await hs.db.fetchval("SELECT password_hash FROM users WHERE user_id = ?", "@secretive:localhost")
        assert password_hash.startswith("$argon2id$")
    finally:
        await hs.stop()
