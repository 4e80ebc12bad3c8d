"""POST /search over real HTTP on both engines: ranking, paging, every filter, context,
groups, state, words in any language, phrases and prefixes, and bad requests."""

from __future__ import annotations

import itertools
from urllib.parse import quote

import pytest

from tests.conftest import Api

_txn = itertools.count()


async def search(api: Api, token: str, term: str, *, next_batch: str | None = None, expect: int = 200,
                 **criteria) -> dict:
    """The room_events answer of a search (or the error body when `expect` is not 200)."""
    params = {"next_batch": next_batch} if next_batch is not None else None
    status, body = await api.post("/search", {"search_categories": {"room_events": {"search_term": term, **criteria}}},
                                  token=token, params=params)
    assert status == expect, body
    return body["search_categories"]["room_events"] if expect == 200 else body


async def send(api: Api, token: str, room_id: str, content: dict, event_type: str = "m.room.message") -> str:
    status, body = await api.put(f"/rooms/{room_id}/send/{event_type}/s{next(_txn)}", content, token=token)
    assert status == 200, body
    return body["event_id"]


async def alice_and_bob_in(api: Api, *rooms: dict) -> tuple[dict, dict, list[str]]:
    """alice and bob registered, and public rooms made by alice with these options, joined by bob."""
    alice, bob = await api.register_all("alice", "bob")
    room_ids = [await api.create_room(alice["access_token"], preset="public_chat", **options) for options in rooms]
    for room_id in room_ids:
        assert (await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"]))[0] == 200
    return alice, bob, room_ids


def ids(answer: dict) -> list[str]:
    return [result["result"]["event_id"] for result in answer["results"]]


async def page_through(api: Api, token: str, term: str, **criteria) -> list[dict]:
    """Every page of a search, following next_batch to the end."""
    pages = [await search(api, token, term, **criteria)]
    while "next_batch" in pages[-1]:
        pages.append(await search(api, token, term, next_batch=pages[-1]["next_batch"], **criteria))
        assert len(pages) < 50
    return pages


async def test_rank_puts_the_closest_first_and_pages_neither_repeat_nor_skip(api):
    alice = (await api.register("alice"))["access_token"]
    room = await api.create_room(alice)
    best = await api.send_text(alice, room, "needle needle needle")
    worst = await api.send_text(alice, room, "a long message about many different things and one needle in it")
    others = [await api.send_text(alice, room, f"needle number {i}") for i in range(20)]
    await api.send_text(alice, room, "nothing to find here")
    expected = {best, worst, *others}

    first = await search(api, alice, "needle", filter={"limit": 7})
    assert first["count"] == 22 and len(first["results"]) == 7 and "next_batch" in first
    assert ids(first)[0] == best
    newer = await api.send_text(alice, room, "needle sent while paging")  # not part of this search's pages
    pages = [first]
    while "next_batch" in pages[-1]:
        pages.append(await search(api, alice, "needle", filter={"limit": 7}, next_batch=pages[-1]["next_batch"]))
    found = [event_id for page in pages for event_id in ids(page)]
    assert len(found) == len(set(found)) == 22 and set(found) == expected
    assert found[-1] == worst
    ranks = [result["rank"] for page in pages for result in page["results"]]
    assert ranks == sorted(ranks, reverse=True)
    assert all(page["count"] == 22 for page in pages)
    assert newer in ids(await search(api, alice, "needle", filter={"limit": 30}))


async def test_recent_order_is_newest_first_across_pages(api):
    alice = (await api.register("alice"))["access_token"]
    rooms = [await api.create_room(alice) for _ in range(2)]
    sent = [await api.send_text(alice, rooms[i % 2], f"ticket {i} is open") for i in range(12)]
    pages = await page_through(api, alice, "ticket", order_by="recent", filter={"limit": 5})
    assert [len(page["results"]) for page in pages] == [5, 5, 2]
    assert [event_id for page in pages for event_id in ids(page)] == sent[::-1]
    rank_page = (await search(api, alice, "ticket", filter={"limit": 5}))["next_batch"]
    answer = await search(api, alice, "ticket", order_by="recent", next_batch=rank_page, expect=400)
    assert answer["errcode"] == "M_INVALID_PARAM"


async def test_every_filter_and_key(api):
    alice_reg, bob_reg, (room_a, room_b) = await alice_and_bob_in(api, {"topic": "apple topics"},
                                                                 {"name": "apple orchard"})
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    a_alice = await api.send_text(alice, room_a, "apple from alice")
    a_bob = await api.send_text(bob, room_a, "apple from bob")
    b_alice = await api.send_text(alice, room_b, "apple pie")
    image = await send(api, bob, room_b, {"msgtype": "m.image", "body": "apple.png", "url": "mxc://localhost/apple"})
    topic = (await api.get(f"/rooms/{room_a}/state/m.room.topic?format=event", token=alice))[1]["event_id"]
    name = (await api.get(f"/rooms/{room_b}/state/m.room.name?format=event", token=alice))[1]["event_id"]
    everything = {a_alice, a_bob, b_alice, image, topic, name}

    async def found(**criteria) -> set[str]:
        return set(ids(await search(api, alice, "apple", **criteria)))

    assert await found() == everything
    assert await found(filter={"rooms": [room_a]}) == {a_alice, a_bob, topic}
    assert await found(filter={"not_rooms": [room_a]}) == {b_alice, image, name}
    assert await found(filter={"rooms": [room_a, room_b], "not_rooms": [room_b]}) == {a_alice, a_bob, topic}
    assert await found(filter={"senders": [bob_reg["user_id"]]}) == {a_bob, image}
    assert await found(filter={"not_senders": [bob_reg["user_id"]]}) == {a_alice, b_alice, topic, name}
    assert await found(filter={"senders": []}) == set()
    assert await found(filter={"types": ["m.room.message"]}) == {a_alice, a_bob, b_alice, image}
    assert await found(filter={"not_types": ["m.room.message"]}) == {topic, name}
    assert await found(filter={"types": ["m.room.*"], "not_types": ["m.room.topic"]}) == everything - {topic}
    assert await found(filter={"contains_url": True}) == {image}
    assert await found(filter={"contains_url": False}) == everything - {image}
    assert await found(keys=["content.name"]) == {name}
    assert await found(keys=["content.topic"]) == {topic}
    assert await found(keys=["content.body", "content.name"]) == everything - {topic}
    assert await found(keys=[]) == set()
    limited = await search(api, alice, "apple", filter={"limit": 2})
    assert len(limited["results"]) == 2 and limited["count"] == 6 and "next_batch" in limited
    counted = await search(api, alice, "apple", filter={"limit": 0})
    assert counted["results"] == [] and counted["count"] == 6 and "next_batch" not in counted


async def test_context_with_historic_profiles_and_usable_tokens(api):
    alice_reg, bob_reg = await api.register_all("alice", "bob")
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    room = await api.create_room(alice, preset="public_chat")
    await api.post(f"/rooms/{room}/join", {}, token=bob)
    await api.put(f"/profile/{quote(bob_reg['user_id'])}/displayname", {"displayname": "Bobby"}, token=bob)
    first = await api.send_text(alice, room, "one")
    second = await api.send_text(bob, room, "two")
    target = await api.send_text(alice, room, "the target")
    fourth = await api.send_text(bob, room, "four")
    fifth = await api.send_text(alice, room, "five")
    await api.put(f"/profile/{quote(bob_reg['user_id'])}/displayname", {"displayname": "Robert"}, token=bob)

    answer = await search(api, alice, "target", event_context={"before_limit": 2, "after_limit": 1,
                                                                "include_profile": True})
    context = answer["results"][0]["context"]
    assert [e["event_id"] for e in context["events_before"]] == [second, first]
    assert [e["event_id"] for e in context["events_after"]] == [fourth]
    assert context["profile_info"] == {alice_reg["user_id"]: {"displayname": "alice"},
                                       bob_reg["user_id"]: {"displayname": "Bobby"}}
    status, later = await api.get(f"/rooms/{room}/messages", params={"from": context["end"], "dir": "f"}, token=alice)
    assert status == 200 and later["chunk"][0]["event_id"] == fifth
    status, earlier = await api.get(f"/rooms/{room}/messages", params={"from": context["start"], "dir": "b",
                                                                        "limit": "1"}, token=alice)
    assert status == 200 and earlier["chunk"][0]["content"]["membership"] == "join"  # bob's name change, before `first`
    plain = await search(api, alice, "target")
    assert "context" not in plain["results"][0]
    defaults = (await search(api, alice, "target", event_context={}))["results"][0]["context"]
    assert "profile_info" not in defaults
    assert [e["event_id"] for e in defaults["events_after"]][:2] == [fourth, fifth]  # then the rename to Robert
    assert target == plain["results"][0]["result"]["event_id"]


async def test_groups_by_room_and_sender_page_within_their_group(api):
    alice_reg, bob_reg, rooms = await alice_and_bob_in(api, {}, {})
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    by_room: dict[str, list[str]] = {room: [] for room in rooms}
    for i in range(9):
        room = rooms[i % 2]
        by_room[room].append(await api.send_text(alice if i % 3 else bob, room, f"report {i} is ready"))
    groupings = {"group_by": [{"key": "room_id"}, {"key": "sender"}]}
    answer = await search(api, alice, "report", order_by="recent", filter={"limit": 4}, groupings=groupings)
    page_ids = ids(answer)
    room_groups, sender_groups = answer["groups"]["room_id"], answer["groups"]["sender"]
    assert sorted(room_groups) == sorted(rooms)
    assert sorted(group["order"] for group in room_groups.values()) == [1, 2]
    assert sorted(sum((group["results"] for group in room_groups.values()), [])) == sorted(page_ids)
    assert sorted(sum((group["results"] for group in sender_groups.values()), [])) == sorted(page_ids)
    assert set(sender_groups) <= {alice_reg["user_id"], bob_reg["user_id"]}
    for room, group in room_groups.items():
        found = list(group["results"])
        token = group.get("next_batch")
        while token:
            more = await search(api, alice, "report", order_by="recent", filter={"limit": 4},
                                groupings=groupings, next_batch=token)
            assert set(more["groups"]["room_id"]) <= {room}
            found += ids(more)
            token = more.get("next_batch")
        assert found == by_room[room][::-1]


async def test_include_state_gives_current_state_or_the_state_when_left(api):
    alice_reg, bob_reg, (stay, gone) = await alice_and_bob_in(api, {"name": "Stay here"}, {"name": "Left behind"})
    alice, bob = alice_reg["access_token"], bob_reg["access_token"]
    for room in (stay, gone):
        await api.send_text(alice, room, "memo for bob")
    await api.post(f"/rooms/{gone}/leave", {}, token=bob)
    await api.put(f"/rooms/{gone}/state/m.room.name", {"name": "Renamed after bob left"}, token=alice)
    answer = await search(api, bob, "memo", include_state=True)
    assert len(answer["results"]) == 2

    def state(room_id: str) -> dict:
        return {(e["type"], e["state_key"]): e["content"] for e in answer["state"][room_id]}

    assert state(stay)[("m.room.name", "")] == {"name": "Stay here"}
    assert state(gone)[("m.room.name", "")] == {"name": "Left behind"}
    assert state(gone)[("m.room.member", bob_reg["user_id"])]["membership"] == "leave"
    assert "state" not in await search(api, bob, "memo")


@pytest.mark.parametrize("written, searched", [
    ("Un café crème, s'il vous plaît", "CAFE creme"),
    ("ΣΟΦΙΑ και γνώση", "σοφια"),
    ("Привет из Москвы", "МОСКВЫ"),
    ("Die Straße ist lang", "strasse"),
    ("हिन्दी भाषा सीखें", "हिन्दी"),
    ("会议在三点开始", "会议在三点开始"),
    ("Ünïcödé everywhere", "unicode"),
])
async def test_words_in_any_language_match_without_case_or_diacritics(api, written, searched):
    alice = (await api.register("alice"))["access_token"]
    room = await api.create_room(alice)
    event_id = await api.send_text(alice, room, written)
    await api.send_text(alice, room, "something else entirely")
    answer = await search(api, alice, searched)
    assert ids(answer) == [event_id]
    highlighted = {word.casefold() for word in answer["highlights"]}
    assert highlighted & {word.casefold() for word in written.replace(",", " ").split()}


async def test_phrases_and_prefixes(api):
    alice = (await api.register("alice"))["access_token"]
    room = await api.create_room(alice)
    fox = await api.send_text(alice, room, "The quick brown fox")
    brown = await api.send_text(alice, room, "brown, then quick")
    quest = await api.send_text(alice, room, "a questionable e-mail")
    assert set(ids(await search(api, alice, '"quick brown"'))) == {fox}
    assert set(ids(await search(api, alice, "quick brown"))) == {fox, brown}
    assert set(ids(await search(api, alice, "qu*"))) == {fox, brown, quest}
    assert set(ids(await search(api, alice, "quick fox"))) == {fox}
    assert set(ids(await search(api, alice, '"brown fo"*'))) == {fox}
    assert set(ids(await search(api, alice, "e-mail"))) == {quest}
    assert set(ids(await search(api, alice, "mail e"))) == {quest}
    answer = await search(api, alice, "quest*")
    assert ids(answer) == [quest] and "questionable" in answer["highlights"]
    nothing = await search(api, alice, '  ?! "" * ')
    assert nothing["results"] == [] and nothing["count"] == 0


async def test_bad_requests_get_matrix_errors(api, engine):
    alice = (await api.register("alice"))["access_token"]
    room = await api.create_room(alice)
    await api.send_text(alice, room, "byte hello")
    # A NUL is refused in every request, on both engines (docs/architecture.md, web/).
    assert (await search(api, alice, "hello\u0000", expect=400))["errcode"] == "M_INVALID_PARAM"
    long_word = "x" * 3000  # longer than PostgreSQL indexes a word: left out there, found by SQLite
    await api.send_text(alice, room, f"{long_word} hello")
    assert (await search(api, alice, long_word))["count"] == (1 if engine == "sqlite" else 0)
    assert (await search(api, alice, "hello"))["count"] == 2
    cases = [
        ({}, "M_MISSING_PARAM"),
        ({"search_categories": []}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {}}}, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {"search_term": 5}}}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "keys": ["content.colour"]}}}, "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "x", "keys": "content.body"}}}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "keys": [1]}}}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "order_by": "size"}}}, "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "x", "filter": "all"}}}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "filter": {"limit": -1}}}}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "event_context": {"before_limit": -1}}}},
         "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "x", "event_context": {"after_limit": "5"}}}},
         "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "groupings": {"group_by": [{"key": "type"}]}}}},
         "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "x", "groupings": {"group_by": ["room_id"]}}}},
         "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "include_state": "yes"}}}, "M_BAD_JSON"),
    ]
    for body, errcode in cases:
        status, answer = await api.post("/search", body, token=alice)
        assert (status, answer.get("errcode")) == (400, errcode), body
    status, answer = await api.post("/search", {"search_categories": {"room_events": {"search_term": "x"}}},
                                    token=alice, params={"next_batch": "not-a-token"})
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")
    status, answer = await api.post("/search", {"search_categories": {"room_events": {"search_term": "x"}}})
    assert (status, answer["errcode"]) == (401, "M_MISSING_TOKEN")
    status, answer = await api.post("/search", data=b"not json", token=alice)
    assert (status, answer["errcode"]) == (400, "M_NOT_JSON")
    assert await api.post("/search", {"search_categories": {"other": {}}}, token=alice) == (200, {"search_categories": {}})
