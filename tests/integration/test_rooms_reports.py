"""Reporting events, rooms and users, over real HTTP (matrix-nio has no call for it); the
stored reports read back through the service, as a later admin API will."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import Api


async def _user(api: Api, name: str) -> str:
    return (await api.register(name))["access_token"]


def _report_path(room_id: str, event_id: str) -> str:
    return f"/rooms/{quote(room_id)}/report/{quote(event_id)}"


async def test_event_reports_are_stored_for_admins(homeserver, api):
    alice, bob = await _user(api, "alice"), await _user(api, "bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.post(f"/join/{quote(room_id)}", {}, token=bob)
    event_id = await api.send_text(alice, room_id, "something rude", "t1")
    status, body = await api.post(_report_path(room_id, event_id), {"reason": "rude", "score": -100}, token=bob)
    assert (status, body) == (200, {})
    status, body = await api.post(_report_path(room_id, event_id), {}, token=bob)  # reason and score are optional
    assert (status, body) == (200, {})

    reports, next_token = await homeserver.reports.list_reports()
    assert next_token is None and len(reports) == 2
    newest, oldest = reports
    assert (oldest.kind, oldest.reporter, oldest.room_id, oldest.event_id, oldest.user_id, oldest.reason,
            oldest.score) == ("event", "@bob:localhost", room_id, event_id, "@alice:localhost", "rude", -100)
    assert newest.reason is None and newest.score is None and newest.received_ts >= oldest.received_ts
    assert (await homeserver.reports.get_report(oldest.report_id)) == oldest
    assert oldest.to_json()["reason"] == "rude"


async def test_event_reports_need_a_joined_reporter_who_can_see_the_event(api):
    alice, bob, eve = [await _user(api, name) for name in ("alice", "bob", "eve")]
    room_id = await api.create_room(alice, preset="public_chat",
                                    initial_state=[{"type": "m.room.history_visibility",
                                                    "content": {"history_visibility": "joined"}}])
    hidden = await api.send_text(alice, room_id, "hello", "t1")
    await api.post(f"/join/{quote(room_id)}", {}, token=bob)
    seen = await api.send_text(alice, room_id, "hello", "t2")
    other_room = await api.create_room(alice)
    elsewhere = await api.send_text(alice, other_room, "hello", "t3")

    for token, path in (
        (eve, _report_path(room_id, seen)),  # not in the room
        (bob, _report_path(room_id, hidden)),  # sent before bob joined, history is "joined"
        (bob, _report_path(room_id, "$unknown")),
        (bob, _report_path(room_id, elsewhere)),  # an event of another room
        (bob, _report_path("!unknown:localhost", seen)),
    ):
        status, body = await api.post(path, {"reason": "x"}, token=token)
        assert status == 404 and body["errcode"] == "M_NOT_FOUND", path
    status, body = await api.post(_report_path(room_id, seen), {"reason": "x"}, token=bob)
    assert status == 200
    await api.post(f"/rooms/{quote(room_id)}/leave", {}, token=bob)
    status, body = await api.post(_report_path(room_id, seen), {"reason": "x"}, token=bob)
    assert status == 404  # joined no more

    status, body = await api.post(_report_path(room_id, seen), {"reason": "x", "score": 5}, token=alice)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.post(_report_path(room_id, seen), {"reason": 5}, token=alice)
    assert status == 400 and body["errcode"] == "M_BAD_JSON"
    status, body = await api.post(_report_path(room_id, seen), {"reason": "x" * 10_001}, token=alice)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.post(_report_path(room_id, seen), {"reason": "x"})
    assert status == 401


async def test_room_reports_need_no_membership(homeserver, api):
    alice, eve = await _user(api, "alice"), await _user(api, "eve")
    room_id = await api.create_room(alice)
    status, body = await api.post(f"/rooms/{quote(room_id)}/report", {"reason": "bad room"}, token=eve)
    assert (status, body) == (200, {})
    status, body = await api.post(f"/rooms/{quote(room_id)}/report", {"reason": ""}, token=eve)  # may be blank
    assert status == 200
    status, body = await api.post("/rooms/!unknown:localhost/report", {"reason": "x"}, token=eve)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = await api.post(f"/rooms/{quote(room_id)}/report", {}, token=eve)
    assert status == 400 and body["errcode"] == "M_MISSING_PARAM"
    reports, _ = await homeserver.reports.list_reports(kind="room")
    assert [(r.reporter, r.room_id, r.reason) for r in reports] == [
        ("@eve:localhost", room_id, ""), ("@eve:localhost", room_id, "bad room")]


async def test_user_reports(homeserver, api):
    await _user(api, "alice")
    eve = await _user(api, "eve")
    status, body = await api.post("/users/%40alice%3Alocalhost/report", {"reason": "harassment"}, token=eve)
    assert (status, body) == (200, {})
    status, body = await api.post("/users/%40nobody%3Alocalhost/report", {"reason": "x"}, token=eve)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = await api.post("/users/%40someone%3Aexample.org/report", {"reason": "remote"}, token=eve)
    assert status == 200  # this server cannot tell whether a remote user exists
    status, body = await api.post("/users/not-a-user/report", {"reason": "x"}, token=eve)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.post("/users/%40alice%3Alocalhost/report", {}, token=eve)
    assert status == 400 and body["errcode"] == "M_MISSING_PARAM"
    reports, _ = await homeserver.reports.list_reports(user_id="@alice:localhost")
    assert [(r.kind, r.reporter, r.reason) for r in reports] == [("user", "@eve:localhost", "harassment")]


async def test_listing_reports_pages_and_filters(homeserver, api):
    alice, bob = await _user(api, "alice"), await _user(api, "bob")
    rooms = [await api.create_room(alice) for _ in range(2)]
    for index in range(5):
        status, _ = await api.post(f"/rooms/{quote(rooms[index % 2])}/report", {"reason": f"r{index}"},
                                   token=bob if index < 3 else alice)
        assert status == 200
    service = homeserver.reports
    seen, token = [], None
    while True:
        page, token = await service.list_reports(limit=2, from_token=token)
        assert len(page) <= 2
        seen += [report.reason for report in page]
        if token is None:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0"]
    by_room, _ = await service.list_reports(room_id=rooms[0])
    assert [r.reason for r in by_room] == ["r4", "r2", "r0"]
    by_reporter, _ = await service.list_reports(reporter="@alice:localhost")
    assert [r.reason for r in by_reporter] == ["r4", "r3"]
    assert await service.delete_report(by_reporter[0].report_id)
    assert await service.get_report(by_reporter[0].report_id) is None
    assert not await service.delete_report(by_reporter[0].report_id)
