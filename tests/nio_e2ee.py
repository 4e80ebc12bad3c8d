"""matrix-nio with encryption (Olm and Megolm through vodozemac) driven step by step: the other
party of the end-to-end encryption tests of ranvier and of granolin."""

from __future__ import annotations

import itertools

import nio

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
_stores = itertools.count()


def encrypting_client(homeserver, tmp_path, localpart: str) -> nio.AsyncClient:
    """A nio client with encryption on, its store in a folder of its own (``homeserver`` has a ``base_url``)."""
    store = tmp_path / f"store{next(_stores)}"
    store.mkdir()
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    return nio.AsyncClient(homeserver.base_url, f"@{localpart}:localhost", store_path=str(store), config=config)


async def settle(client: nio.AsyncClient, timeout_ms: int = 0) -> nio.SyncResponse:
    """One sync, then what nio's own sync loop does after each: send queued to-device
    messages, upload keys, look up the keys of changed users, claim missing sessions."""
    response = await client.sync(timeout=timeout_ms)
    assert isinstance(response, nio.SyncResponse), response
    await client.send_to_device_messages()
    if client.should_upload_keys:
        assert isinstance(await client.keys_upload(), nio.KeysUploadResponse)
    if client.should_query_keys:
        assert isinstance(await client.keys_query(), nio.KeysQueryResponse)
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    return response


async def receive(client: nio.AsyncClient, room_id: str, body: str) -> nio.RoomMessageText:
    """Sync until the message with `body` arrives decrypted."""
    for _ in range(40):
        response = await settle(client, timeout_ms=250)
        room = response.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if isinstance(event, nio.RoomMessageText) and event.body == body:
                return event
    raise AssertionError(f"{client.user_id}/{client.device_id} never decrypted {body!r}")


async def send(client: nio.AsyncClient, room_id: str, body: str) -> str:
    response = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                                      ignore_unverified_devices=True)
    assert isinstance(response, nio.RoomSendResponse), response
    return response.event_id
