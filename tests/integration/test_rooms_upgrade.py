"""Room upgrades end to end: POST /rooms/{roomId}/upgrade over real HTTP.

(matrix-nio's `room_upgrade` does the upgrade on the client side, without this endpoint,
so raw HTTP is used here.)
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import Api


async def _user(api: Api, name: str) -> str:
    return (await api.register(name))["access_token"]


async def _state(api: Api, token: str, room_id: str, event_type: str, state_key: str = "") -> tuple[int, dict]:
    return await api.get(f"/rooms/{quote(room_id)}/state/{event_type}/{quote(state_key)}", token=token)


async def _put_state(api: Api, token: str, room_id: str, event_type: str, content: dict, state_key: str = "") -> None:
    status, body = await api.put(f"/rooms/{quote(room_id)}/state/{event_type}/{quote(state_key)}", content, token=token)
    assert status == 200, body


async def _upgrade(api: Api, token: str, room_id: str, version: str, **extra) -> tuple[int, dict]:
    return await api.post(f"/rooms/{quote(room_id)}/upgrade", {"new_version": version, **extra}, token=token)


async def _send(api: Api, token: str, room_id: str, txn: str) -> tuple[int, dict]:
    return await api.put(f"/rooms/{quote(room_id)}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": "hi"},
                         token=token)


async def test_upgrade_end_to_end(api):
    alice, bob, carol, mallory = [await _user(api, name) for name in ("alice", "bob", "carol", "mallory")]
    old = await api.create_room(alice, visibility="public", room_version="10", name="Old name", topic="Old topic",
                                room_alias_name="club", creation_content={"type": "org.example.club"},
                                power_level_content_override={"users": {"@alice:localhost": 100, "@bob:localhost": 50}},
                                initial_state=[
                                    {"type": "m.room.avatar", "content": {"url": "mxc://localhost/avatar"}},
                                    {"type": "m.room.guest_access", "content": {"guest_access": "can_join"}},
                                    {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
                                    {"type": "m.room.server_acl", "content": {"allow": ["*"], "deny": ["evil.example"],
                                                                              "allow_ip_literals": False}},
                                    {"type": "org.example.custom", "content": {"kept": False}},
                                ])
    for token in (bob, carol, mallory):
        status, body = await api.post(f"/join/{quote(old)}", {}, token=token)
        assert status == 200, body
    status, _ = await api.put("/directory/room/%23alt%3Alocalhost", {"room_id": old}, token=alice)
    await _put_state(api, alice, old, "m.room.canonical_alias",
                     {"alias": "#club:localhost", "alt_aliases": ["#alt:localhost"]})
    status, body = await api.post(f"/rooms/{quote(old)}/ban", {"user_id": "@mallory:localhost", "reason": "spam"},
                                  token=alice)
    assert status == 200, body
    status, last = await _send(api, alice, old, "before")
    status, old_levels = await _state(api, alice, old, "m.room.power_levels")

    status, body = await _upgrade(api, alice, old, "11")
    assert status == 200, body
    new = body["replacement_room"]
    assert new != old

    # the old room: tombstone, restricted, aliases and directory entry gone
    status, tombstone = await _state(api, alice, old, "m.room.tombstone")
    assert tombstone == {"body": "This room has been replaced", "replacement_room": new}
    status, levels = await _state(api, alice, old, "m.room.power_levels")
    assert levels["events_default"] == 50 and levels["invite"] == 50
    status, body = await _send(api, carol, old, "after")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    status, canonical = await _state(api, alice, old, "m.room.canonical_alias")
    assert canonical == {}
    status, body = await api.get(f"/directory/list/room/{quote(old)}")
    assert body == {"visibility": "private"}

    # the new room: predecessor, copied state, aliases, directory entry
    status, create = await _state(api, alice, new, "m.room.create")
    assert create["room_version"] == "11" and create["type"] == "org.example.club"
    assert create["predecessor"] == {"room_id": old, "event_id": last["event_id"]}
    assert "creator" not in create
    expected = {
        "m.room.name": {"name": "Old name"},
        "m.room.topic": {"topic": "Old topic"},
        "m.room.avatar": {"url": "mxc://localhost/avatar"},
        "m.room.guest_access": {"guest_access": "can_join"},
        "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
        "m.room.server_acl": {"allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": False},
        "m.room.join_rules": {"join_rule": "public"},
        "m.room.history_visibility": {"history_visibility": "shared"},
        "m.room.power_levels": old_levels,
        "m.room.canonical_alias": {"alias": "#club:localhost", "alt_aliases": ["#alt:localhost"]},
    }
    for event_type, content in expected.items():
        status, got = await _state(api, alice, new, event_type)
        assert (status, got) == (200, content), event_type
    status, body = await _state(api, alice, new, "org.example.custom")
    assert status == 404
    status, ban = await _state(api, alice, new, "m.room.member", "@mallory:localhost")
    assert ban == {"membership": "ban", "reason": "spam"}
    status, members = await api.get(f"/rooms/{quote(new)}/joined_members", token=alice)
    assert set(members["joined"]) == {"@alice:localhost"}

    for alias in ("%23club%3Alocalhost", "%23alt%3Alocalhost"):
        status, resolved = await api.get(f"/directory/room/{alias}")
        assert resolved["room_id"] == new
    status, aliases = await api.get(f"/rooms/{quote(new)}/aliases", token=alice)
    assert aliases == {"aliases": ["#alt:localhost", "#club:localhost"]}
    status, body = await api.get(f"/directory/list/room/{quote(new)}")
    assert body == {"visibility": "public"}
    status, public = await api.get("/publicRooms")
    assert [entry["room_id"] for entry in public["chunk"]] == [new]

    # members follow the tombstone; the banned user cannot
    status, body = await api.post(f"/join/{quote(new)}", {}, token=bob)
    assert status == 200, body
    status, body = await _send(api, bob, new, "new")
    assert status == 200, body
    status, body = await api.post(f"/join/{quote(new)}", {}, token=mallory)
    assert status == 403


async def test_upgrade_refusals(api):
    alice, bob, eve = [await _user(api, name) for name in ("alice", "bob", "eve")]
    room_id = await api.create_room(alice, preset="public_chat")
    status, body = await api.post(f"/join/{quote(room_id)}", {}, token=bob)
    status, body = await _upgrade(api, alice, room_id, "99")
    assert status == 400 and body["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    status, body = await _upgrade(api, bob, room_id, "11")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    status, body = await _upgrade(api, eve, room_id, "11")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    status, body = await api.post(f"/rooms/{quote(room_id)}/upgrade", {}, token=alice)
    assert status == 400 and body["errcode"] == "M_MISSING_PARAM"
    status, body = await _upgrade(api, alice, room_id, "12", additional_creators=[7])
    assert status == 400 and body["errcode"] == "M_BAD_JSON"
    status, body = await _upgrade(api, alice, room_id, "12", additional_creators=["not a user"])
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await _upgrade(api, alice, "!unknown:localhost", "11")
    assert status == 404
    status, tombstone = await _state(api, alice, room_id, "m.room.tombstone")
    assert status == 404  # nothing was half done


async def test_upgrade_to_v12_keeps_creators_out_of_power_levels(api):
    alice, bob, carol = [await _user(api, name) for name in ("alice", "bob", "carol")]
    old = await api.create_room(alice, preset="public_chat", power_level_content_override={
                                "users": {"@alice:localhost": 100, "@bob:localhost": 100, "@carol:localhost": 20}})
    for token in (bob, carol):
        await api.post(f"/join/{quote(old)}", {}, token=token)
    status, body = await _upgrade(api, alice, old, "12", additional_creators=["@bob:localhost"])
    assert status == 200, body
    new = body["replacement_room"]
    assert new.startswith("!") and ":" not in new  # a v12 room ID is the create event's hash
    status, create = await _state(api, alice, new, "m.room.create")
    assert create["room_version"] == "12" and create["additional_creators"] == ["@bob:localhost"]
    assert create["predecessor"]["room_id"] == old
    status, levels = await _state(api, alice, new, "m.room.power_levels")
    assert levels["users"] == {"@carol:localhost": 20}
    # bob, a creator of the new room, may do anything there once joined
    status, body = await api.post(f"/join/{quote(new)}", {}, token=bob)
    assert status == 200, body
    await _put_state(api, bob, new, "m.room.name", {"name": "bob's"})


async def test_upgrade_from_v12_gives_the_old_creators_a_level(api):
    alice = await _user(api, "alice")
    old = await api.create_room(alice, room_version="12", name="Twelve")
    status, body = await _upgrade(api, alice, old, "11")
    assert status == 200, body
    new = body["replacement_room"]
    status, levels = await _state(api, alice, new, "m.room.power_levels")
    assert levels["users"] == {"@alice:localhost": 150}  # the highest level in use (tombstone, in v12)
    status, name = await _state(api, alice, new, "m.room.name")
    assert name == {"name": "Twelve"}
    status, tombstone = await _state(api, alice, old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new


async def test_upgrade_normalises_string_power_levels_of_old_versions(api):
    alice = await _user(api, "alice")
    old = await api.create_room(alice, room_version="1", power_level_content_override={"ban": "60", "events_default": " 0"})
    status, body = await _upgrade(api, alice, old, "11")
    assert status == 200, body
    status, levels = await _state(api, alice, body["replacement_room"], "m.room.power_levels")
    assert levels["ban"] == 60 and levels["events_default"] == 0
    status, create = await _state(api, alice, body["replacement_room"], "m.room.create")
    assert create["predecessor"]["room_id"] == old


async def test_a_moderator_with_tombstone_power_can_upgrade(api):
    alice, bob = await _user(api, "alice"), await _user(api, "bob")
    old = await api.create_room(alice, preset="public_chat", power_level_content_override={
                                "users": {"@alice:localhost": 100, "@bob:localhost": 50}, "events": {"m.room.tombstone": 50}})
    await api.post(f"/join/{quote(old)}", {}, token=bob)
    status, body = await _upgrade(api, bob, old, "11")
    assert status == 200, body
    new = body["replacement_room"]
    status, levels = await _state(api, bob, new, "m.room.power_levels")
    assert levels["users"] == {"@alice:localhost": 100, "@bob:localhost": 50}


@pytest.mark.parametrize("version", ["11", "12"])
async def test_upgrading_a_space_keeps_its_children(api, version):
    alice = await _user(api, "alice")
    child = await api.create_room(alice, name="child")
    space = await api.create_room(alice, name="space", creation_content={"type": "m.space"})
    await _put_state(api, alice, space, "m.space.child", {"via": ["localhost"], "suggested": True}, child)
    await _put_state(api, alice, space, "m.space.child", {}, "!removed:localhost")
    status, body = await _upgrade(api, alice, space, version)
    assert status == 200, body
    new = body["replacement_room"]
    status, create = await _state(api, alice, new, "m.room.create")
    assert create["type"] == "m.space"
    status, link = await _state(api, alice, new, "m.space.child", child)
    assert link == {"via": ["localhost"], "suggested": True}
    status, _ = await _state(api, alice, new, "m.space.child", "!removed:localhost")
    assert status == 404


async def test_a_refused_follow_up_of_an_upgrade_is_logged(api, caplog):
    """Restricting the old room is best effort: when the auth rules refuse it (here the
    power levels event needs more than the upgrader has), the upgrade goes on and says so."""
    alice = await _user(api, "alice")
    old = await api.create_room(alice, room_version="10",
                                power_level_content_override={"events": {"m.room.power_levels": 150}})
    with caplog.at_level("WARNING", logger="ranvier.rooms.upgrade"):
        status, body = await _upgrade(api, alice, old, "11")
    assert status == 200, body
    warnings = [r.getMessage() for r in caplog.records if r.name == "ranvier.rooms.upgrade"]
    assert any(old in message and "power levels" in message for message in warnings), warnings


async def test_members_keep_their_tags_direct_chats_and_room_rules(api):
    """The spec: the server transfers a member's personal settings to the new room (Synapse:
    the tags, the m.direct entries and the push rules naming the old room, for every local
    member of the old room). Element mutes a room with an override rule named after it."""
    alice, bob, carol = [await _user(api, name) for name in ("alice", "bob", "carol")]
    old = await api.create_room(alice, preset="trusted_private_chat", is_direct=True, invite=["@bob:localhost"])
    assert (await api.post(f"/join/{quote(old)}", {}, token=bob))[0] == 200
    other = await api.create_room(alice)
    direct = {"@bob:localhost": [other, old], "@dan:localhost": ["!elsewhere:localhost"]}
    assert (await api.put("/user/@alice:localhost/account_data/m.direct", direct, token=alice))[0] == 200
    assert (await api.put(f"/user/@alice:localhost/rooms/{quote(old)}/tags/m.favourite", {"order": 0.25},
                          token=alice))[0] == 200
    mute = {"conditions": [{"kind": "event_match", "key": "room_id", "pattern": old}], "actions": []}
    assert (await api.put(f"/pushrules/global/override/{quote(old)}", mute, token=alice))[0] == 200
    assert (await api.put(f"/pushrules/global/room/{quote(old)}", {"actions": ["notify"]}, token=bob))[0] == 200
    disabled = {"conditions": [{"kind": "event_match", "key": "room_id", "pattern": old}], "actions": ["notify"]}
    assert (await api.put("/pushrules/global/underride/quiet", disabled, token=bob))[0] == 200
    assert (await api.put("/pushrules/global/underride/quiet/enabled", {"enabled": False}, token=bob))[0] == 200
    assert (await api.put(f"/user/@carol:localhost/rooms/{quote(old)}/tags/m.lowpriority", {}, token=carol))[0] == 200

    status, body = await _upgrade(api, alice, old, "11")
    assert status == 200, body
    new = body["replacement_room"]

    status, tags = await api.get(f"/user/@alice:localhost/rooms/{quote(new)}/tags", token=alice)
    assert (status, tags) == (200, {"tags": {"m.favourite": {"order": 0.25}}})
    status, direct_now = await api.get("/user/@alice:localhost/account_data/m.direct", token=alice)
    assert direct_now == {"@bob:localhost": [other, old, new], "@dan:localhost": ["!elsewhere:localhost"]}
    status, rule = await api.get(f"/pushrules/global/override/{quote(new)}", token=alice)
    assert status == 200 and rule["actions"] == [] and rule["enabled"] is True, rule
    assert rule["conditions"] == [{"kind": "event_match", "key": "room_id", "pattern": new}]
    status, rule = await api.get(f"/pushrules/global/override/{quote(old)}", token=alice)
    assert status == 200 and rule["conditions"][0]["pattern"] == old  # the old room's rule stays
    status, rule = await api.get(f"/pushrules/global/room/{quote(new)}", token=bob)
    assert status == 200 and rule["actions"] == ["notify"], rule
    status, rules = await api.get("/pushrules/", token=bob)
    assert [r["rule_id"] for r in rules["global"]["underride"] if not r["default"]] == ["quiet"]  # disabled: not copied
    # Carol never joined the old room: nothing of hers is copied.
    status, tags = await api.get(f"/user/@carol:localhost/rooms/{quote(new)}/tags", token=carol)
    assert (status, tags) == (200, {"tags": {}})
    # The copies reach the members' clients through /sync.
    synced = await api.sync(alice)
    assert synced["rooms"]["join"][new]["account_data"]["events"] == [
        {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.25}}}}]


async def test_a_user_joining_the_new_room_later_gets_their_settings(api):
    """Synapse also carries the settings over when a user joins the new room (the spec's
    wording), for upgrades made on another server or while the user was not in the old
    room; only for a room the old room's tombstone names, as anyone may claim a predecessor."""
    alice, bob = [await _user(api, name) for name in ("alice", "bob")]
    old = await api.create_room(alice, preset="public_chat")
    assert (await api.post(f"/join/{quote(old)}", {}, token=bob))[0] == 200
    assert (await api.put(f"/user/@bob:localhost/rooms/{quote(old)}/tags/m.favourite", {}, token=bob))[0] == 200
    assert (await api.put("/user/@bob:localhost/account_data/m.direct", {"@alice:localhost": [old]}, token=bob))[0] == 200
    mute = {"conditions": [{"kind": "event_match", "key": "room_id", "pattern": old}], "actions": []}
    assert (await api.put(f"/pushrules/global/override/{quote(old)}", mute, token=bob))[0] == 200
    assert (await api.post(f"/rooms/{quote(old)}/leave", {}, token=bob))[0] == 200
    # A room that claims the old one as its predecessor, without the old room's say-so.
    impostor = await api.create_room(alice, preset="public_chat",
                                     creation_content={"predecessor": {"room_id": old, "event_id": "$x"}})
    assert (await api.post(f"/join/{quote(impostor)}", {}, token=bob))[0] == 200
    status, tags = await api.get(f"/user/@bob:localhost/rooms/{quote(impostor)}/tags", token=bob)
    assert tags == {"tags": {}}

    status, body = await _upgrade(api, alice, old, "11")
    assert status == 200, body
    new = body["replacement_room"]
    status, tags = await api.get(f"/user/@bob:localhost/rooms/{quote(new)}/tags", token=bob)
    assert tags == {"tags": {}}  # Bob was not in the old room at the upgrade
    assert (await api.post(f"/rooms/{quote(new)}/join", {}, token=bob))[0] == 200
    status, tags = await api.get(f"/user/@bob:localhost/rooms/{quote(new)}/tags", token=bob)
    assert tags == {"tags": {"m.favourite": {}}}
    status, direct = await api.get("/user/@bob:localhost/account_data/m.direct", token=bob)
    assert direct == {"@alice:localhost": [old, new]}
    status, rule = await api.get(f"/pushrules/global/override/{quote(new)}", token=bob)
    assert status == 200 and rule["conditions"][0]["pattern"] == new
    status, rule = await api.get(f"/pushrules/global/override/{quote(impostor)}", token=bob)
    assert status == 404
