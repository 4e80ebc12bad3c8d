"""Relations over real HTTP on both engines: /relations, /threads and bundled aggregations
(edits, threads, references), with history visibility and redactions."""

from __future__ import annotations

import itertools
from urllib.parse import quote

import nio
from nio.api import RelationshipType

from tests.conftest import Api

_txn = itertools.count()
V1 = "/_matrix/client/v1"


class User:
    def __init__(self, api: Api, registered: dict) -> None:
        self.api = api
        self.user_id = registered["user_id"]
        self.token = registered["access_token"]

    async def send(self, room_id: str, content: dict, event_type: str = "m.room.message") -> str:
        status, body = await self.api.put(f"/rooms/{room_id}/send/{event_type}/t{next(_txn)}", content,
                                          token=self.token)
        assert status == 200, body
        return body["event_id"]

    async def send_status(self, room_id: str, content: dict) -> tuple[int, dict]:
        return await self.api.put(f"/rooms/{room_id}/send/m.room.message/t{next(_txn)}", content, token=self.token)

    async def redact(self, room_id: str, event_id: str) -> None:
        status, body = await self.api.put(f"/rooms/{room_id}/redact/{quote(event_id)}/t{next(_txn)}", {},
                                          token=self.token)
        assert status == 200, body

    async def event(self, room_id: str, event_id: str) -> dict:
        status, body = await self.api.get(f"/rooms/{room_id}/event/{quote(event_id)}", token=self.token)
        assert status == 200, body
        return body

    async def relations(self, room_id: str, event_id: str, *path: str, **params) -> tuple[int, dict]:
        suffix = "".join(f"/{quote(part)}" for part in path)
        return await self.api.get(f"{V1}/rooms/{room_id}/relations/{quote(event_id)}{suffix}", token=self.token,
                                  params={k: str(v) for k, v in params.items()})

    async def threads(self, room_id: str, **params) -> tuple[int, dict]:
        return await self.api.get(f"{V1}/rooms/{room_id}/threads", token=self.token,
                                  params={k: str(v) for k, v in params.items()})


async def room_with(api: Api, *names: str, **create) -> tuple[str, list[User]]:
    """A room created by the first user and joined by the others."""
    users = [User(api, await api.register(name)) for name in names]
    status, body = await api.post("/createRoom", {"preset": "public_chat", **create}, token=users[0].token)
    assert status == 200, body
    room_id = body["room_id"]
    for user in users[1:]:
        status, body = await api.post(f"/join/{quote(room_id)}", {}, token=user.token)
        assert status == 200, body
    return room_id, users


def text(body: str) -> dict:
    return {"msgtype": "m.text", "body": body}


def relating(rel_type: str, event_id: str, body: str, **extra) -> dict:
    return {**text(body), "m.relates_to": {"rel_type": rel_type, "event_id": event_id}, **extra}


def edit(event_id: str, body: str) -> dict:
    return relating("m.replace", event_id, f"* {body}", **{"m.new_content": text(body)})


def ids(chunk: list[dict]) -> list[str]:
    return [event["event_id"] for event in chunk]


async def test_bundled_aggregations_of_edits_threads_and_references(api):
    room_id, (alice, bob) = await room_with(api, "alice", "bob")
    root = await alice.send(room_id, text("hello"))
    first_edit = await alice.send(room_id, edit(root, "hello there"))
    latest_edit = await alice.send(room_id, edit(root, "hello everyone"))
    await bob.send(room_id, edit(root, "bob was here"))  # another sender: not a valid edit
    await alice.send(room_id, edit(first_edit, "edit of an edit"))  # not valid either
    await alice.send(room_id, relating("m.replace", root, "no new content"))  # no m.new_content
    reply_one = await bob.send(room_id, relating("m.thread", root, "in a thread"))
    reply_two = await bob.send(room_id, relating("m.thread", root, "again"))
    reference = await bob.send(room_id, relating("m.reference", root, "see above"))
    await bob.send(room_id, {**text("a rich reply"), "m.relates_to": {"m.in_reply_to": {"event_id": root}}})
    reply_edit = await bob.send(room_id, edit(reply_two, "again, edited"))

    relations = (await alice.event(room_id, root))["unsigned"]["m.relations"]
    assert set(relations) == {"m.replace", "m.thread", "m.reference"}
    assert relations["m.replace"]["event_id"] == latest_edit
    assert relations["m.replace"]["content"]["m.new_content"] == text("hello everyone")
    assert relations["m.replace"]["sender"] == alice.user_id
    thread = relations["m.thread"]
    assert thread["count"] == 2 and thread["current_user_participated"] is True
    assert thread["latest_event"]["event_id"] == reply_two
    # the latest thread event carries its own aggregations
    assert thread["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == reply_edit
    assert relations["m.reference"] == {"chunk": [{"event_id": reference}]}

    carol = User(api, await api.register("carol"))
    await api.post(f"/join/{quote(room_id)}", {}, token=carol.token)
    assert (await carol.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]["current_user_participated"] \
        is False
    # an edit of someone else's event, or an edit of an edit, is never aggregated
    assert "m.relations" not in (await alice.event(room_id, first_edit))["unsigned"]

    status, body = await alice.relations(room_id, root)
    assert status == 200, body
    assert reply_one in ids(body["chunk"]) and reference in ids(body["chunk"])
    assert len(body["chunk"]) == 7  # four edits of root, two thread replies, one reference; no rich reply
    status, body = await alice.relations(room_id, root, "m.thread")
    assert ids(body["chunk"]) == [reply_two, reply_one]
    assert "recursion_depth" not in body and "next_batch" not in body
    status, body = await alice.relations(room_id, root, "m.reference", "m.room.message")
    assert ids(body["chunk"]) == [reference]
    status, body = await alice.relations(room_id, root, "m.reference", "m.sticker")
    assert (status, body["chunk"]) == (200, [])

    # /messages and /context bundle too
    status, messages = await alice.api.get(f"/rooms/{room_id}/messages", token=alice.token,
                                           params={"dir": "b", "limit": "50"})
    assert status == 200, messages
    served = {event["event_id"]: event for event in messages["chunk"]}
    assert served[root]["unsigned"]["m.relations"]["m.replace"]["event_id"] == latest_edit


async def test_nio_reads_relations_and_threads(homeserver, tmp_path):
    config = nio.AsyncClientConfig(encryption_enabled=False)
    alice = nio.AsyncClient(homeserver.base_url, "@alice:localhost", store_path=str(tmp_path), config=config)
    try:
        await alice.register("alice", "correct horse")
        created = await alice.room_create(name="threads")
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        root = (await alice.room_send(room_id, "m.room.message", text("root"))).event_id
        replies = []
        for number in range(3):
            sent = await alice.room_send(room_id, "m.room.message", relating("m.thread", root, f"reply {number}"))
            assert isinstance(sent, nio.RoomSendResponse), sent
            replies.append(sent.event_id)
        other_root = (await alice.room_send(room_id, "m.room.message", text("other"))).event_id
        await alice.room_send(room_id, "m.room.message", relating("m.thread", other_root, "newest"))

        related = [event async for event in alice.room_get_event_relations(
            room_id, root, RelationshipType.thread, limit=2)]
        assert [event.event_id for event in related] == list(reversed(replies))
        assert related[0].body == "reply 2"

        roots = [event async for event in alice.room_get_threads(room_id, limit=1)]
        assert [event.event_id for event in roots] == [other_root, root]
        summary = roots[1].source["unsigned"]["m.relations"]["m.thread"]
        assert summary["count"] == 3 and summary["latest_event"]["event_id"] == replies[-1]
    finally:
        await alice.close()


async def test_thread_list_order_participation_and_paging(api):
    room_id, (alice, bob) = await room_with(api, "alice", "bob")
    first = await alice.send(room_id, text("first"))
    second = await alice.send(room_id, text("second"))
    third = await bob.send(room_id, text("third"))
    await alice.send(room_id, relating("m.thread", first, "a"))
    await alice.send(room_id, relating("m.thread", third, "b"))
    await alice.send(room_id, relating("m.thread", second, "c"))
    await bob.send(room_id, relating("m.thread", first, "d"))  # `first` now has the latest reply

    status, body = await alice.threads(room_id)
    assert status == 200, body
    assert ids(body["chunk"]) == [first, second, third] and "next_batch" not in body
    assert body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 2

    # bob sent a reply in `first` and the root of `third`
    status, body = await bob.threads(room_id, include="participated")
    assert ids(body["chunk"]) == [first, third]

    status, page = await alice.threads(room_id, limit=2)
    assert ids(page["chunk"]) == [first, second] and page["next_batch"]
    status, rest = await alice.threads(room_id, limit=2, **{"from": page["next_batch"]})
    assert ids(rest["chunk"]) == [third] and "next_batch" not in rest

    assert (await alice.threads(room_id, include="some"))[0] == 400
    status, body = await alice.threads(room_id, **{"from": "nonsense"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await User(api, await api.register("outsider")).threads(room_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_thread_cannot_start_from_a_relation(api):
    room_id, (alice,) = await room_with(api, "alice")
    root = await alice.send(room_id, text("root"))
    reply = await alice.send(room_id, relating("m.thread", root, "reply"))
    status, body = await alice.send_status(room_id, relating("m.thread", reply, "nested"))
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    edited = await alice.send(room_id, edit(root, "edited"))
    status, body = await alice.send_status(room_id, relating("m.thread", edited, "off an edit"))
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    # a rich reply has no rel_type, so it may start a thread
    rich_reply = await alice.send(room_id, {**text("re"), "m.relates_to": {"m.in_reply_to": {"event_id": root}}})
    await alice.send(room_id, relating("m.thread", rich_reply, "fine"))


async def test_relations_pagination_with_dir_from_to_and_limit(api):
    room_id, (alice,) = await room_with(api, "alice")
    root = await alice.send(room_id, text("root"))
    refs = [await alice.send(room_id, relating("m.reference", root, f"ref {n}")) for n in range(5)]

    status, page1 = await alice.relations(room_id, root, limit=2)
    assert status == 200 and ids(page1["chunk"]) == [refs[4], refs[3]] and "prev_batch" not in page1
    status, page2 = await alice.relations(room_id, root, limit=2, **{"from": page1["next_batch"]})
    assert ids(page2["chunk"]) == [refs[2], refs[1]] and page2["prev_batch"] == page1["next_batch"]
    status, page3 = await alice.relations(room_id, root, limit=2, **{"from": page2["next_batch"]})
    assert ids(page3["chunk"]) == [refs[0]] and "next_batch" not in page3
    # from page 1's token to page 2's token is exactly page 2
    status, between = await alice.relations(room_id, root, **{"from": page1["next_batch"], "to": page2["next_batch"]})
    assert ids(between["chunk"]) == [refs[2], refs[1]]

    status, forward = await alice.relations(room_id, root, dir="f", limit=3)
    assert ids(forward["chunk"]) == refs[:3]
    status, forward2 = await alice.relations(room_id, root, dir="f", limit=3, **{"from": forward["next_batch"]})
    assert ids(forward2["chunk"]) == refs[3:] and "next_batch" not in forward2

    for params in ({"dir": "x"}, {"limit": "many"}, {"from": "bogus"}, {"recurse": "perhaps"}):
        status, body = await alice.relations(room_id, root, **params)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), params
    status, body = await alice.relations(room_id, "$unknown")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_recurse_follows_relations_of_relations(api):
    room_id, (alice,) = await room_with(api, "alice")
    root = await alice.send(room_id, text("root"))
    chain = [root]
    for n in range(4):
        chain.append(await alice.send(room_id, relating("m.reference", chain[-1], f"level {n + 1}")))
    thread_reply = await alice.send(room_id, relating("m.thread", root, "thread"))
    reply_edit = await alice.send(room_id, edit(thread_reply, "thread, edited"))

    status, direct = await alice.relations(room_id, root)
    assert ids(direct["chunk"]) == [thread_reply, chain[1]] and "recursion_depth" not in direct
    status, flat = await alice.relations(room_id, root, recurse="false")
    assert ids(flat["chunk"]) == [thread_reply, chain[1]] and flat["recursion_depth"] == 1
    status, deep = await alice.relations(room_id, root, recurse="true")
    assert status == 200 and deep["recursion_depth"] == 3
    assert ids(deep["chunk"]) == [reply_edit, thread_reply, chain[3], chain[2], chain[1]]  # level 4 is too deep
    # a filter applies at every level: the edit relates to the thread only through a thread reply
    status, threaded = await alice.relations(room_id, root, "m.thread", recurse="true")
    assert ids(threaded["chunk"]) == [thread_reply]


async def test_history_visibility_applies_to_relations(api):
    room_id, (alice, bob) = await room_with(api, "alice", "bob")
    root = await alice.send(room_id, text("root"))
    seen = await alice.send(room_id, relating("m.thread", root, "while bob is here"))
    status, body = await api.post(f"/rooms/{quote(room_id)}/leave", {}, token=bob.token)
    assert status == 200, body
    unseen = await alice.send(room_id, relating("m.thread", root, "after bob left"))
    await alice.send(room_id, relating("m.reference", root, "after bob left too"))
    later_root = await alice.send(room_id, text("later"))
    await alice.send(room_id, relating("m.reference", later_root, "about later"))

    status, body = await bob.relations(room_id, root)
    assert status == 200 and ids(body["chunk"]) == [seen]
    summary = (await bob.event(room_id, root))["unsigned"]["m.relations"]
    assert set(summary) == {"m.thread"}
    assert summary["m.thread"]["count"] == 1 and summary["m.thread"]["latest_event"]["event_id"] == seen
    status, body = await bob.threads(room_id)
    assert ids(body["chunk"]) == [root]
    assert body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"] == seen
    status, body = await bob.relations(room_id, later_root)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    stranger = User(api, await api.register("stranger"))
    status, body = await stranger.relations(room_id, root)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await alice.relations(room_id, root)
    assert unseen in ids(body["chunk"]) and len(body["chunk"]) == 3


async def test_redacted_relations_drop_out(api):
    room_id, (alice, bob) = await room_with(api, "alice", "bob")
    root = await alice.send(room_id, text("root"))
    older_edit = await alice.send(room_id, edit(root, "better"))
    newer_edit = await alice.send(room_id, edit(root, "best"))
    reference = await bob.send(room_id, relating("m.reference", root, "ref"))
    reply_one = await bob.send(room_id, relating("m.thread", root, "one"))
    reply_two = await bob.send(room_id, relating("m.thread", root, "two"))
    other_root = await alice.send(room_id, text("other"))
    only_reply = await bob.send(room_id, relating("m.thread", other_root, "only"))

    await alice.redact(room_id, newer_edit)
    await bob.redact(room_id, reference)
    await bob.redact(room_id, reply_two)
    await bob.redact(room_id, only_reply)

    relations = (await alice.event(room_id, root))["unsigned"]["m.relations"]
    assert relations["m.replace"]["event_id"] == older_edit
    assert "m.reference" not in relations
    assert relations["m.thread"]["count"] == 1 and relations["m.thread"]["latest_event"]["event_id"] == reply_one
    status, body = await alice.relations(room_id, root)
    assert ids(body["chunk"]) == [reply_one, older_edit]
    status, body = await alice.threads(room_id)
    assert ids(body["chunk"]) == [root]  # the other thread lost its only reply

    # a redacted original keeps its thread but bundles no edit
    await alice.redact(room_id, root)
    redacted = await alice.event(room_id, root)
    assert redacted["content"] == {}
    assert set(redacted["unsigned"]["m.relations"]) == {"m.thread"}


async def test_aggregations_leave_out_ignored_users(api):
    room_id, (alice, bob, carol) = await room_with(api, "alice", "bob", "carol")
    root = await alice.send(room_id, text("root"))
    alices = await alice.send(room_id, relating("m.thread", root, "from alice"))
    await bob.send(room_id, relating("m.thread", root, "from bob"))
    await bob.send(room_id, relating("m.reference", root, "bob's reference"))
    status, body = await api.put(f"/user/{quote(carol.user_id)}/account_data/m.ignored_user_list",
                                 {"ignored_users": {bob.user_id: {}}}, token=carol.token)
    assert status == 200, body

    relations = (await carol.event(room_id, root))["unsigned"]["m.relations"]
    assert set(relations) == {"m.thread"}
    assert relations["m.thread"]["count"] == 1 and relations["m.thread"]["latest_event"]["event_id"] == alices
    assert (await alice.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]["count"] == 2
