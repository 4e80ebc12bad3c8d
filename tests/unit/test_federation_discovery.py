"""Resolving server names (server-server API): each step of the order with a scripted
well-known fetch and a scripted SRV lookup, the order of SRV records, and how long each
kind of answer is kept."""

from __future__ import annotations

import random

import pytest

from ranvier.federation.discovery import (
    ServerResolver, SrvAnswer, SrvRecord, Target, order_srv_records, split_server_name)
from ranvier.federation.expiring import ExpiringCache

HOUR = 3600


class Scripted:
    """The well-known documents and SRV records of made-up names, and what was asked."""

    def __init__(self, well_known: dict | None = None, srv: dict | None = None) -> None:
        self.well_known = {f"https://{host}/.well-known/matrix/server": answer
                           for host, answer in (well_known or {}).items()}
        self.srv_records = srv or {}
        self.fetched: list[str] = []
        self.looked_up: list[str] = []
        self.now = 1000.0

    async def fetch(self, url: str):
        self.fetched.append(url)
        if url not in self.well_known:
            raise OSError("connection refused")
        return self.well_known[url]

    async def srv(self, name: str):
        self.looked_up.append(name)
        answer = self.srv_records.get(name)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def resolver(self, rng=None) -> ServerResolver:
        return ServerResolver(self.fetch, self.srv, clock=lambda: self.now, rng=rng)


def delegation(m_server: str, cache_control: str | None = None):
    return 200, cache_control, b'{"m.server": "%s"}' % m_server.encode()


def srv(*records: tuple[int, int, int, str], ttl: int = 300) -> SrvAnswer:
    return SrvAnswer(tuple(SrvRecord(*record) for record in records), ttl)


@pytest.mark.parametrize("name,parts", [
    ("example.org", ("example.org", None)), ("example.org:8448", ("example.org", 8448)),
    ("1.2.3.4:99", ("1.2.3.4", 99)), ("[::1]:8448", ("::1", 8448)), ("[::1]", ("::1", None)),
])
def test_server_names_split_into_host_and_port(name, parts):
    assert split_server_name(name) == parts


async def test_ip_literals_and_explicit_ports_are_used_as_they_are():
    """Steps 1 and 2: no well-known document, no SRV record is asked for."""
    scripted = Scripted(srv={"_matrix-fed._tcp.example.org": srv((10, 0, 1, "elsewhere.test."))})
    resolver = scripted.resolver()
    assert await resolver.resolve("1.2.3.4") == [Target("1.2.3.4", 8448, "1.2.3.4", None)]
    assert await resolver.resolve("1.2.3.4:99") == [Target("1.2.3.4", 99, "1.2.3.4:99", None)]
    assert await resolver.resolve("[::1]:99") == [Target("::1", 99, "[::1]:99", None)]
    assert await resolver.resolve("example.org:1234") == [Target("example.org", 1234, "example.org:1234", "example.org")]
    assert scripted.fetched == scripted.looked_up == []
    assert Target("::1", 99, "x", None).url_host == "[::1]"


async def test_a_delegation_to_an_ip_literal_or_an_explicit_port_is_used_as_it_is():
    """Steps 3.1 and 3.2: the Host header is the delegated name with its port; no SRV."""
    scripted = Scripted(well_known={
        "toip.test": delegation("10.0.0.1"), "toipport.test": delegation("[2001:db8::1]:8443"),
        "toport.test": delegation("matrix.toport.test:443"),
    }, srv={"_matrix-fed._tcp.toport.test": srv((10, 0, 1, "elsewhere.test."))})
    resolver = scripted.resolver()
    assert await resolver.resolve("toip.test") == [Target("10.0.0.1", 8448, "10.0.0.1", None)]
    assert await resolver.resolve("toipport.test") == [Target("2001:db8::1", 8443, "[2001:db8::1]:8443", None)]
    assert await resolver.resolve("toport.test") == [
        Target("matrix.toport.test", 443, "matrix.toport.test:443", "matrix.toport.test")]
    assert scripted.looked_up == []


async def test_a_delegated_name_without_port_is_found_by_its_matrix_fed_srv_record():
    """Step 3.3: the record's target and port; Host header and certificate name stay the
    delegated name; the SRV records of the server name itself are not asked for."""
    scripted = Scripted(well_known={"example.org": delegation("matrix.example.org")}, srv={
        "_matrix-fed._tcp.matrix.example.org": srv((10, 5, 8443, "host1.example.org.")),
        "_matrix._tcp.matrix.example.org": srv((10, 5, 9999, "old.example.org.")),
        "_matrix-fed._tcp.example.org": srv((10, 5, 9999, "wrong.example.org.")),
    })
    assert await scripted.resolver().resolve("example.org") == [
        Target("host1.example.org", 8443, "matrix.example.org", "matrix.example.org")]
    assert scripted.looked_up == ["_matrix-fed._tcp.matrix.example.org"]


async def test_a_delegated_name_falls_back_to_the_deprecated_srv_record_then_to_port_8448():
    """Steps 3.4 and 3.5."""
    scripted = Scripted(well_known={"old.test": delegation("matrix.old.test"), "none.test": delegation("m.none.test")},
                        srv={"_matrix._tcp.matrix.old.test": srv((0, 0, 8500, "legacy.old.test."))})
    resolver = scripted.resolver()
    assert await resolver.resolve("old.test") == [Target("legacy.old.test", 8500, "matrix.old.test", "matrix.old.test")]
    assert await resolver.resolve("none.test") == [Target("m.none.test", 8448, "m.none.test", "m.none.test")]
    assert scripted.looked_up == ["_matrix-fed._tcp.matrix.old.test", "_matrix._tcp.matrix.old.test",
                                  "_matrix-fed._tcp.m.none.test", "_matrix._tcp.m.none.test"]


@pytest.mark.parametrize("well_known", [
    None,  # no answer at all
    (404, None, b"{}"),
    (200, None, b"not json"),
    (200, None, b'["m.server"]'),
    (200, None, b'{"m.server": 7}'),
    (200, None, b'{"m.server": "bad name!"}'),
    (200, None, b'{"other": "x.test"}'),
])
async def test_without_a_valid_well_known_the_server_names_srv_records_are_used(well_known):
    """Step 4: `_matrix-fed._tcp` first; Host header and certificate name are the server
    name, not the record's target."""
    scripted = Scripted(well_known={"example.org": well_known} if well_known else {}, srv={
        "_matrix-fed._tcp.example.org": srv((10, 5, 8443, "fed.example.org.")),
        "_matrix._tcp.example.org": srv((10, 5, 8500, "old.example.org.")),
    })
    assert await scripted.resolver().resolve("example.org") == [
        Target("fed.example.org", 8443, "example.org", "example.org")]
    assert scripted.fetched == ["https://example.org/.well-known/matrix/server"]
    assert scripted.looked_up == ["_matrix-fed._tcp.example.org"]


async def test_without_well_known_the_deprecated_record_then_port_8448():
    """Steps 5 and 6."""
    scripted = Scripted(srv={"_matrix._tcp.old.test": srv((10, 5, 8500, "legacy.old.test"))})
    resolver = scripted.resolver()
    assert await resolver.resolve("old.test") == [Target("legacy.old.test", 8500, "old.test", "old.test")]
    assert await resolver.resolve("bare.test") == [Target("bare.test", 8448, "bare.test", "bare.test")]
    assert scripted.looked_up == ["_matrix-fed._tcp.old.test", "_matrix._tcp.old.test",
                                  "_matrix-fed._tcp.bare.test", "_matrix._tcp.bare.test"]


async def test_a_record_with_target_dot_counts_as_no_record():
    """"." says the service is not offered under that name: the next step is taken."""
    scripted = Scripted(well_known={"delegating.test": delegation("m.delegating.test")}, srv={
        "_matrix-fed._tcp.dot.test": srv((0, 0, 0, ".")),
        "_matrix._tcp.dot.test": srv((0, 0, 8500, "legacy.dot.test.")),
        "_matrix-fed._tcp.dots.test": srv((0, 0, 0, ".")),
        "_matrix._tcp.dots.test": srv((0, 0, 0, ".")),
        "_matrix-fed._tcp.m.delegating.test": srv((0, 0, 0, ".")),
    })
    resolver = scripted.resolver()
    assert await resolver.resolve("dot.test") == [Target("legacy.dot.test", 8500, "dot.test", "dot.test")]
    assert await resolver.resolve("dots.test") == [Target("dots.test", 8448, "dots.test", "dots.test")]
    assert await resolver.resolve("delegating.test") == [
        Target("m.delegating.test", 8448, "m.delegating.test", "m.delegating.test")]


async def test_several_records_become_targets_in_priority_order():
    scripted = Scripted(srv={"_matrix-fed._tcp.many.test": srv(
        (300, 0, 3, "third.many.test."), (2, 0, 1, "first.many.test."), (9, 0, 2, "second.many.test."))})
    targets = await scripted.resolver().resolve("many.test")
    assert [(t.host, t.port, t.host_header, t.tls_name) for t in targets] == [
        ("first.many.test", 1, "many.test", "many.test"), ("second.many.test", 2, "many.test", "many.test"),
        ("third.many.test", 3, "many.test", "many.test")]


class ScriptedDraws:
    """A random source that draws the given numbers and notes the ranges asked."""

    def __init__(self, *draws: int) -> None:
        self.draws = list(draws)
        self.ranges: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.ranges.append((a, b))
        return self.draws.pop(0)


def test_records_of_one_priority_are_drawn_by_weight():
    """RFC 2782: weight 0 placed first, running sums of weights, the first record whose
    running sum reaches the draw goes next; then again among those left."""
    zero, light, heavy = SrvRecord(10, 0, 1, "zero."), SrvRecord(10, 10, 2, "light."), SrvRecord(10, 30, 3, "heavy.")
    other = SrvRecord(5, 50, 4, "other.")
    draws = ScriptedDraws(0, 5, 0, 0)  # other; then light (running sums 0, 10, 40); zero; heavy
    assert order_srv_records((heavy, light, other, zero), draws) == [other, light, zero, heavy]
    assert draws.ranges == [(0, 50), (0, 40), (0, 30), (0, 30)]
    draws = ScriptedDraws(11, 0, 0)  # heavy (running sum 40 >= 11); then zero; light
    assert order_srv_records((heavy, light, zero), draws) == [heavy, zero, light]


def test_a_heavier_record_comes_first_more_often():
    light, heavy = SrvRecord(0, 1, 1, "light."), SrvRecord(0, 9, 2, "heavy.")
    rng = random.Random(7)
    firsts = [order_srv_records((light, heavy), rng)[0] for _ in range(2000)]
    # the draw is one of 0..10 (both ends included): 9 of those 11 numbers pick the heavy one
    assert 0.78 < firsts.count(heavy) / len(firsts) < 0.86


def test_a_dot_target_among_others_is_left_out():
    usable = SrvRecord(10, 0, 1, "host.")
    assert order_srv_records((SrvRecord(0, 0, 0, "."), usable), random.Random()) == [usable]


async def test_srv_answers_are_kept_for_their_ttl_within_bounds():
    scripted = Scripted(srv={
        "_matrix-fed._tcp.ttl.test": srv((0, 0, 1, "a.ttl.test."), ttl=300),
        "_matrix-fed._tcp.short.test": srv((0, 0, 1, "a.short.test."), ttl=1),
        "_matrix-fed._tcp.long.test": srv((0, 0, 1, "a.long.test."), ttl=10 ** 7),
    })
    resolver = scripted.resolver()

    async def lookups_after(name: str, seconds: float) -> list[str]:
        scripted.looked_up.clear()
        scripted.now = start + seconds
        await resolver.resolve(name)
        return scripted.looked_up

    start = scripted.now
    for name in ("ttl.test", "short.test", "long.test"):
        await resolver.resolve(name)
    assert await lookups_after("ttl.test", 299) == []
    assert await lookups_after("ttl.test", 301) == ["_matrix-fed._tcp.ttl.test"]
    assert await lookups_after("short.test", 59) == []  # a minute at least
    assert await lookups_after("short.test", 61) == ["_matrix-fed._tcp.short.test"]
    assert await lookups_after("long.test", 48 * HOUR - 1) == []  # 48 hours at most
    assert await lookups_after("long.test", 48 * HOUR + 1) == ["_matrix-fed._tcp.long.test"]


async def test_no_record_is_kept_an_hour_and_a_failed_lookup_five_minutes():
    scripted = Scripted(srv={"_matrix-fed._tcp.failing.test": TimeoutError("no answer"),
                             "_matrix._tcp.failing.test": TimeoutError("no answer")})
    resolver = scripted.resolver()
    start = scripted.now
    assert await resolver.resolve("failing.test") == [Target("failing.test", 8448, "failing.test", "failing.test")]
    await resolver.resolve("none.test")
    scripted.looked_up.clear()
    scripted.now = start + 299
    await resolver.resolve("failing.test")
    await resolver.resolve("none.test")
    assert scripted.looked_up == []
    scripted.now = start + 301
    await resolver.resolve("failing.test")
    await resolver.resolve("none.test")
    assert scripted.looked_up == ["_matrix-fed._tcp.failing.test", "_matrix._tcp.failing.test"]
    scripted.looked_up.clear()
    scripted.now = start + HOUR + 1
    await resolver.resolve("none.test")
    assert scripted.looked_up == ["_matrix-fed._tcp.none.test", "_matrix._tcp.none.test"]


async def test_well_known_answers_are_kept_for_their_max_age_and_failures_an_hour():
    scripted = Scripted(well_known={"delegated.test": delegation("m.delegated.test:443", "public, max-age=60"),
                                    "default.test": delegation("m.default.test:443")})
    resolver = scripted.resolver()
    start = scripted.now
    for name in ("delegated.test", "default.test", "unreachable.test"):
        await resolver.resolve(name)
    scripted.fetched.clear()
    scripted.now = start + 59
    for name in ("delegated.test", "default.test", "unreachable.test"):
        await resolver.resolve(name)
    assert scripted.fetched == []
    scripted.now = start + 61
    await resolver.resolve("delegated.test")
    scripted.now = start + HOUR + 1
    await resolver.resolve("unreachable.test")
    scripted.now = start + 24 * HOUR + 1
    await resolver.resolve("default.test")
    assert scripted.fetched == [f"https://{host}/.well-known/matrix/server"
                                for host in ("delegated.test", "unreachable.test", "default.test")]


def test_a_cache_keeps_a_bounded_number_of_answers():
    now = [0.0]
    cache: ExpiringCache[str, int] = ExpiringCache(2, lambda: now[0])
    for index, key in enumerate("abc"):
        cache.put(key, index, 10)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, (1,), (2,))
    now[0] = 10
    assert cache.get("c") is None
