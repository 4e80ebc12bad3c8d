"""The space hierarchy across two ranvier servers: b's space, with children on b and on a,
browsed from a's client API (by a user outside the space, and by one in it whose server
lacks the children), and b's answers to a's federation requests."""

from __future__ import annotations

from federation_support import hierarchy_names, link_child, new_room, signed
from ranvier.federation.client import path_segment
from tests.conftest import _free_port


async def _space_on_b(a, b) -> dict[str, str]:
    """b's public Space -> Bee (b, suggested; order a), Ay (a; order b), Secret (b, invite-only;
    order c), Sub (b's space, suggested; order d) -> [Cee (suggested), Dee], Ghost (a room of
    a server that does not answer; order e)."""
    bob = (await b.user("bob"))["access_token"]
    carol = (await a.user("carol"))["access_token"]
    rooms = {
        "Space": await new_room(b.api, bob, "Space", space=True),
        "Bee": await new_room(b.api, bob, "Bee"),
        "Ay": await new_room(a.api, carol, "Ay"),
        "Secret": await new_room(b.api, bob, "Secret", preset="private_chat"),
        "Sub": await new_room(b.api, bob, "Sub", space=True),
        "Cee": await new_room(b.api, bob, "Cee"),
        "Dee": await new_room(b.api, bob, "Dee"),
    }
    nowhere = f"127.0.0.1:{_free_port()}"
    rooms["Ghost"] = f"!ghost:{nowhere}"
    await link_child(b.api, bob, rooms["Space"], rooms["Bee"], [b.name], order="a", suggested=True)
    await link_child(b.api, bob, rooms["Space"], rooms["Ay"], [a.name], order="b")
    await link_child(b.api, bob, rooms["Space"], rooms["Secret"], [b.name], order="c")
    await link_child(b.api, bob, rooms["Space"], rooms["Sub"], [b.name], order="d", suggested=True)
    await link_child(b.api, bob, rooms["Space"], rooms["Ghost"], [nowhere], order="e")
    await link_child(b.api, bob, rooms["Sub"], rooms["Cee"], [b.name], order="a", suggested=True)
    await link_child(b.api, bob, rooms["Sub"], rooms["Dee"], [b.name], order="b")
    return rooms


def _count_requests(server) -> list[str]:
    """The rooms `server` asks other servers about, one entry per request."""
    asked, ask = [], server.hs.federation.remote_spaces._ask

    async def counted(destination: str, room_id: str, suggested_only: bool):
        asked.append(room_id)
        return await ask(destination, room_id, suggested_only)

    server.hs.federation.remote_spaces._ask = counted
    return asked


async def test_a_user_of_a_browses_bs_space_through_bs_answers(pair):
    """One request per remote space (its children's entries come with it; the unreachable
    Ghost is asked of its via once), then the pages come from the cache."""
    a, b = pair
    rooms = await _space_on_b(a, b)
    alice = (await a.user("alice"))["access_token"]
    asked = _count_requests(a)
    assert await hierarchy_names(a.api, alice, rooms["Space"]) == ["Space", "Bee", "Ay", "Sub", "Cee", "Dee"]
    assert sorted(asked) == sorted([rooms["Space"], rooms["Sub"], rooms["Ghost"]])
    assert await hierarchy_names(a.api, alice, rooms["Space"], limit=2) == ["Space", "Bee", "Ay", "Sub", "Cee", "Dee"]
    assert len(asked) == 3
    assert await hierarchy_names(a.api, alice, rooms["Space"], suggested_only=True) == ["Space", "Bee", "Sub", "Cee"]
    assert await hierarchy_names(a.api, alice, rooms["Space"], max_depth=1) == ["Space", "Bee", "Ay", "Sub"]
    status, body = await a.api.get(f"/_matrix/client/v1/rooms/{rooms['Space']}/hierarchy", token=alice)
    space, bee = body["rooms"][0], body["rooms"][1]
    assert space["room_id"] == rooms["Space"] and space["room_type"] == "m.space" and space["join_rule"] == "public"
    assert [event["state_key"] for event in space["children_state"]] == [
        rooms[name] for name in ("Bee", "Ay", "Secret", "Sub", "Ghost")]
    assert bee["room_id"] == rooms["Bee"] and bee["children_state"] == [] and bee["num_joined_members"] == 1


async def test_a_member_of_the_space_whose_server_lacks_the_children(pair):
    a, b = pair
    rooms = await _space_on_b(a, b)
    alice = (await a.user("alice"))["access_token"]
    status, joined = await a.api.post(f"/join/{rooms['Space']}", {}, token=alice, params={"via": b.name})
    assert status == 200, joined
    assert await hierarchy_names(a.api, alice, rooms["Space"]) == ["Space", "Bee", "Ay", "Sub", "Cee", "Dee"]
    suggested = await hierarchy_names(a.api, alice, rooms["Space"], suggested_only=True, limit=1)
    assert suggested == ["Space", "Bee", "Sub", "Cee"]


async def test_an_invitee_browses_a_version_12_space_before_joining(pair):
    """A v12 room ID names no server: a's only way to b's private space is the invite's sender."""
    a, b = pair
    bob = (await b.user("bob"))["access_token"]
    alice = await a.user("alice")
    space = await b.api.create_room(bob, name="Space", preset="private_chat", room_version="12",
                                    creation_content={"type": "m.space"})
    kid = await new_room(b.api, bob, "Kid")
    await link_child(b.api, bob, space, kid, [b.name])
    status, body = await b.api.post(f"/rooms/{space}/invite", {"user_id": alice["user_id"]}, token=bob)
    assert status == 200, body
    assert await hierarchy_names(a.api, alice["access_token"], space) == ["Space", "Kid"]


async def test_b_answers_for_its_rooms_and_only_those_a_may_see(pair):
    a, b = pair
    rooms = await _space_on_b(a, b)
    path = f"/_matrix/federation/v1/hierarchy/{path_segment(rooms['Space'])}"
    status, body = await signed(a, b, "GET", path)
    assert status == 200, body
    assert body["room"]["room_id"] == rooms["Space"] and len(body["room"]["children_state"]) == 5
    assert [child["name"] for child in body["children"]] == ["Bee", "Sub"]
    assert [event["state_key"] for event in body["children"][1]["children_state"]] == [rooms["Cee"], rooms["Dee"]]
    assert body["inaccessible_children"] == [rooms["Secret"]]
    status, body = await signed(a, b, "GET", path, query={"suggested_only": "true"})
    assert status == 200 and [e["state_key"] for e in body["room"]["children_state"]] == [rooms["Bee"], rooms["Sub"]]
    assert [child["name"] for child in body["children"]] == ["Bee", "Sub"] and body["inaccessible_children"] == []
    status, body = await signed(a, b, "GET", path, query={"suggested_only": "maybe"})
    assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM")
    for room_id in (rooms["Ay"], rooms["Secret"], "!unknown:" + b.name):
        status, body = await signed(a, b, "GET", f"/_matrix/federation/v1/hierarchy/{path_segment(room_id)}")
        assert (status, body.get("errcode")) == (404, "M_NOT_FOUND"), room_id
