"""POST /account/deactivate with erase: true: those who join later see the account's
events redacted, those who saw them before still do; the profile is cleared."""

from __future__ import annotations

import json


async def deactivate(api, user, erase):
    body = {} if erase is None else {"erase": erase}
    _, challenge = await api.post("/account/deactivate", body, token=user["access_token"])
    body["auth"] = {"type": "m.login.password", "session": challenge["session"], "user": user["user_id"],
                    "password": "correct horse"}
    status, result = await api.post("/account/deactivate", body, token=user["access_token"])
    assert status == 200, result


def contents_of(events, sender):
    return [e["content"] for e in events if e["sender"] == sender and e["type"] == "m.room.message"]


async def test_erased_events_are_redacted_for_later_joiners_only(api, homeserver):
    alice, bob, carol, dave = await api.register_all("alice", "bob", "carol", "dave")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.post(f"/rooms/{room_id}/join", {}, token=bob["access_token"])
    await api.post(f"/rooms/{room_id}/join", {}, token=dave["access_token"])
    await api.put("/profile/@alice:localhost/displayname", {"displayname": "Alice"}, token=alice["access_token"])
    await api.put("/profile/@alice:localhost/m.tz", {"m.tz": "Europe/Paris"}, token=alice["access_token"])
    await api.put("/user/@alice:localhost/account_data/org.example.private", {"secret": 1},
                  token=alice["access_token"])
    await api.send_text(alice["access_token"], room_id, "erase me")
    await api.send_text(dave["access_token"], room_id, "keep me")
    await deactivate(api, alice, erase=True)
    await deactivate(api, dave, erase=False)
    await api.post(f"/rooms/{room_id}/join", {}, token=carol["access_token"])

    async def messages(user):
        status, page = await api.get(f"/rooms/{room_id}/messages", params={"limit": "50"}, token=user["access_token"])
        assert status == 200, page
        return page["chunk"]

    assert contents_of(await messages(bob), "@alice:localhost") == [{"msgtype": "m.text", "body": "erase me"}]
    later = await messages(carol)
    assert contents_of(later, "@alice:localhost") == [{}], "redacted for someone who joined after"
    assert contents_of(later, "@dave:localhost") == [{"msgtype": "m.text", "body": "keep me"}], "no erase asked"
    alice_join = [e for e in later if e["type"] == "m.room.member" and e["state_key"] == "@alice:localhost"
                  and e["content"].get("membership") == "join"]
    assert alice_join and all("displayname" not in e["content"] for e in alice_join)
    status, synced = await api.get("/sync", params={"filter": json.dumps({"room": {"timeline": {"limit": 50}}})},
                                   token=carol["access_token"])
    assert contents_of(synced["rooms"]["join"][room_id]["timeline"]["events"], "@alice:localhost") == [{}]
    status, synced = await api.get("/sync", params={"filter": json.dumps({"room": {"timeline": {"limit": 50}}})},
                                   token=bob["access_token"])
    assert contents_of(synced["rooms"]["join"][room_id]["timeline"]["events"], "@alice:localhost") == [
        {"msgtype": "m.text", "body": "erase me"}]

    status, profile = await api.get("/profile/@alice:localhost")
    assert status == 200 and "displayname" not in profile and "m.tz" not in profile
    status, profile = await api.get("/profile/@dave:localhost")
    assert status == 200
    assert await homeserver.account_data.store.get("@alice:localhost", "", "org.example.private") is None


async def test_erasure_survives_a_restart(server_config, homeserver, api):
    from ranvier.server import Homeserver

    (alice,) = await api.register_all("alice")
    room_id = await api.create_room(alice["access_token"], preset="public_chat")
    await api.send_text(alice["access_token"], room_id, "erase me")
    await deactivate(api, alice, erase=True)
    await homeserver.stop()
    again = Homeserver(server_config)
    await again.start()
    try:
        assert "@alice:localhost" in again.erasure.erased
    finally:
        await again.stop()
