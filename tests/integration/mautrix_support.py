"""A mautrix-python bot against a real ranvier, shared by the tests of mautrix: its memory
stores, a user logged in as a bot, what mautrix logs when an answer does not parse or a sync
fails (a test that saw any fails), and mautrix's OlmMachine set up as maubot sets it up."""

from __future__ import annotations

import asyncio
import logging

import pytest
from mautrix.client import Client
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.crypto import OlmMachine
from mautrix.crypto.store import StateStore as CryptoStateStore
from mautrix.crypto.store.memory import MemoryCryptoStore
from mautrix.types import Membership, RoomID, UserID

PASSWORD = "correct horse"


class BotStateStore(MemoryStateStore, CryptoStateStore):
    """mautrix's memory state store with the one query its OlmMachine adds (as maubot's and
    the bridges' stores have it): the rooms the bot shares with a user."""

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        return [room_id for room_id, members in self.members.items()
                if members.get(user_id) and members[user_id].membership == Membership.JOIN]


class MautrixTrouble(logging.Handler):
    """Records what mautrix logs when a server's answer does not parse or a sync fails."""

    SIGNS = ("Failed to deserialize", "Sync request errored", "Fatal error while syncing", "errored",
             "Corrupted invite", "Failed to decrypt")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR or any(sign in message for sign in self.SIGNS):
            self.messages.append(f"{record.name}: {message}")


@pytest.fixture
def mautrix_trouble():
    handler = MautrixTrouble()
    logger = logging.getLogger("mau")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    assert not handler.messages, handler.messages


@pytest.fixture
async def bots(homeserver, api, mautrix_trouble):
    """`make(localpart)`: a user registered on the server (unless `register=False`: another
    device of a user registered already) and logged in by a mautrix Client with
    memory state and sync stores, as a bot is; every client is stopped and closed afterwards."""
    made: list[Client] = []

    async def make(localpart: str, device_name: str = "mautrix bot", register: bool = True) -> Client:
        if register:
            await api.register(localpart, PASSWORD, inhibit_login=True)
        client = Client(mxid=UserID(f"@{localpart}:localhost"), base_url=homeserver.base_url,
                        state_store=BotStateStore())
        made.append(client)
        login = await client.login(password=PASSWORD, device_name=device_name)
        assert login.user_id == f"@{localpart}:localhost" and login.access_token and login.device_id
        return client

    yield make
    for client in made:
        client.stop()
        await client.api.session.close()


async def wait_for(condition, seconds: float = 10, what: str = "condition"):
    """Poll `condition()` (sync or async) until it is truthy; its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def encrypting_bot(bot: Client) -> OlmMachine:
    """Give `bot` mautrix's OlmMachine over memory stores, set up as maubot sets up a client's
    encryption; its keys go up on the first sync (the one-time key count is below its target)."""
    crypto_store = MemoryCryptoStore(account_id=bot.mxid, pickle_key="not secret")
    await crypto_store.put_device_id(bot.device_id)
    machine = OlmMachine(bot, crypto_store, bot.state_store)
    await machine.load()
    bot.crypto = machine
    return machine
