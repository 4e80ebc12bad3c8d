"""ranvier and Synapse share rooms: users of each join the other's room and chat both ways,
see each other's typing and receipts, download each other's media, a room of Synapse
with history is joined and backfilled, and each browses a space the other hosts."""

from __future__ import annotations

import io
import uuid

import aiohttp
import pytest
from PIL import Image

from federation_support import bodies_paging_back, eventually, hierarchy_names, link_child, new_room, room_bodies
from synapse_support import start_synapse
from tests.conftest import Api

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def synapse(tmp_path_factory):
    server = start_synapse(tmp_path_factory.mktemp("synapse"))
    yield server
    server.stop()


@pytest.fixture
async def synapse_api(synapse):
    async with aiohttp.ClientSession() as session:
        yield Api(session, synapse.client_url)


@pytest.fixture
async def ranvier(start_federated):
    return await start_federated("ranvier")


def unique(name: str) -> str:
    return f"{name}{uuid.uuid4().hex[:8]}"


async def sync_until(api, token, check):
    since = None

    async def synced():
        nonlocal since
        body = await api.sync(token, timeout=500, **({"since": since} if since else {}))
        since = body["next_batch"]
        return check(body)

    return await eventually(synced, timeout=30)


def ephemeral(body, room_id, event_type):
    room = body["rooms"]["join"].get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


async def chat_and_signal(room_id, first, second):
    """`first` and `second` are (api, user) pairs in the room: messages, typing and read
    receipts cross both ways."""
    (api_1, user_1), (api_2, user_2) = first, second
    await api_1.send_text(user_1["access_token"], room_id, "one to two")
    await api_2.send_text(user_2["access_token"], room_id, "two to one")

    async def both_see_both():
        seen_1 = await room_bodies(api_1, user_1["access_token"], room_id)
        seen_2 = await room_bodies(api_2, user_2["access_token"], room_id)
        return "two to one" in seen_1 and "one to two" in seen_2

    await eventually(both_see_both, timeout=30)
    for (api_t, typist), (api_w, watcher) in ((first, second), (second, first)):
        status, body = await api_t.put(f"/rooms/{room_id}/typing/{typist['user_id']}",
                                       {"typing": True, "timeout": 20000}, token=typist["access_token"])
        assert status == 200, body
        await sync_until(api_w, watcher["access_token"], lambda sync, t=typist: [
            e for e in ephemeral(sync, room_id, "m.typing") if t["user_id"] in e["content"]["user_ids"]])
    for (api_r, reader), (api_w, watcher), text in ((first, second, "two to one"), (second, first, "one to two")):
        status, page = await api_r.get(f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "20"},
                                       token=reader["access_token"])
        event_id = next(e["event_id"] for e in page["chunk"] if e.get("content", {}).get("body") == text)
        status, body = await api_r.post(f"/rooms/{room_id}/receipt/m.read/{event_id}", {},
                                        token=reader["access_token"])
        assert status == 200, body
        await sync_until(api_w, watcher["access_token"], lambda sync, r=reader, e=event_id: [
            x for x in ephemeral(sync, room_id, "m.receipt")
            if r["user_id"] in x["content"].get(e, {}).get("m.read", {})])


async def test_a_ranvier_user_joins_a_synapse_room(ranvier, synapse, synapse_api):
    sam = await synapse_api.register(unique("sam"))
    room_id = await synapse_api.create_room(sam["access_token"], preset="public_chat")
    alice = await ranvier.user("alice")
    status, body = await ranvier.api.post(f"/join/{room_id}", {}, token=alice["access_token"],
                                          params={"via": synapse.name})
    assert status == 200, (body, synapse.log_tail())
    await chat_and_signal(room_id, (ranvier.api, alice), (synapse_api, sam))


async def test_a_synapse_user_joins_a_ranvier_room(ranvier, synapse, synapse_api):
    alice = await ranvier.user("alice")
    room_id = await ranvier.api.create_room(alice["access_token"], preset="public_chat")
    sam = await synapse_api.register(unique("sam"))
    status, body = await synapse_api.post(f"/join/{room_id}", {}, token=sam["access_token"],
                                          params={"server_name": ranvier.name})
    assert status == 200, (body, synapse.log_tail())
    await chat_and_signal(room_id, (ranvier.api, alice), (synapse_api, sam))


def png() -> bytes:
    output = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(output, "PNG")
    return output.getvalue()


async def upload(api: Api, token: str, data: bytes) -> str:
    status, body = await api.request("POST", "/_matrix/media/v3/upload", data=data, token=token,
                                     headers={"Content-Type": "image/png"}, params={"filename": "red.png"})
    assert status == 200, body
    return body["content_uri"]


async def download(api: Api, token: str, mxc: str, thumbnail: bool = False) -> tuple[int, bytes]:
    server, media_id = mxc[len("mxc://"):].split("/", 1)
    kind = "thumbnail" if thumbnail else "download"
    params = {"width": "32", "height": "32", "method": "scale"} if thumbnail else None
    async with api.session.get(f"{api.base_url}/_matrix/client/v1/media/{kind}/{server}/{media_id}",
                               headers={"Authorization": f"Bearer {token}"}, params=params) as answer:
        return answer.status, await answer.read()


async def test_each_downloads_the_others_media(ranvier, synapse_api):
    alice = await ranvier.user("alice")
    sam = await synapse_api.register(unique("sam"))
    image = png()
    on_ranvier = await upload(ranvier.api, alice["access_token"], image)
    on_synapse = await upload(synapse_api, sam["access_token"], image)
    status, content = await download(synapse_api, sam["access_token"], on_ranvier)
    assert (status, content) == (200, image)
    status, content = await download(ranvier.api, alice["access_token"], on_synapse)
    assert (status, content) == (200, image)
    for api, token, mxc in ((synapse_api, sam["access_token"], on_ranvier),
                            (ranvier.api, alice["access_token"], on_synapse)):
        status, thumbnail = await download(api, token, mxc, thumbnail=True)
        assert status == 200
        assert Image.open(io.BytesIO(thumbnail)).size[0] <= 64


async def test_a_synapse_room_with_history_is_joined_and_backfilled(ranvier, synapse, synapse_api):
    sam = await synapse_api.register(unique("sam"))
    room_id = await synapse_api.create_room(sam["access_token"], preset="public_chat")
    sent = [f"history {n}" for n in range(50)]
    for body in sent:
        await synapse_api.send_text(sam["access_token"], room_id, body)
    alice = await ranvier.user("alice")
    status, body = await ranvier.api.post(f"/join/{room_id}", {}, token=alice["access_token"],
                                          params={"via": synapse.name})
    assert status == 200, body
    assert await bodies_paging_back(ranvier.api, alice["access_token"], room_id, page_size=20, pages=20) == sent


async def _space(api: Api, token: str, server_name: str) -> str:
    """Space (public) -> One (public, suggested), Private (invite-only), Two (public); its ID."""
    space = await new_room(api, token, "Space", space=True)
    for order, (name, preset, suggested) in enumerate((("One", "public_chat", True),
                                                       ("Private", "private_chat", False),
                                                       ("Two", "public_chat", False))):
        room_id = await new_room(api, token, name, preset=preset)
        await link_child(api, token, space, room_id, [server_name], order=str(order), suggested=suggested)
    return space


async def test_a_ranvier_user_browses_a_synapse_space(ranvier, synapse, synapse_api):
    """Synapse's room IDs name no server, so the space is joined first (its children are
    rooms ranvier is not in, asked of Synapse)."""
    sam = await synapse_api.register(unique("sam"))
    space = await _space(synapse_api, sam["access_token"], synapse.name)
    alice = (await ranvier.user("alice"))["access_token"]
    status, body = await ranvier.api.post(f"/join/{space}", {}, token=alice, params={"via": synapse.name})
    assert status == 200, body
    assert await hierarchy_names(ranvier.api, alice, space) == ["Space", "One", "Two"], synapse.log_tail()
    assert await hierarchy_names(ranvier.api, alice, space, suggested_only=True, limit=1) == ["Space", "One"]


async def test_a_synapse_user_browses_a_ranvier_space(ranvier, synapse, synapse_api):
    alice = (await ranvier.user("alice"))["access_token"]
    space = await _space(ranvier.api, alice, ranvier.name)
    sam = await synapse_api.register(unique("sam"))
    status, body = await synapse_api.post(f"/join/{space}", {}, token=sam["access_token"],
                                          params={"server_name": ranvier.name})
    assert status == 200, (body, synapse.log_tail())
    token = sam["access_token"]
    assert await hierarchy_names(synapse_api, token, space) == ["Space", "One", "Two"], synapse.log_tail()
    assert await hierarchy_names(synapse_api, token, space, suggested_only=True) == ["Space", "One"]
