"""A day in Element Web, through matrix-js-sdk's own models (the `Room`, `Thread` and
`MatrixEvent` objects and unread counts Element renders), against a real ranvier.

Each test runs one node script of tests/js (they share tests/js/element_support.mjs, which
makes clients as Element does: threads on, members loaded lazily) and checks what each of
its steps reports:

- element_threads.mjs: threads, their per-thread unread counts and threaded receipts, the
  roots' bundled m.thread aggregation, the thread list and a thread's timeline;
- element_day.mjs: unread counts and highlights, private and public read receipts, the
  fully-read marker, replies, edits, reactions and redactions;
- element_rooms.mjs: direct chats (is_direct, m.direct), room tags, a room muted with a push
  rule, and room upgrades, whose members keep their tags, mutes and direct chats;
- element_restore.mjs: secret storage and key backup set up with a recovery key, then a new
  device restoring the encrypted history (a thread and an edit too) from the backup and
  cross-signing itself.

`scripts/test` installs node and the pinned matrix-js-sdk (tests/js/package-lock.json).
"""

from __future__ import annotations

import pytest

from tests.js_support import node_with, script_steps

pytestmark = pytest.mark.interop


async def _run(homeserver, script: str) -> dict[str, dict]:
    return await script_steps(node_with("matrix-js-sdk"), script, homeserver.base_url, timeout=60)


async def test_threads_their_counts_receipts_and_list(homeserver):
    steps = await _run(homeserver, "element_threads.mjs")
    replies = steps["thread replies"]
    first, second = sorted(replies["threads"], key=lambda root: root != replies["replyInThread"])
    assert replies["isThreadRoot"] is True and replies["length"] == 2 and replies["latestReply"] == "second reply"
    # unread_thread_notifications: each thread counted apart, the main timeline read.
    assert (replies["main"], replies["first"], replies["second"], replies["total"]) == (0, 2, 1, 3)
    # A receipt with the thread's thread_id clears that thread only.
    assert {k: steps["threaded receipt"][k] for k in ("main", "first", "second", "total")} == \
        {"main": 0, "first": 0, "second": 1, "total": 1}

    bundled = steps["bundled aggregation"]
    assert bundled["first"] == {"count": 3, "latest": "alice's reply", "latestId": bundled["own"], "participated": True}
    assert bundled["second"]["count"] == 1 and bundled["second"]["latest"] == "other thread's reply"
    assert bundled["second"]["participated"] is False
    assert bundled["firstThread"] is True and bundled["counts"] == {"first": 0, "second": 1, "main": 0}

    listed = steps["thread list"]
    assert listed["all"] == [second, first]  # the thread with the latest reply last
    assert listed["mine"] == [first]
    assert listed["counts"] == [1, 3]

    mention = steps["thread mention"]
    assert mention["threadBodies"] == ["first thread root", "first reply", "second reply", "alice's reply"]
    assert (mention["main"], mention["first"], mention["second"], mention["total"]) == (1, 0, 2, 3)
    assert mention["secondHighlight"] == 1 and mention["highlight"] == 1
    read = steps["marked as read"]
    assert (read["total"], read["highlight"], read["secondHighlight"]) == (0, 0, 0)
    assert read["firstSession"]["total"] == 0


async def test_unread_counts_receipts_edits_reactions_and_redactions(homeserver):
    steps = await _run(homeserver, "element_day.mjs")
    unread = steps["unread"]
    assert (unread["total"], unread["highlight"]) == (3, 1)
    private = steps["private receipt"]
    assert (private["total"], private["highlight"]) == (1, 1)
    assert private["phone"] == {"total": 1, "highlight": 1}
    assert private["bobSeesPrivate"] is None  # a private receipt is for its owner alone
    public = steps["public receipt"]
    mention = unread["sent"][2]
    assert (public["total"], public["highlight"]) == (0, 0) and public["phone"] == {"total": 0, "highlight": 0}
    assert public["bobSeesRead"] == public["phoneFullyRead"] == public["phoneReadUpTo"] == mention

    markers = steps["read markers"]
    assert markers["typing"] is True and markers["phone"] == {"total": 0, "highlight": 0}
    assert markers["phoneReadUpTo"] == markers["later"]
    assert markers["bobSees"] == mention  # the private receipt is not shown to Bob

    edit = steps["reply and edit"]
    assert edit["body"] == "lunch at 1" and edit["original"] == "lunch at 12" and edit["edited"] is True
    assert edit["replyTo"]
    assert steps["reactions"] == {"step": "reactions", "byKey": {"👍": 2, "🎉": 1}, "listed": 3}
    redactions = steps["redactions"]
    assert redactions["byKey"] == {"👍": 2, "🎉": 0} and redactions["redacted"] == {}
    assert redactions["redactedBody"] is None and redactions["redactedOnLaptop"] is True
    fresh = steps["new session"]
    assert fresh["body"] == "lunch at 1" and fresh["edited"] and fresh["byKey"] == {"👍": 2}


async def test_direct_chats_tags_mutes_and_room_upgrades(homeserver):
    steps = await _run(homeserver, "element_rooms.mjs")
    direct = steps["direct chat"]
    assert direct["inviter"] and direct["isDirect"] is True
    second = steps["second session"]
    bob, dm = next(iter(second["direct"].items()))
    assert dm and len(dm) == 1
    assert second["dmListed"] == {"name": bob.split(":")[0][1:], "joined": 2, "invited": 0}
    assert second["teamMembers"] == sorted([direct["inviter"], bob])
    assert second["dmTags"] == {"m.favourite": {"order": 0.5}} and second["teamTags"] == {"m.lowpriority": {}}
    assert second["muted"] == {"actions": [], "enabled": True}
    assert {k: v for k, v in steps["muted"].items() if k != "step"} == {"team": 0, "dm": 1, "aliceTeam": 0}
    assert steps["unmuted"]["team"] == 1

    upgrade = steps["upgrade"]
    new_room = upgrade["upgraded"]
    assert upgrade["version"] == upgrade["newVersion"] == "11"
    assert upgrade["tombstone"] == new_room and upgrade["predecessor"] == upgrade["history"][0]
    assert upgrade["history"] == [upgrade["predecessor"], new_room] and upgrade["name"] == "team"
    assert upgrade["bobMayPostInOld"] is False and upgrade["aliceMayPost"] is True
    kept = steps["upgraded settings"]
    assert kept["aliceTags"] == {"m.favourite": {}} and kept["bobTags"] == {"m.lowpriority": {}}
    assert kept["muted"] == [{"kind": "event_match", "key": "room_id", "pattern": new_room}] and kept["count"] == 0
    upgraded_dm = steps["direct chat upgraded"]
    assert upgraded_dm["alice"] == upgraded_dm["bob"] == [dm[0], upgraded_dm["newDm"]]
    assert upgraded_dm["favourite"] == {"m.favourite": {"order": 0.5}}


async def test_a_new_device_restores_encrypted_history_with_the_recovery_key(homeserver):
    steps = await _run(homeserver, "element_restore.mjs")
    setup = steps["recovery set up"]
    assert setup["secretStorageReady"] is True and setup["version"] and setup["recoveryKey"] == 12
    thread = steps["encrypted thread"]
    assert thread["server"] == {thread["root"]: {"notification_count": 1, "highlight_count": 0}}
    assert thread["serverMain"] == {"notification_count": 1, "highlight_count": 0}  # Bob's "noted"
    assert steps["history sent"]["sessions"] == 2  # Alice's room key and Bob's
    restored = steps["restored"]
    assert restored["failedBefore"] == 4  # the new device could not read the history at first
    assert (restored["total"], restored["imported"]) == (2, 2)
    assert restored["backupVersion"] == setup["version"] and restored["trusted"] is True
    assert restored["bodies"] == ["remember the milk", "and the bread", "noted, thanks", "* noted, thanks"]
    assert restored["threadReplyOnTablet"] == "oat milk?" and restored["editedOnTablet"] == "noted, thanks"
    verified = steps["tablet verified"]
    assert verified == {"step": "tablet verified", "crossSigningVerified": True, "seenByFirstDevice": True,
                        "masterKeyCached": True, "sameMaster": True}
