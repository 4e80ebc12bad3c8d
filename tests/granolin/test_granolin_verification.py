"""SAS verification (granolin.e2ee.sas and granolin.e2ee.verification) without a server.

Two state machines talk to each other through their outboxes; matrix-nio's SAS code is the
independent side for the strings and MACs; the commitment is checked against a computation
made here from the spec's words with other libraries (canonicaljson, hashlib).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import nio
import pytest
import vodozemac
from canonicaljson import encode_canonical_json
from nio.crypto import OlmDevice
from nio.crypto.sas import Sas as NioSas

from granolin.e2ee.cross_signing import CrossSigningKeys
from granolin.e2ee.devices import DeviceRegistry
from granolin.e2ee.olm import OlmAccount
from granolin.e2ee.sas import EMOJI, MAC_V1, MAC_V2, Party, SasKeys, commitment
from granolin.e2ee.store import CryptoStore
from granolin.e2ee.verification import (ACCEPTED, INVALID_MESSAGE, KEY_MISMATCH, MISMATCHED_COMMITMENT, MISMATCHED_SAS,
                                        PREFIX, TIMED_OUT, UNEXPECTED_MESSAGE, UNKNOWN_METHOD, UNKNOWN_TRANSACTION, USER,
                                        USER_MISMATCH, Phase, Verification, Verifications)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Side:
    """One device: its state machine, its keys, and the devices it knows."""

    def __init__(self, user_id: str, device_id: str, clock: Clock, master: bool = False) -> None:
        self.party = Party(user_id, device_id)
        self.account = vodozemac.Account()
        self.ed25519 = self.account.ed25519_key.to_base64()
        self.master = vodozemac.Account().ed25519_key.to_base64() if master else None
        self.known: dict[tuple[str, str], str] = {}
        self.masters: dict[str, str] = {}

        def own_keys() -> dict[str, str]:
            keys = {f"ed25519:{device_id}": self.ed25519}
            if self.master is not None:
                keys[f"ed25519:{self.master}"] = self.master
            return keys

        self.machine = Verifications(self.party, own_keys, lambda u, d: self.known.get((u, d)), self.masters.get, clock)

    def meets(self, other: Side) -> None:
        self.known[(other.party.user_id, other.party.device_id)] = other.ed25519
        if other.master is not None:
            self.masters[other.party.user_id] = other.master

    def notices(self, kind: str) -> list[Verification]:
        return [v for k, v in self.machine.notices if k == kind]


def deliver(source: Side, *targets: Side, tamper: Any = None) -> list[str]:
    """Hand the source's outbox to the targets it addresses; returns the kinds delivered."""
    delivered = []
    outbox, source.machine.outbox = source.machine.outbox, []
    for message in outbox:
        for target in targets:
            if message.user_id == target.party.user_id and message.device_id in (target.party.device_id, "*"):
                content = tamper(message.event_type, dict(message.content)) if tamper else message.content
                target.machine.receive(source.party.user_id, message.event_type, content)
                delivered.append(message.event_type.removeprefix(PREFIX))
    return delivered


def exchange(a: Side, b: Side, tamper: Any = None) -> list[str]:
    """Deliver both ways until both outboxes are empty."""
    kinds: list[str] = []
    while a.machine.outbox or b.machine.outbox:
        kinds += deliver(a, b, tamper=tamper) + deliver(b, a, tamper=tamper)
    return kinds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pair(clock: Clock, bot_master: bool = True, user_master: bool = True) -> tuple[Side, Side]:
    bot = Side("@bot:example.org", "BOTDEVICE", clock, bot_master)
    alice = Side("@alice:example.org", "ALICEPHONE", clock, user_master)
    bot.meets(alice)
    alice.meets(bot)
    return bot, alice


def bot_accepts_her_request(bot: Side, alice: Side) -> tuple[Verification, Verification]:
    """Alice asks the bot's device; the bot accepts (its ready is in its outbox). (bot's, hers)"""
    asked = alice.machine.request(bot.party.user_id, [bot.party.device_id])
    deliver(alice, bot)
    [answering] = bot.notices("request")
    bot.machine.accept(answering)
    return answering, asked


def to_sas(bot: Side, alice: Side, alice_requests: bool = True) -> tuple[Verification, Verification]:
    """Run a request to the point where both sides show the strings."""
    if alice_requests:
        answering, asked = bot_accepts_her_request(bot, alice)
    else:
        answering = bot.machine.request(alice.party.user_id, [alice.party.device_id])
        deliver(bot, alice)
        [asked] = alice.notices("request")
        alice.machine.accept(asked)
    kinds = exchange(bot, alice)
    assert kinds == ["ready", "start", "accept", "key", "key"]
    return answering, asked


# --- computations -----------------------------------------------------------------


def test_the_commitment_is_the_base64_sha256_of_the_key_and_the_start_s_canonical_json() -> None:
    start = {"from_device": "DEV", "method": "m.sas.v1", "transaction_id": "t1", "hashes": ["sha256"],
             "key_agreement_protocols": ["curve25519-hkdf-sha256"], "message_authentication_codes": [MAC_V2],
             "short_authentication_string": ["decimal", "emoji"], "note": "é ü"}
    key = SasKeys().public_key
    expected = base64.b64encode(hashlib.sha256(key.encode() + encode_canonical_json(start)).digest()).decode().rstrip("=")
    assert commitment(key, start) == expected
    assert commitment(key, {**start, "transaction_id": "t2"}) != expected


def test_the_emoji_table_has_the_spec_s_64_entries() -> None:
    assert len(EMOJI) == 64 and len({emoji for emoji, _ in EMOJI}) == 64
    assert EMOJI[0] == ("🐶", "Dog") and EMOJI[31] == ("🤖", "Robot") and EMOJI[63] == ("📌", "Pin")
    assert EMOJI[34] == ("🔧", "Spanner") and EMOJI[53] == ("✈️", "Aeroplane")  # the spec's words
    assert [emoji for emoji, _ in EMOJI] == [emoji for emoji, _ in NioSas.emoji]


def test_a_key_that_is_not_a_curve25519_key_cannot_be_agreed_on() -> None:
    with pytest.raises(ValueError):
        SasKeys().agree("not a key")


# --- the whole flow ---------------------------------------------------------------


@pytest.mark.parametrize("alice_requests", [True, False])
def test_both_sides_show_the_same_strings_and_verify_each_other(clock: Clock, alice_requests: bool) -> None:
    bot, alice = pair(clock)
    on_bot, on_alice = to_sas(bot, alice, alice_requests)
    assert on_bot.phase is on_alice.phase is Phase.COMPARING
    assert on_bot.emoji == on_alice.emoji and len(on_bot.emoji) == 7
    assert on_bot.decimals == on_alice.decimals and all(1000 <= n <= 9191 for n in on_bot.decimals or ())
    bot.machine.confirm(on_bot)
    assert exchange(bot, alice) == ["mac"]
    assert not on_alice.verified  # she has not compared yet
    alice.machine.confirm(on_alice)
    assert exchange(bot, alice) == ["mac", "done", "done"]
    assert on_bot.verified and on_alice.verified
    assert on_bot.verified_keys == {f"ed25519:{alice.party.device_id}": alice.ed25519, f"ed25519:{alice.master}": alice.master}
    assert on_alice.verified_keys == {f"ed25519:{bot.party.device_id}": bot.ed25519, f"ed25519:{bot.master}": bot.master}
    assert [v for v in bot.notices("verified")] == [on_bot]


def test_a_mismatch_cancels_with_mismatched_sas_and_verifies_nothing(clock: Clock) -> None:
    bot, alice = pair(clock)
    on_bot, on_alice = to_sas(bot, alice)
    alice.machine.confirm(on_alice)
    deliver(alice, bot)  # her MAC comes (and matches) before the bot compares
    bot.machine.mismatch(on_bot)
    exchange(bot, alice)
    assert not on_bot.verified and not on_alice.verified
    assert on_bot.cancel_code == on_alice.cancel_code == MISMATCHED_SAS
    assert on_alice.cancelled_by_them and not on_bot.cancelled_by_them
    assert on_bot.verified_keys == {f"ed25519:{alice.party.device_id}": alice.ed25519,
                                    f"ed25519:{alice.master}": alice.master}  # her MAC matched, but the bot said no
    bot.machine.confirm(on_bot)  # too late: nothing is sent
    assert bot.machine.outbox == []


def test_the_deprecated_mac_method_is_used_when_it_is_the_only_one_offered(clock: Clock) -> None:
    bot, alice = pair(clock, bot_master=False, user_master=False)
    start = {"from_device": alice.party.device_id, "method": "m.sas.v1", "transaction_id": "old-mac",
             "key_agreement_protocols": ["curve25519-hkdf-sha256"], "hashes": ["sha256"],
             "message_authentication_codes": [MAC_V1], "short_authentication_string": ["decimal"]}
    bot.machine.receive(alice.party.user_id, PREFIX + "start", start)
    [on_bot] = bot.notices("request")
    bot.machine.accept(on_bot)
    [accept] = bot.machine.outbox
    assert accept.content["message_authentication_code"] == MAC_V1 and accept.content["short_authentication_string"] == ["decimal"]
    assert on_bot.emoji == [] and on_bot.mac_method == MAC_V1


def test_the_bot_verifies_with_nio_s_sas_started_without_request(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """matrix-nio begins with a start (the older flow) and is the independent side for the strings and MACs.

    nio labels its MAC "hkdf-hmac-sha256" but computes it with the correct base64 (the spec's
    v2), and its commitment is a hex digest, not the spec's base64: both are adjusted here to
    what the spec says; nio's info strings (of the strings and of the MACs) and its MAC checks are its own.
    """
    monkeypatch.setattr(NioSas, "_mac_normal", MAC_V2)
    monkeypatch.setattr(NioSas, "_mac_v1", [MAC_V2])
    monkeypatch.setattr(NioSas, "_check_commitment",
                        lambda self, key: self.commitment == commitment(key, self.start_verification().content))
    bot, alice = pair(clock, bot_master=False, user_master=False)
    bot_device = OlmDevice(bot.party.user_id, bot.party.device_id, {"ed25519": bot.ed25519, "curve25519": "unused"})
    theirs = NioSas(alice.party.user_id, alice.party.device_id, alice.ed25519, bot_device)

    def to_nio(kind: str) -> Any:
        [message] = [m for m in bot.machine.outbox if m.event_type == PREFIX + kind]
        bot.machine.outbox.clear()
        return nio.ToDeviceEvent.parse_event({"sender": bot.party.user_id, "type": message.event_type, "content": message.content})

    bot.machine.receive(alice.party.user_id, PREFIX + "start", theirs.start_verification().content)
    [on_bot] = bot.notices("request")
    bot.machine.accept(on_bot)
    theirs.receive_accept_event(to_nio("accept"))
    bot.machine.receive(alice.party.user_id, PREFIX + "key", theirs.share_key().content)
    theirs.receive_key_event(to_nio("key"))
    assert not theirs.canceled, theirs.cancel_reason
    # nio's get_emoji() regroups into 6-bit numbers what vodozemac's bindings already give as such:
    # its info string and vodozemac's indices are what is compared
    assert theirs.established_sas is not None
    assert [EMOJI[i] for i in theirs.established_sas.bytes(theirs._extra_info).emoji_indices] == on_bot.emoji
    assert tuple(theirs.get_decimals()) == on_bot.decimals
    theirs.accept_sas()
    bot.machine.receive(alice.party.user_id, PREFIX + "mac", theirs.get_mac().content)
    assert on_bot.their_mac_checked and not on_bot.verified
    bot.machine.confirm(on_bot)
    assert on_bot.verified and [m.event_type for m in bot.machine.outbox] == [PREFIX + "mac", PREFIX + "done"]
    theirs.receive_mac_event(to_nio("mac"))
    assert theirs.verified and theirs.verified_devices == [bot.party.device_id]


# --- refusals ---------------------------------------------------------------------


def cancels(side: Side) -> list[str]:
    return [m.content["code"] for m in side.machine.outbox if m.event_type == PREFIX + "cancel"]


def test_a_key_that_does_not_match_its_commitment_is_refused(clock: Clock) -> None:
    bot, alice = pair(clock)
    verification = bot.machine.request(alice.party.user_id, [alice.party.device_id])
    deliver(bot, alice)
    alice.machine.accept(alice.notices("request")[0])
    other_key = SasKeys().public_key

    def swap_alice_s_key(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        if event_type == PREFIX + "key" and content["key"] != verification.keys.public_key:  # type: ignore[union-attr]
            content["key"] = other_key
        return content

    exchange(bot, alice, tamper=swap_alice_s_key)
    assert verification.cancel_code == MISMATCHED_COMMITMENT and not verification.verified
    assert alice.notices("request")[0].cancel_code == MISMATCHED_COMMITMENT
    assert bot.notices("sas") == []


def test_a_mac_that_does_not_match_is_refused(clock: Clock) -> None:
    bot, alice = pair(clock)
    on_bot, on_alice = to_sas(bot, alice)
    alice.machine.confirm(on_alice)
    [mac] = alice.machine.outbox
    alice.machine.outbox.clear()
    forged = dict(mac.content["mac"])
    forged[f"ed25519:{alice.party.device_id}"] = on_bot.keys.mac(MAC_V2, SasKeys().public_key, "x")  # type: ignore[union-attr]
    bot.machine.receive(alice.party.user_id, mac.event_type, {**mac.content, "mac": forged})
    assert on_bot.cancel_code == KEY_MISMATCH and cancels(bot) == [KEY_MISMATCH]
    bot.machine.confirm(on_bot)
    assert not on_bot.verified


def test_a_mac_that_leaves_out_the_device_key_is_refused(clock: Clock) -> None:
    bot, alice = pair(clock, user_master=True)
    on_bot, on_alice = to_sas(bot, alice)
    own_keys = alice.machine._own_keys
    alice.machine._own_keys = lambda: {k: v for k, v in own_keys().items() if k != f"ed25519:{alice.party.device_id}"}
    alice.machine.confirm(on_alice)
    deliver(alice, bot)
    assert on_bot.cancel_code == KEY_MISMATCH


def test_messages_of_an_unknown_transaction_are_cancelled_but_not_starts_or_cancels(clock: Clock) -> None:
    bot, alice = pair(clock)
    bot.machine.receive(alice.party.user_id, PREFIX + "key", {"transaction_id": "nope", "key": "abc"})
    assert cancels(bot) == [UNKNOWN_TRANSACTION] and bot.machine.outbox[0].device_id == "*"
    bot.machine.outbox.clear()
    bot.machine.receive(alice.party.user_id, PREFIX + "cancel", {"transaction_id": "nope2", "code": USER, "reason": "x"})
    assert bot.machine.outbox == []
    bot.machine.receive(alice.party.user_id, PREFIX + "key", {"key": "no transaction"})
    assert bot.machine.outbox == []


def test_no_method_in_common(clock: Clock) -> None:
    bot, alice = pair(clock)
    base = {"from_device": alice.party.device_id, "method": "m.sas.v1", "key_agreement_protocols": ["curve25519-hkdf-sha256"],
            "hashes": ["sha256"], "message_authentication_codes": [MAC_V2], "short_authentication_string": ["emoji"]}
    for number, change in enumerate([{"hashes": ["sha512"]}, {"key_agreement_protocols": ["curve25519"]},
                                     {"message_authentication_codes": ["hmac-sha256"]}, {"method": "m.reciprocate.v1"}]):
        bot.machine.receive(alice.party.user_id, PREFIX + "start", {**base, **change, "transaction_id": f"t{number}"})
        verification = bot.notices("request")[-1]
        bot.machine.accept(verification)
        assert verification.cancel_code == UNKNOWN_METHOD, change
    assert cancels(bot) == [UNKNOWN_METHOD] * 4
    bot.machine.outbox.clear()
    bot.machine.receive(alice.party.user_id, PREFIX + "start", {**base, "hashes": "sha256", "transaction_id": "bad"})
    bot.machine.accept(bot.notices("request")[-1])
    assert cancels(bot) == [INVALID_MESSAGE]


def test_a_request_without_sas_or_too_old_is_ignored(clock: Clock) -> None:
    bot, alice = pair(clock)
    request = {"from_device": alice.party.device_id, "methods": ["m.qr_code.scan.v1"], "timestamp": int(clock.now * 1000),
               "transaction_id": "qr"}
    bot.machine.receive(alice.party.user_id, PREFIX + "request", request)
    old = {**request, "methods": ["m.sas.v1"], "timestamp": int((clock.now - 601) * 1000), "transaction_id": "old"}
    bot.machine.receive(alice.party.user_id, PREFIX + "request", old)
    bot.machine.receive(alice.party.user_id, PREFIX + "ready", {"from_device": alice.party.device_id, "methods": ["m.sas.v1"],
                                                                "transaction_id": "old"})
    assert bot.notices("request") == [] and bot.machine.outbox == []


def test_a_message_out_of_order_is_unexpected(clock: Clock) -> None:
    bot, alice = pair(clock)
    verification, _ = bot_accepts_her_request(bot, alice)
    bot.machine.outbox.clear()
    bot.machine.receive(alice.party.user_id, PREFIX + "mac", {"transaction_id": verification.transaction_id, "mac": {}, "keys": "x"})
    assert verification.cancel_code == UNEXPECTED_MESSAGE and cancels(bot) == [UNEXPECTED_MESSAGE]


def test_a_done_that_overtakes_its_mac_waits_for_the_mac(clock: Clock) -> None:
    """A client sending its MAC and done at once (matrix-js-sdk does) may have them delivered in either order."""
    bot, alice = pair(clock)
    on_bot, on_alice = to_sas(bot, alice, alice_requests=False)
    bot.machine.confirm(on_bot)
    assert deliver(bot, alice) == ["mac"]
    alice.machine.confirm(on_alice)
    mac, done = alice.machine.outbox
    assert (mac.event_type, done.event_type) == (PREFIX + "mac", PREFIX + "done")
    bot.machine.receive(alice.party.user_id, done.event_type, done.content)
    assert not on_bot.finished and bot.machine.outbox == []
    bot.machine.receive(alice.party.user_id, mac.event_type, mac.content)
    assert on_bot.verified and bot.notices("verified") == [on_bot]
    assert [m.event_type for m in bot.machine.outbox] == [PREFIX + "done"]


def test_a_mac_that_overtakes_its_key_is_checked_once_the_key_is_in(clock: Clock) -> None:
    """The bot started; her client sends its key and, her user confirming at once, its MAC: the server
    may order the two requests either way."""
    bot, alice = pair(clock)
    on_bot = bot.machine.request(alice.party.user_id, [alice.party.device_id])
    deliver(bot, alice)
    [on_alice] = alice.notices("request")
    alice.machine.accept(on_alice)
    assert deliver(alice, bot) == ["ready"]
    assert deliver(bot, alice) == ["start"]
    assert deliver(alice, bot) == ["accept"]
    assert deliver(bot, alice) == ["key"]
    alice.machine.confirm(on_alice)
    key, mac = alice.machine.outbox
    alice.machine.outbox = []
    assert (key.event_type, mac.event_type) == (PREFIX + "key", PREFIX + "mac")
    bot.machine.receive(alice.party.user_id, mac.event_type, mac.content)
    assert on_bot.phase is Phase.ACCEPTED and bot.machine.outbox == []
    bot.machine.receive(alice.party.user_id, key.event_type, key.content)
    assert on_bot.phase is Phase.COMPARING and on_bot.their_mac_checked and on_bot.emoji == on_alice.emoji
    bot.machine.confirm(on_bot)
    assert exchange(bot, alice) == ["mac", "done", "done"]
    assert on_bot.verified and on_alice.verified


def test_a_mac_before_she_can_have_the_bot_s_key_is_unexpected(clock: Clock) -> None:
    """She started: the bot sends its key only after hers, so a MAC before her key cannot be hers in order."""
    bot, alice = pair(clock)
    on_bot, _ = bot_accepts_her_request(bot, alice)
    assert deliver(bot, alice) == ["ready"]
    assert deliver(alice, bot) == ["start"]
    assert on_bot.phase is Phase.ACCEPTED and [m.event_type for m in bot.machine.outbox] == [PREFIX + "accept"]
    bot.machine.outbox.clear()
    bot.machine.receive(alice.party.user_id, PREFIX + "mac", {"transaction_id": on_bot.transaction_id,
                                                              "mac": {"ed25519:ALICEPHONE": "x"}, "keys": "y"})
    assert on_bot.cancel_code == UNEXPECTED_MESSAGE and cancels(bot) == [UNEXPECTED_MESSAGE]


def test_a_done_before_the_bot_s_mac_is_unexpected(clock: Clock) -> None:
    bot, alice = pair(clock)
    on_bot, _ = to_sas(bot, alice)
    bot.machine.receive(alice.party.user_id, PREFIX + "done", {"transaction_id": on_bot.transaction_id})
    assert on_bot.cancel_code == UNEXPECTED_MESSAGE and cancels(bot) == [UNEXPECTED_MESSAGE]


def test_a_device_the_sender_does_not_have_is_a_user_mismatch(clock: Clock) -> None:
    bot, alice = pair(clock)
    bot.machine.receive(alice.party.user_id, PREFIX + "request", {
        "from_device": "NOTHERS", "methods": ["m.sas.v1"], "timestamp": int(clock.now * 1000), "transaction_id": "t"})
    assert cancels(bot) == [USER_MISMATCH] and bot.notices("request") == []


def test_a_second_verification_from_the_same_device_cancels_both(clock: Clock) -> None:
    bot, alice = pair(clock)
    first = alice.machine.request(bot.party.user_id, [bot.party.device_id])
    deliver(alice, bot)
    second = alice.machine.request(bot.party.user_id, [bot.party.device_id])
    deliver(alice, bot)
    assert cancels(bot) == [UNEXPECTED_MESSAGE, UNEXPECTED_MESSAGE]
    deliver(bot, alice)
    assert first.cancel_code == second.cancel_code == UNEXPECTED_MESSAGE


def test_a_request_to_every_device_is_cancelled_on_the_others_once_one_is_ready(clock: Clock) -> None:
    bot = Side("@bot:example.org", "BOTDEVICE", clock)
    phone, laptop = Side("@alice:example.org", "PHONE", clock), Side("@alice:example.org", "LAPTOP", clock)
    for device in (phone, laptop):
        bot.meets(device)
        device.meets(bot)
    verification = bot.machine.request("@alice:example.org", ["PHONE", "LAPTOP"])
    assert verification.device_id is None
    deliver(bot, phone, laptop)
    phone.machine.accept(phone.notices("request")[0])
    deliver(phone, bot)
    assert verification.device_id == "PHONE"
    deliver(bot, phone, laptop)
    assert laptop.notices("request")[0].cancel_code == ACCEPTED and phone.notices("request")[0].phase is Phase.ACCEPTED


def test_when_both_start_the_smaller_user_s_start_counts(clock: Clock) -> None:
    bot, alice = pair(clock)  # "@alice..." < "@bot...": her start wins
    verification = bot.machine.request(alice.party.user_id, [alice.party.device_id])
    deliver(bot, alice)
    on_alice = alice.notices("request")[0]
    alice.machine.accept(on_alice)
    deliver(alice, bot)
    assert [m.event_type for m in bot.machine.outbox] == [PREFIX + "start"] and verification.we_started
    bot.machine.outbox.clear()
    start = {"from_device": alice.party.device_id, "method": "m.sas.v1", "key_agreement_protocols": ["curve25519-hkdf-sha256"],
             "hashes": ["sha256"], "message_authentication_codes": [MAC_V2], "short_authentication_string": ["emoji", "decimal"],
             "transaction_id": verification.transaction_id}
    bot.machine.receive(alice.party.user_id, PREFIX + "start", start)
    assert not verification.we_started and [m.event_type for m in bot.machine.outbox] == [PREFIX + "accept"]


def test_a_cancellation_received_ends_the_verification_with_its_code(clock: Clock) -> None:
    bot, alice = pair(clock)
    on_bot, on_alice = to_sas(bot, alice)
    alice.machine.cancel(on_alice, USER, "changed my mind")
    deliver(alice, bot)
    assert on_bot.phase is Phase.CANCELLED and on_bot.cancel_code == USER and on_bot.cancelled_by_them
    assert bot.machine.outbox == [] and bot.notices("cancelled") == [on_bot]


def test_a_verification_times_out_after_ten_minutes(clock: Clock) -> None:
    bot, alice = pair(clock)
    on_bot, _ = to_sas(bot, alice)
    clock.now += 599
    bot.machine.expire()
    assert bot.machine.outbox == []
    clock.now += 2
    bot.machine.expire()
    assert on_bot.cancel_code == TIMED_OUT and cancels(bot) == [TIMED_OUT]
    clock.now += 601
    bot.machine.expire()
    assert bot.machine.active == {}


def test_a_verification_that_stays_busy_still_ends_after_ten_minutes(clock: Clock) -> None:
    bot, alice = pair(clock)
    verification = bot.machine.request(alice.party.user_id, [alice.party.device_id])
    for _ in range(3):
        clock.now += 250
        verification.last_activity = clock.now
        bot.machine.expire()
    assert verification.cancel_code == TIMED_OUT


# --- trust ------------------------------------------------------------------------


def test_a_device_cross_signed_under_a_verified_master_key() -> None:
    store = CryptoStore(None)
    user = "@alice:example.org"
    keys = CrossSigningKeys(store, user)
    keys.generate()
    published = keys.upload_body()
    phone = OlmAccount(store, user, "PHONE")
    tablet = OlmAccount(CryptoStore(None), user, "TABLET")
    registry = DeviceRegistry(store)
    registry.apply_query({"device_keys": {user: {"PHONE": keys.sign_device(phone.device_keys()), "TABLET": tablet.device_keys()}},
                          "master_keys": {user: published["master_key"]},
                          "self_signing_keys": {user: published["self_signing_key"]}}, [user])
    master = registry.published_master_key(user)
    assert master == keys.master_public
    signed, unsigned = registry.device(user, "PHONE"), registry.device(user, "TABLET")
    assert signed is not None and unsigned is not None
    assert registry.cross_signed(signed, master) and not registry.cross_signed(unsigned, master)
    assert not registry.cross_signed(signed, vodozemac.Account().ed25519_key.to_base64())
    assert registry.trusted_master(user) is None
    registry.trust_master(user, master)
    assert DeviceRegistry(store).trusted_master(user) == master


# --- in a room --------------------------------------------------------------------


def deliver_in_room(source: Side, target: Side, room_id: str) -> list[str]:
    """Hand the source's room messages to the target as room events (the transaction: the referenced request)."""
    delivered = []
    outbox, source.machine.outbox = source.machine.outbox, []
    for message in outbox:
        assert message.room_id == room_id and "transaction_id" not in message.content
        reference = message.content["m.relates_to"]
        assert reference["rel_type"] == "m.reference"
        target.machine.receive(source.party.user_id, message.event_type, message.content,
                               (room_id, reference["event_id"], int(target.machine.clock() * 1000)))
        delivered.append(message.event_type.removeprefix(PREFIX))
    return delivered


def test_a_verification_in_a_room_references_the_request_event(clock: Clock) -> None:
    bot, alice = pair(clock)
    room = "!dm:example.org"
    content = bot.machine.request_content(alice.party.user_id)
    assert content["msgtype"] == PREFIX + "request" and content["to"] == alice.party.user_id
    on_bot = bot.machine.requested_in_room(alice.party.user_id, room, "$request")
    assert on_bot.device_id is None and bot.machine.outbox == []
    alice.machine.receive(bot.party.user_id, PREFIX + "request", content, (room, "$request", int(clock.now * 1000)))
    [on_alice] = alice.notices("request")
    assert on_alice.room_id == room and on_alice.transaction_id == "$request"
    alice.machine.accept(on_alice)
    kinds = []
    while bot.machine.outbox or alice.machine.outbox:
        kinds += deliver_in_room(alice, bot, room) + deliver_in_room(bot, alice, room)
    assert kinds == ["ready", "start", "accept", "key", "key"] and on_bot.device_id == alice.party.device_id
    assert on_bot.emoji == on_alice.emoji
    bot.machine.confirm(on_bot)
    alice.machine.confirm(on_alice)
    while bot.machine.outbox or alice.machine.outbox:
        deliver_in_room(alice, bot, room)
        deliver_in_room(bot, alice, room)
    assert on_bot.verified and on_alice.verified


def test_in_a_room_an_unknown_transaction_is_someone_else_s_and_is_left_alone(clock: Clock) -> None:
    bot, alice = pair(clock)
    bot.machine.receive(alice.party.user_id, PREFIX + "key", {"key": "k", "m.relates_to": {"rel_type": "m.reference",
                                                                                         "event_id": "$theirs"}},
                        ("!room:example.org", "$theirs", int(clock.now * 1000)))
    assert bot.machine.outbox == []
    # a to-device message with the ID of a room verification is not that verification
    bot.machine.requested_in_room(alice.party.user_id, "!room:example.org", "$mine")
    bot.machine.receive(alice.party.user_id, PREFIX + "ready", {"from_device": alice.party.device_id, "methods": ["m.sas.v1"],
                                                                "transaction_id": "$mine"})
    assert cancels(bot) == [UNKNOWN_TRANSACTION]
