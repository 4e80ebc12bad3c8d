"""A bridge built on mautrix-python's application service framework (what the mautrix
bridges run on) against a real ranvier: registered by its YAML file, it pings itself,
receives its transactions (a user's invite of its bot, the room's messages, typing and
receipts), puppets its ghosts (registered, joined, sending with the other network's
timestamps), and answers the server's questions about unknown ghosts and portal aliases."""

from __future__ import annotations

import pytest
import yaml
from mautrix.appservice import AppService
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import EventType, Membership, MessageType, TextMessageEventContent, UserID

from appservice_support import AS_TOKEN, HS_TOKEN, free_port, registration
from mautrix_support import mautrix_trouble, wait_for  # noqa: F401 (a fixture)


class BridgeStateStore(MemoryStateStore, ASStateStore):
    """mautrix's memory stores, as a bridge without a database uses them."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


@pytest.fixture
async def bridge(make_server, tmp_path, mautrix_trouble):  # noqa: F811 (a fixture)
    """The server with the bridge registered (`receive_ephemeral: true`) and the bridge
    running: (api, appservice, the events it received, ephemeral ones apart)."""
    port = free_port()
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(registration(f"http://127.0.0.1:{port}", receive_ephemeral=True)))
    api = await make_server(app_services={"registration_files": [str(path)]})
    received, ephemeral = [], []

    async def query_user(user_id: UserID):
        await appservice.intent.user(user_id).ensure_registered()
        return {"registered": user_id}

    async def query_alias(alias: str):
        room_id = await appservice.intent.create_room(alias_localpart=alias[1:].split(":")[0], name="portal")
        return {"room_id": room_id}

    appservice = AppService(server=api.base_url, domain="localhost", as_token=AS_TOKEN, hs_token=HS_TOKEN,
                            bot_localpart="bridgebot", id="bridge", query_user=query_user,
                            query_alias=query_alias, state_store=BridgeStateStore(), ephemeral_events=True)

    @appservice.matrix_event_handler
    async def record(event) -> None:
        (ephemeral if event.type.is_ephemeral else received).append(event)
        if (event.type == EventType.ROOM_MEMBER and event.state_key == appservice.bot_mxid
                and event.content.membership == Membership.INVITE):
            await appservice.intent.join_room(event.room_id)

    await appservice.start(host="127.0.0.1", port=port)
    try:
        yield api, appservice, received, ephemeral
    finally:
        await appservice.stop()


async def test_a_mautrix_bridge_lives_on_ranvier(bridge):
    api, appservice, received, ephemeral = bridge
    assert isinstance(await appservice.ping_self("startup"), int)
    bot = appservice.intent
    await bot.ensure_registered()  # the sender exists already: mautrix takes M_USER_IN_USE as done
    assert (await bot.whoami()).user_id == "@bridgebot:localhost"

    # A user invites the bridge's bot: the invite comes in a transaction, the bot joins.
    (alice,) = await api.register_all("alice")
    token = alice["access_token"]
    room_id = await api.create_room(token, invite=["@bridgebot:localhost"])
    await wait_for(lambda: any(
        e.type == EventType.ROOM_MEMBER and e.state_key == bot.mxid and e.content.membership == Membership.JOIN
        for e in received), 15, "the bot joined")
    await api.send_text(token, room_id, "hello bridge")
    await wait_for(lambda: any(
        e.type == EventType.ROOM_MESSAGE and e.content.body == "hello bridge" and e.sender == alice["user_id"]
        for e in received), 15, "the bridge got her message")

    # A ghost of the other network joins (registered and invited by the bot as needed) and
    # speaks with the other network's timestamp.
    ghost = bot.user(UserID("@_bridge_bob:localhost"))
    await ghost.ensure_joined(room_id)
    sent = await ghost.send_message(room_id, TextMessageEventContent(msgtype=MessageType.TEXT, body="from afar"),
                                    timestamp=1_600_000_000_000)
    status, event = await api.get(f"/rooms/{room_id}/event/{sent}", token=token)
    assert (status, event["sender"], event["origin_server_ts"]) == (200, ghost.mxid, 1_600_000_000_000)
    await wait_for(lambda: any(e.event_id == sent for e in received), 15, "the bridge saw its ghost's message")

    # Typing and a read receipt of hers reach the bridge as ephemeral events.
    await api.put(f"/rooms/{room_id}/typing/{alice['user_id']}", {"typing": True, "timeout": 10000}, token=token)
    await wait_for(lambda: any(
        e.type == EventType.TYPING and alice["user_id"] in e.content.user_ids for e in ephemeral), 15, "her typing")
    await api.post(f"/rooms/{room_id}/receipt/m.read/{sent}", {}, token=token)
    await wait_for(lambda: any(e.type == EventType.RECEIPT and sent in e.content for e in ephemeral), 15, "her receipt")

    # The server asks the bridge about a ghost nobody made yet, and about a portal alias.
    status, profile = await api.get("/profile/@_bridge_carol:localhost")
    assert status == 200, profile
    status, portal = await api.get("/directory/room/%23_bridge_portal:localhost")
    assert status == 200 and portal["room_id"].startswith("!"), portal
    assert (await bot.get_state_event(portal["room_id"], EventType.ROOM_NAME)).name == "portal"
    # Every transaction event is one the bridge is meant to see: nothing of other rooms.
    other_room = await api.create_room(token)
    await api.send_text(token, other_room, "not bridged")
    await api.send_text(token, room_id, "last one")
    await wait_for(lambda: any(
        getattr(e.content, "body", None) == "last one" for e in received), 15, "the last message")
    assert not [e for e in received if e.room_id == other_room]
