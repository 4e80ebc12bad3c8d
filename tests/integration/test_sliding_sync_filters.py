"""Sliding sync list filters: is_dm (from m.direct), is_encrypted, room_types and
not_room_types, spaces (m.space.child), tags and not_tags, over HTTP on both engines."""

from __future__ import annotations

from tests.integration.sliding_support import Connection, a_list


async def listed(api, token: str, **filters) -> set[str]:
    response = await Connection(api, token).sync({"lists": {"l": a_list(limit=0, **filters)}})
    assert response["lists"]["l"]["count"] == len(response["rooms"])
    return set(response["rooms"])


async def test_is_dm_follows_m_direct(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    dm = await api.create_room(token, invite=["@bob:localhost"], is_direct=True)
    group = await api.create_room(token)
    assert await listed(api, token, is_dm=True) == set()
    await api.put("/user/@alice:localhost/account_data/m.direct", {"@bob:localhost": [dm]}, token=token)
    assert await listed(api, token, is_dm=True) == {dm}
    assert await listed(api, token, is_dm=False) == {group}
    # A connection learns of a room becoming a DM, and its lists change.
    connection = Connection(api, token)
    config = {"lists": {"dms": a_list([0, 9], is_dm=True), "all": a_list([0, 9])}}
    first = await connection.sync(config)
    assert first["rooms"][dm]["is_dm"] is True and "is_dm" not in first["rooms"][group]
    await api.put("/user/@alice:localhost/account_data/m.direct", {"@bob:localhost": [dm, group]}, token=token)
    second = await connection.sync(config)
    assert second["lists"]["dms"]["count"] == 2
    assert second["rooms"][group]["is_dm"] is True and second["rooms"][group]["lists"] == ["dms", "all"]


async def test_is_encrypted_and_room_types(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    plain = await api.create_room(token)
    encrypted = await api.create_room(token, initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    space = await api.create_room(token, creation_content={"type": "m.space"})
    custom = await api.create_room(token, creation_content={"type": "org.example.kind"})
    assert await listed(api, token, is_encrypted=True) == {encrypted}
    assert await listed(api, token, is_encrypted=False) == {plain, space, custom}
    assert await listed(api, token, room_types=["m.space"]) == {space}
    assert await listed(api, token, room_types=[None]) == {plain, encrypted}
    assert await listed(api, token, room_types=[None, "org.example.kind"]) == {plain, encrypted, custom}
    assert await listed(api, token, not_room_types=["m.space"]) == {plain, encrypted, custom}
    assert await listed(api, token, not_room_types=[None]) == {space, custom}
    assert await listed(api, token, room_types=["m.space"], not_room_types=["m.space"]) == set(), "not_room_types wins"
    # Encryption turned on later is seen at once.
    await api.put(f"/rooms/{plain}/state/m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, token=token)
    assert await listed(api, token, is_encrypted=True) == {encrypted, plain}


async def test_spaces_filter_reads_the_children_of_joined_spaces(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    space = await api.create_room(token, creation_content={"type": "m.space"})
    child, removed_child, outside = [await api.create_room(token) for _ in range(3)]
    await api.put(f"/rooms/{space}/state/m.space.child/{child}", {"via": ["localhost"]}, token=token)
    await api.put(f"/rooms/{space}/state/m.space.child/{removed_child}", {"via": ["localhost"]}, token=token)
    await api.put(f"/rooms/{space}/state/m.space.child/{removed_child}", {}, token=token)
    assert await listed(api, token, spaces=[space]) == {child}
    assert await listed(api, token, spaces=["!unknown:localhost"]) == set()
    # A space the user is not joined to is ignored, even when they know its ID.
    bobs_space = await api.create_room(bob["access_token"], preset="public_chat", creation_content={"type": "m.space"})
    await api.put(f"/rooms/{bobs_space}/state/m.space.child/{outside}", {"via": ["localhost"]}, token=bob["access_token"])
    assert await listed(api, token, spaces=[bobs_space]) == set()
    assert await listed(api, token, spaces=[space, bobs_space]) == {child}


async def test_tags_and_not_tags(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    favourite, work, both, untagged = [await api.create_room(token) for _ in range(4)]
    for room_id, tags in ((favourite, ["m.favourite"]), (work, ["u.work"]), (both, ["m.favourite", "u.work"])):
        for tag in tags:
            status, _ = await api.put(f"/user/@alice:localhost/rooms/{room_id}/tags/{tag}", {"order": 0.5}, token=token)
            assert status == 200
    assert await listed(api, token, tags=["m.favourite"]) == {favourite, both}
    assert await listed(api, token, tags=["m.favourite", "u.work"]) == {favourite, work, both}
    assert await listed(api, token, not_tags=["m.favourite"]) == {work, untagged}
    assert await listed(api, token, tags=["m.favourite"], not_tags=["u.work"]) == {favourite}, "not_tags wins"
    await api.delete(f"/user/@alice:localhost/rooms/{both}/tags/u.work", token=token)
    assert await listed(api, token, tags=["m.favourite"], not_tags=["u.work"]) == {favourite, both}
