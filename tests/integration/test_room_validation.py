"""Bad input to the room endpoints gets the spec's error, and nothing is written: canonical
aliases, filters, cross-room redactions, events one may not see, missing bodies."""

from __future__ import annotations

import json
from urllib.parse import quote


async def test_canonical_alias_must_be_valid_and_point_to_the_room(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token, room_alias_name="home")
    other = await api.create_room(token, room_alias_name="elsewhere")
    status, _ = await api.put("/directory/room/%23second:localhost", {"room_id": room_id}, token=token)
    assert status == 200

    path = f"/rooms/{room_id}/state/m.room.canonical_alias"
    for content, errcode in [
        ({"alias": "not an alias"}, "M_INVALID_PARAM"),
        ({"alias": "#nodomain"}, "M_INVALID_PARAM"),
        ({"alias": 7}, "M_INVALID_PARAM"),
        ({"alias": "#home:localhost", "alt_aliases": "#second:localhost"}, "M_INVALID_PARAM"),
        ({"alias": "#home:localhost", "alt_aliases": ["#second:localhost", "bad"]}, "M_INVALID_PARAM"),
        ({"alias": "#elsewhere:localhost"}, "M_BAD_ALIAS"),
        ({"alias": "#nobody:localhost"}, "M_BAD_ALIAS"),
        ({"alias": "#home:localhost", "alt_aliases": ["#elsewhere:localhost"]}, "M_BAD_ALIAS"),
        ({"alias": "#far:other.example"}, "M_BAD_ALIAS"),
    ]:
        status, body = await api.put(path, content, token=token)
        assert (status, body.get("errcode")) == (400, errcode), content
    status, current = await api.get(path, token=token)
    assert current == {"alias": "#home:localhost"}, "nothing refused was applied"

    for content in ({"alias": "#second:localhost", "alt_aliases": ["#home:localhost"]}, {}, {"alias": ""}):
        status, body = await api.put(path, content, token=token)
        assert status == 200, (content, body)
    status, body = await api.put(f"/rooms/{other}/state/m.room.canonical_alias",
                                 {"alias": "#elsewhere:localhost", "alt_aliases": []}, token=token)
    assert status == 200, body


async def test_invalid_filters_are_refused_and_not_stored(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token)
    bad_filters = [
        [], {"event_format": "xml"}, {"event_format": 1}, {"event_fields": "type"}, {"event_fields": [1]},
        {"presence": []}, {"presence": {"types": "m.presence"}}, {"presence": {"senders": ["alice"]}},
        {"account_data": {"not_types": [None]}}, {"account_data": {"limit": "ten"}},
        {"room": []}, {"room": {"rooms": "!a:localhost"}}, {"room": {"rooms": ["not-a-room"]}},
        {"room": {"not_rooms": [5]}}, {"room": {"include_leave": "yes"}}, {"room": {"timeline": 3}},
        {"room": {"timeline": {"limit": -1}}}, {"room": {"timeline": {"limit": 1.5}}},
        {"room": {"state": {"lazy_load_members": "true"}}}, {"room": {"ephemeral": {"not_senders": ["@"]}}},
        {"room": {"account_data": {"contains_url": 1}}}, {"room": {"timeline": {"rooms": ["#alias:localhost"]}}},
    ]
    for bad in bad_filters:
        status, body = await api.post("/user/@alice:localhost/filter", bad, token=token)
        assert (status, body.get("errcode")) == (400, "M_BAD_JSON"), bad
        if isinstance(bad, dict):  # anything else is taken for the ID of a stored filter
            status, body = await api.get("/sync", params={"filter": json.dumps(bad)}, token=token)
            assert (status, body.get("errcode")) == (400, "M_BAD_JSON"), bad
    status, body = await api.get(f"/rooms/{room_id}/messages", params={"filter": json.dumps({"senders": ["x"]})},
                                 token=token)
    assert (status, body.get("errcode")) == (400, "M_BAD_JSON")
    status, created = await api.post("/user/@alice:localhost/filter", {"room": {"timeline": {"limit": 0}}}, token=token)
    assert (status, created["filter_id"]) == (200, "0"), "refused filters took no ID"
    good = {"event_format": "federation", "event_fields": ["content.body"], "presence": {"senders": ["@bob:localhost"]},
            "room": {"rooms": [room_id], "not_rooms": [], "include_leave": False,
                     "timeline": {"limit": 5, "not_types": ["m.room.*"], "contains_url": True,
                                  "unread_thread_notifications": True, "org.example.unknown": 1}},
            "org.example.extension": {"any": "thing"}}
    status, created = await api.post("/user/@alice:localhost/filter", good, token=token)
    assert status == 200, created


async def test_a_redaction_of_an_event_of_another_room_is_refused(api):
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    here = await api.create_room(token)
    there = await api.create_room(token)
    target = await api.send_text(token, there, "keep me")
    status, body = await api.put(f"/rooms/{here}/redact/{quote(target, safe='')}/t1", {"reason": "x"}, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.put(f"/rooms/{here}/send/m.room.redaction/t2", {"redacts": target}, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.put(f"/rooms/{here}/state/m.room.redaction/", {"redacts": target}, token=token)
    assert status in (400, 404), body
    status, event = await api.get(f"/rooms/{there}/event/{quote(target, safe='')}", token=token)
    assert event["content"]["body"] == "keep me" and "redacted_because" not in event["unsigned"]
    status, page = await api.get(f"/rooms/{here}/messages", params={"limit": "5"}, token=token)
    assert all(e["type"] != "m.room.redaction" for e in page["chunk"])


async def test_an_event_the_caller_may_not_see_is_not_found(api):
    alice, bob = await api.register_all("alice", "bob")
    room_id = await api.create_room(alice["access_token"], preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}])
    secret = await api.send_text(alice["access_token"], room_id, "before bob")
    path = f"/rooms/{room_id}/event/{quote(secret, safe='')}"
    status, body = await api.get(path, token=bob["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), "a stranger"
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    status, body = await api.get(path, token=bob["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), "sent before bob joined a 'joined' room"
    status, body = await api.get(f"/rooms/{room_id}/event/%24nothere", token=bob["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.get(path, token=alice["access_token"])
    assert status == 200 and body["content"]["body"] == "before bob"


async def test_required_bodies_are_required(api):
    alice, bob = await api.register_all("alice", "bob")
    token = alice["access_token"]
    room_id = await api.create_room(token, preset="public_chat")
    headers = {"Content-Type": "application/json"}
    required = [
        ("PUT", f"/rooms/{room_id}/send/m.room.message/e1"),
        ("POST", "/createRoom"),
        ("PUT", f"/user/@alice:localhost/rooms/{room_id}/tags/u.work"),
        ("PUT", f"/rooms/{room_id}/redact/%24event/r1"),
    ]
    # matrix-nio sends these with no body at all, as Synapse accepts; a body, when
    # there is one, must still be a JSON object.
    membership = [("POST", f"/rooms/{room_id}/join"), ("POST", f"/join/{room_id}"), ("POST", f"/knock/{room_id}"),
                  ("POST", f"/rooms/{room_id}/leave")]
    for method, path in required + membership:
        who = bob["access_token"] if "join" in path or "knock" in path else token
        for raw, errcode in ((b"", "M_NOT_JSON"), (b"null", "M_BAD_JSON"), (b"[]", "M_BAD_JSON"),
                             (b"{", "M_NOT_JSON"), (b'"text"', "M_BAD_JSON")):
            if raw or (method, path) in required:
                status, body = await api.request(method, path, data=raw, token=who, headers=headers)
                assert (status, body.get("errcode")) == (400, errcode), (method, path, raw)
    status, body = await api.put(f"/user/@alice:localhost/rooms/{room_id}/tags/u.work", {"order": None}, token=token)
    assert (status, body.get("errcode")) == (400, "M_BAD_JSON")
    status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "20"}, token=token)
    assert [e["type"] for e in page["chunk"] if e["type"] == "m.room.message"] == []
    status, members = await api.get(f"/rooms/{room_id}/joined_members", token=token)
    assert list(members["joined"]) == ["@alice:localhost"], "no join or leave happened"
    status, tags = await api.get(f"/user/@alice:localhost/rooms/{room_id}/tags", token=token)
    assert tags == {"tags": {}}
    # An empty object stays valid where the spec allows it.
    for method, path, who in [("PUT", f"/rooms/{room_id}/send/m.room.message/e2", token), ("POST", "/createRoom", token),
                              ("POST", f"/rooms/{room_id}/join", bob["access_token"]),
                              ("POST", f"/rooms/{room_id}/leave", bob["access_token"]),
                              ("PUT", f"/user/@alice:localhost/rooms/{room_id}/tags/u.work", token)]:
        status, body = await api.request(method, path, {}, token=who)
        assert status == 200, (path, body)
