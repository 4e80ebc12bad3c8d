"""The push rules API, m.push_rules in /sync, the user's rules in counts, and /notifications,
on a real server on both engines."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from ranvier.push.rules import KINDS


@pytest.fixture
async def alice(api):
    return await api.register("alice")


@pytest.fixture
async def bob(api):
    return await api.register("bob")


async def rules(api, user) -> dict:
    status, body = await api.get("/pushrules/", token=user["access_token"])
    assert status == 200, body
    return body["global"]


async def test_the_default_ruleset_of_the_spec(api, alice):
    ruleset = await rules(api, alice)
    assert list(ruleset) == list(KINDS)
    ids = {kind: [r["rule_id"] for r in ruleset[kind]] for kind in KINDS}
    assert ids["override"][:5] == [".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
                                   ".m.rule.member_event", ".m.rule.is_user_mention"]
    for rule_id in (".m.rule.is_room_mention", ".m.rule.contains_display_name", ".m.rule.tombstone",
                    ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits"):
        assert rule_id in ids["override"]
    assert ids["underride"][:5] == [".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
                                    ".m.rule.message", ".m.rule.encrypted"]
    invite = next(r for r in ruleset["override"] if r["rule_id"] == ".m.rule.invite_for_me")
    assert invite["conditions"][2] == {"kind": "event_match", "key": "state_key", "pattern": alice["user_id"]}
    assert all(r["default"] and isinstance(r["enabled"], bool) for kind in KINDS for r in ruleset[kind])
    assert (await api.get("/pushrules/global/", token=alice["access_token"])) == (200, ruleset)


async def test_put_get_move_and_delete_rules(api, alice):
    token = alice["access_token"]
    assert (await api.put("/pushrules/global/content/cake", {"pattern": "cake", "actions": ["notify"]},
                          token=token))[0] == 200
    assert (await api.put("/pushrules/global/content/lie", {"pattern": "cake*lie", "actions": ["dont_notify"]},
                          token=token, params={"before": "cake"}))[0] == 200
    ruleset = await rules(api, alice)
    assert [r["rule_id"] for r in ruleset["content"]] == ["lie", "cake", ".m.rule.contains_user_name"]
    assert ruleset["content"][0] == {"rule_id": "lie", "default": False, "enabled": True, "pattern": "cake*lie",
                                     "actions": []}
    assert await api.get("/pushrules/global/content/cake", token=token) == (200, ruleset["content"][1])
    assert await api.get("/pushrules/global/content/cake/enabled", token=token) == (200, {"enabled": True})
    assert (await api.put("/pushrules/global/content/cake/enabled", {"enabled": False}, token=token))[0] == 200
    assert await api.get("/pushrules/global/content/cake/enabled", token=token) == (200, {"enabled": False})
    assert (await api.put("/pushrules/global/content/cake/actions", {"actions": ["notify", {"set_tweak": "highlight"}]},
                          token=token))[0] == 200
    assert await api.get("/pushrules/global/content/cake/actions", token=token) == (
        200, {"actions": ["notify", {"set_tweak": "highlight"}]})
    assert (await api.put("/pushrules/global/content/lie", {"pattern": "x", "actions": []}, token=token,
                          params={"after": "cake"}))[0] == 200
    assert [r["rule_id"] for r in (await rules(api, alice))["content"]][:2] == ["cake", "lie"]
    assert (await api.delete("/pushrules/global/content/cake", token=token))[0] == 200
    assert (await api.get("/pushrules/global/content/cake", token=token))[1]["errcode"] == "M_NOT_FOUND"
    room_rule = f"/pushrules/global/room/{quote('!dj234r78wl45Gh4D:matrix.org')}"
    assert (await api.put(room_rule, {"actions": []}, token=token))[0] == 200
    assert (await rules(api, alice))["room"] == [{"rule_id": "!dj234r78wl45Gh4D:matrix.org", "default": False,
                                                  "enabled": True, "actions": []}]


async def test_default_rules_can_be_disabled_and_changed_not_deleted(api, alice):
    token = alice["access_token"]
    path = "/pushrules/global/underride/.m.rule.message"
    assert (await api.put(path + "/enabled", {"enabled": False}, token=token))[0] == 200
    assert (await api.put(path + "/actions", {"actions": ["notify", {"set_tweak": "sound", "value": "bing"}]},
                          token=token))[0] == 200
    assert await api.get(path, token=token) == (200, {
        "rule_id": ".m.rule.message", "default": True, "enabled": False,
        "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "bing"}]})
    status, body = await api.delete(path, token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize("path, body, params, status, errcode", [
    ("/pushrules/global/override/.mine", {"actions": []}, None, 400, "M_INVALID_PARAM"),
    ("/pushrules/global/sideways/x", {"actions": []}, None, 400, "M_INVALID_PARAM"),
    ("/pushrules/global/override/x", {}, None, 400, "M_MISSING_PARAM"),
    ("/pushrules/global/override/x", {"actions": "notify"}, None, 400, "M_BAD_JSON"),
    ("/pushrules/global/override/x", {"actions": ["explode"]}, None, 400, "M_BAD_JSON"),
    ("/pushrules/global/override/x", {"actions": [], "conditions": [{"kind": "event_match"}]}, None, 400,
     "M_BAD_JSON"),
    ("/pushrules/global/content/x", {"actions": []}, None, 400, "M_MISSING_PARAM"),
    ("/pushrules/global/override/x", {"actions": []}, {"before": "nope"}, 400, "M_UNKNOWN"),
    ("/pushrules/global/override/x", {"actions": []}, {"after": ".m.rule.master"}, 400, "M_UNKNOWN"),
    ("/pushrules/global/override/missing/enabled", {"enabled": True}, None, 404, "M_NOT_FOUND"),
    ("/pushrules/global/override/.m.rule.master/enabled", {"enabled": "yes"}, None, 400, "M_BAD_JSON"),
    ("/pushrules/global/override/.m.rule.master/actions", {}, None, 400, "M_MISSING_PARAM"),
])
async def test_bad_rules_get_clear_errors_and_change_nothing(api, alice, path, body, params, status, errcode):
    before = await rules(api, alice)
    got, answer = await api.put(path, body, token=alice["access_token"], params=params)
    assert (got, answer.get("errcode")) == (status, errcode), answer
    assert await rules(api, alice) == before


async def test_rules_are_account_data_that_sync_shows_when_they_change(api, alice):
    token = alice["access_token"]
    status, first = await api.get("/sync", token=token)
    assert status == 200
    shown = {e["type"]: e["content"] for e in first["account_data"]["events"]}
    assert shown["m.push_rules"] == {"global": await rules(api, alice)}
    status, body = await api.put(f"/user/{alice['user_id']}/account_data/m.push_rules", {"global": {}}, token=token)
    assert (status, body["errcode"]) == (405, "M_BAD_JSON")
    assert (await api.put("/pushrules/global/sender/@spam:localhost", {"actions": []}, token=token))[0] == 200
    status, later = await api.get("/sync", token=token, params={"since": first["next_batch"], "timeout": "0"})
    changed = [e for e in later["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert changed and changed[0]["content"]["global"]["sender"][0]["rule_id"] == "@spam:localhost"
    assert await api.get(f"/user/{alice['user_id']}/account_data/m.push_rules", token=token) == (
        200, {"global": await rules(api, alice)})


async def sync_counts(api, user, room_id) -> tuple[int, int]:
    status, body = await api.get("/sync", token=user["access_token"])
    assert status == 200, body
    counts = body["rooms"]["join"][room_id]["unread_notifications"]
    return counts["notification_count"], counts["highlight_count"]


async def notifications(api, user, **params) -> list[dict]:
    status, body = await api.get("/notifications", token=user["access_token"], params=params or None)
    assert status == 200, body
    return body


async def test_own_rules_decide_counts_and_notifications_agree(homeserver, api, alice, bob):
    room = await api.create_room(alice["access_token"], preset="public_chat")
    assert (await api.post(f"/rooms/{room}/join", {}, token=bob["access_token"]))[0] == 200
    bob_token = bob["access_token"]
    # bob: highlight "deploy", silence a noisy sender, and mute one keyword entirely
    assert (await api.put("/pushrules/global/content/deploy", {"pattern": "deploy*",
                          "actions": ["notify", {"set_tweak": "highlight"}]}, token=bob_token))[0] == 200
    assert (await api.put("/pushrules/global/override/quiet", {"actions": [], "conditions": [
        {"kind": "event_match", "key": "content.body", "pattern": "lunch"}]}, token=bob_token))[0] == 200
    sent = [await api.send_text(alice["access_token"], room, body) for body in
            ("morning", "deploying at noon", "lunch anyone?", "hey bob", "ok")]
    assert await sync_counts(api, bob, room) == (4, 2)  # "hey bob" highlights through the localpart rule
    listed = await notifications(api, bob)
    assert [n["event"]["event_id"] for n in listed["notifications"]] == [sent[4], sent[3], sent[1], sent[0]]
    assert all(n["room_id"] == room and n["read"] is False and n["ts"] > 0 for n in listed["notifications"])
    assert listed["notifications"][2]["actions"] == ["notify", {"set_tweak": "highlight"}]
    assert "next_token" not in listed
    highlights = await notifications(api, bob, only="highlight")
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [sent[3], sent[1]]
    page = await notifications(api, bob, limit="2")
    assert len(page["notifications"]) == 2
    rest = await notifications(api, bob, limit="2", **{"from": page["next_token"]})
    assert [n["event"]["event_id"] for n in page["notifications"] + rest["notifications"]] == [
        sent[4], sent[3], sent[1], sent[0]]
    # alice gets nothing for her own messages; bob reads up to the third message
    assert (await notifications(api, alice))["notifications"] == []
    assert (await api.post(f"/rooms/{room}/receipt/m.read/{sent[2]}", {}, token=bob_token))[0] == 200
    assert await sync_counts(api, bob, room) == (2, 1)
    read = [n["read"] for n in (await notifications(api, bob))["notifications"]]
    assert read == [False, False, True, True]
    assert sum(not flag for flag in read) == (await sync_counts(api, bob, room))[0]


async def test_a_muted_room_and_the_master_rule(api, alice, bob):
    room = await api.create_room(alice["access_token"], preset="public_chat")
    assert (await api.post(f"/rooms/{room}/join", {}, token=bob["access_token"]))[0] == 200
    assert (await api.put(f"/pushrules/global/room/{quote(room)}", {"actions": []},
                          token=bob["access_token"]))[0] == 200
    await api.send_text(alice["access_token"], room, "anyone?")
    assert await sync_counts(api, bob, room) == (0, 0)
    assert (await api.delete(f"/pushrules/global/room/{quote(room)}", token=bob["access_token"]))[0] == 200
    await api.send_text(alice["access_token"], room, "anyone now?")
    assert await sync_counts(api, bob, room) == (1, 0)
    assert (await api.put("/pushrules/global/override/.m.rule.master/enabled", {"enabled": True},
                          token=bob["access_token"]))[0] == 200
    await api.send_text(alice["access_token"], room, "and now?")
    assert await sync_counts(api, bob, room) == (1, 0)


async def test_notifications_parameters_are_checked(api, alice):
    for params in ({"from": "abc"}, {"limit": "0"}, {"limit": "x"}):
        status, body = await api.get("/notifications", token=alice["access_token"], params=params)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
