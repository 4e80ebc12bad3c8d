"""Servers found through DNS: `b` is named `b.test` (no port), and `a` finds it through the
SRV records a test DNS server publishes (`federation.dns_servers`); what the records point
to is still checked against the allowed addresses, and the targets of an SRV answer are
tried in order."""

from __future__ import annotations

import socket

import pytest

from dns_support import TTL_S, TestDnsServer
from federation_support import chat_both_ways
from ranvier.events.signing import SigningKey
from ranvier.federation.client import FederationClient, Unreachable
from ranvier.federation.discovery import SrvRecord
from ranvier.federation.nameservers import Nameservers
from ranvier.outbound.addresses import parse_networks
from tests.conftest import _free_port

VERSION_PATH = "/_matrix/federation/v1/version"


@pytest.fixture
async def dns_server():
    server = TestDnsServer()
    await server.start()
    yield server
    server.stop()


async def start_pair(start_federated, dns_server: TestDnsServer):
    """`b` named b.test, its TLS listener at host-b.test (127.0.0.1), and `a`, which asks
    only the test DNS server. b.test itself is 127.0.0.1 too, where nothing answers on port
    443: the well-known request fails at once."""
    b = await start_federated("b", server_name="b.test")
    dns_server.a.update({"b.test": ["127.0.0.1"], "host-b.test": ["127.0.0.1"]})
    a = await start_federated("a", federation={"dns_servers": [dns_server.address]})
    return a, b


def client_asking(dns_server: TestDnsServer, allowed: list[str]) -> FederationClient:
    """A federation client that asks only the test DNS server."""
    return FederationClient("client.test", SigningKey.generate("k1"), allowed=parse_networks(allowed),
                            verify_tls=False, timeout_s=10, nameservers=[("127.0.0.1", dns_server.port)])


async def test_srv_and_address_lookups_ask_the_configured_dns_server(dns_server):
    dns_server.srv["_matrix-fed._tcp.x.test"] = [(10, 20, 8448, "host-x.test."), (20, 0, 0, ".")]
    dns_server.a["host-x.test"] = ["127.0.0.5", "127.0.0.6"]
    nameservers = Nameservers([("127.0.0.1", dns_server.port)])
    answer = await nameservers.srv("_matrix-fed._tcp.x.test")
    assert sorted(answer.records, key=lambda r: r.priority) == [SrvRecord(10, 20, 8448, "host-x.test."),
                                                                 SrvRecord(20, 0, 0, ".")]
    assert 0 < answer.ttl <= TTL_S
    assert await nameservers.srv("_matrix-fed._tcp.nothing.test") is None
    assert await nameservers.srv("_matrix-fed._tcp.host-x.test") is None  # a name without SRV records
    assert sorted(await nameservers.addresses("host-x.test", socket.AF_UNSPEC)) == ["127.0.0.5", "127.0.0.6"]
    assert {("host-x.test", "A"), ("host-x.test", "AAAA")} <= set(dns_server.asked)
    with pytest.raises(OSError, match="host-x.test has no address"):
        await nameservers.addresses("host-x.test", socket.AF_INET6)
    with pytest.raises(OSError, match="nothing.test has no address"):
        await nameservers.addresses("nothing.test", socket.AF_UNSPEC)


async def test_a_user_joins_a_room_of_a_server_found_by_its_srv_record_and_they_chat_both_ways(
        start_federated, dns_server):
    a, b = await start_pair(start_federated, dns_server)
    dns_server.srv["_matrix-fed._tcp.b.test"] = [(10, 5, b.tls_port, "host-b.test.")]
    alice, bob = await a.user("alice"), await b.user("bob")
    room_id = await b.api.create_room(bob["access_token"], preset="public_chat")
    await b.api.send_text(bob["access_token"], room_id, "before alice")
    status, joined = await a.api.post(f"/join/{room_id}", {}, token=alice["access_token"], params={"via": "b.test"})
    assert status == 200, joined
    assert ("_matrix-fed._tcp.b.test", "SRV") in dns_server.asked
    assert ("host-b.test", "A") in dns_server.asked
    assert ("_matrix._tcp.b.test", "SRV") not in dns_server.asked  # the registered service answered
    await chat_both_ways(a, alice, b, bob, room_id)
    status, members = await b.api.get(f"/rooms/{room_id}/joined_members", token=bob["access_token"])
    assert set(members["joined"]) == {alice["user_id"], bob["user_id"]}


async def test_the_deprecated_srv_record_alone_is_enough(start_federated, dns_server):
    a, b = await start_pair(start_federated, dns_server)
    dns_server.srv["_matrix._tcp.b.test"] = [(0, 0, b.tls_port, "host-b.test.")]
    alice, bob = await a.user("alice"), await b.user("bob")
    status, profile = await a.api.get(f"/profile/{bob['user_id']}", token=alice["access_token"])
    assert status == 200, profile
    asked = [name for name, kind in dns_server.asked if kind == "SRV"]
    assert asked.index("_matrix-fed._tcp.b.test") < asked.index("_matrix._tcp.b.test")


async def test_an_srv_target_at_an_address_not_allowed_is_refused(start_federated, dns_server):
    b = await start_federated("b", server_name="b.test")
    dns_server.a.update({"b.test": ["127.0.0.1"], "host-b.test": ["127.0.0.1"], "private-b.test": ["10.9.8.7"]})
    dns_server.srv["_matrix-fed._tcp.b.test"] = [(0, 0, b.tls_port, "host-b.test.")]
    dns_server.srv["_matrix-fed._tcp.private.test"] = [(0, 0, b.tls_port, "private-b.test.")]
    public_only = client_asking(dns_server, allowed=[])
    loopback = client_asking(dns_server, allowed=["127.0.0.0/8"])
    try:
        with pytest.raises(Unreachable, match="host-b.test has no address that may be reached"):
            await public_only.get("b.test", VERSION_PATH)
        with pytest.raises(Unreachable, match="private-b.test has no address that may be reached"):
            await loopback.get("private.test", VERSION_PATH)
        assert (await loopback.get("b.test", VERSION_PATH))["server"]["name"] == "ranvier"
    finally:
        await public_only.close()
        await loopback.close()


async def test_the_targets_of_an_srv_answer_are_tried_in_priority_order(start_federated, dns_server):
    """The first target has nothing listening, the second is at an address not allowed:
    the third, b's, answers."""
    b = await start_federated("b", server_name="b.test")
    dns_server.a.update({"c.test": ["127.0.0.1"], "host-b.test": ["127.0.0.1"], "private-b.test": ["10.9.8.7"]})
    dns_server.srv["_matrix-fed._tcp.c.test"] = [
        (30, 0, b.tls_port, "host-b.test."), (10, 0, _free_port(), "host-b.test."), (20, 0, b.tls_port, "private-b.test.")]
    client = client_asking(dns_server, allowed=["127.0.0.0/8"])
    try:
        assert (await client.get("c.test", VERSION_PATH))["server"]["name"] == "ranvier"
    finally:
        await client.close()
    assert ("private-b.test", "A") in dns_server.asked
