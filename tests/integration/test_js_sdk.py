"""matrix-js-sdk (the library under Element Web) logs in, reads the push rules and syncs
against ranvier until it is PREPARED and SYNCING and sees messages, old and new.

Runs node on tests/js/sync_client.mjs; `scripts/test` installs node and the pinned
matrix-js-sdk (tests/js/package-lock.json) with `npm ci`.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.js_support import JS_DIR, next_record, node_with

pytestmark = pytest.mark.interop


async def test_matrix_js_sdk_logs_in_reads_push_rules_and_syncs(homeserver, api):
    node = node_with("matrix-js-sdk")
    alice = await api.register("alice", "correct horse")
    bob = await api.register("bob")
    room = await api.create_room(bob["access_token"], preset="public_chat")
    assert (await api.post(f"/rooms/{room}/join", {}, token=alice["access_token"]))[0] == 200
    await api.send_text(bob["access_token"], room, "before the client started")
    process = await asyncio.create_subprocess_exec(
        node, os.path.join(JS_DIR, "sync_client.mjs"), homeserver.base_url, "alice", "correct horse",
        cwd=JS_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        rules = await next_record(process, lambda r: "pushrules" in r)
        assert rules["pushrules"] == ["override", "content", "room", "sender", "underride"]
        assert rules["override"][0] == ".m.rule.master"
        await next_record(process, lambda r: r.get("message") == "before the client started" and r["room"] == room)
        await next_record(process, lambda r: r.get("state") == "PREPARED")
        await next_record(process, lambda r: r.get("state") == "SYNCING")
        await api.send_text(bob["access_token"], room, "while it syncs")
        await next_record(process, lambda r: r.get("message") == "while it syncs")
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
