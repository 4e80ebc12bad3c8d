"""The computations of SAS verification (``m.sas.v1``): commitment, short authentication strings, MACs.

Only what the spec names for the method: key agreement
``curve25519-hkdf-sha256``, hash ``sha256``, MACs ``hkdf-hmac-sha256.v2`` (and
the deprecated ``hkdf-hmac-sha256``, whose base64 libolm got wrong), the
``emoji`` and ``decimal`` strings. The Diffie-Hellman exchange, HKDF and HMAC
are vodozemac's (``Sas``, ``EstablishedSas``); this module builds the inputs
the spec defines (the info strings, the canonical JSON of the start message)
around them. No state: :mod:`granolin.e2ee.verification` holds it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import vodozemac

from .encoding import encode_base64
from .olm import canonical_json

SAS_V1 = "m.sas.v1"
KEY_AGREEMENT = "curve25519-hkdf-sha256"
HASH = "sha256"
MAC_V2 = "hkdf-hmac-sha256.v2"
MAC_V1 = "hkdf-hmac-sha256"
MAC_METHODS = (MAC_V2, MAC_V1)
"""In order of preference: the deprecated one only when the other device knows no other."""
SAS_METHODS = ("emoji", "decimal")

EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"), ("🦄", "Unicorn"), ("🐷", "Pig"),
    ("🐘", "Elephant"), ("🐰", "Rabbit"), ("🐼", "Panda"), ("🐓", "Rooster"), ("🐧", "Penguin"), ("🐢", "Turtle"),
    ("🐟", "Fish"), ("🐙", "Octopus"), ("🦋", "Butterfly"), ("🌷", "Flower"), ("🌳", "Tree"), ("🌵", "Cactus"),
    ("🍄", "Mushroom"), ("🌏", "Globe"), ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"), ("🍌", "Banana"),
    ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"), ("🎂", "Cake"), ("❤️", "Heart"),
    ("😀", "Smiley"), ("🤖", "Robot"), ("🎩", "Hat"), ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"),
    ("👍", "Thumbs Up"), ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"), ("🎁", "Gift"), ("💡", "Light Bulb"),
    ("📕", "Book"), ("✏️", "Pencil"), ("📎", "Paperclip"), ("✂️", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"),
    ("🔨", "Hammer"), ("☎️", "Telephone"), ("🏁", "Flag"), ("🚂", "Train"), ("🚲", "Bicycle"), ("✈️", "Aeroplane"),
    ("🚀", "Rocket"), ("🏆", "Trophy"), ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"),
    ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)
"""The spec's table: the emoji of each 6-bit number, with its description."""


class SasError(ValueError):
    """A public key or MAC that cannot be used (malformed)."""


@dataclass(frozen=True, slots=True)
class Party:
    """One side of a verification, as the info strings name it."""

    user_id: str
    device_id: str


@dataclass(frozen=True, slots=True)
class ShortAuthString:
    """What both people compare: seven emoji (index in the spec's table, emoji, description) and three numbers."""

    emoji_indices: tuple[int, ...]
    decimals: tuple[int, int, int]

    @property
    def emoji(self) -> list[tuple[str, str]]:
        """The seven emoji with their descriptions, as the spec's table gives them."""
        return [EMOJI[index] for index in self.emoji_indices]


def commitment(public_key: str, start_content: Mapping[str, Any]) -> str:
    """The ``commitment`` of an accept: unpadded base64 of SHA-256(public key in base64 + canonical JSON of the start)."""
    return encode_base64(hashlib.sha256(public_key.encode() + canonical_json(start_content)).digest())


def sas_info(transaction_id: str, starter: Party, starter_key: str, acceptor: Party, acceptor_key: str) -> str:
    """The HKDF info of the short authentication strings (``curve25519-hkdf-sha256``)."""
    return "|".join(("MATRIX_KEY_VERIFICATION_SAS", starter.user_id, starter.device_id, starter_key,
                     acceptor.user_id, acceptor.device_id, acceptor_key, transaction_id))


def mac_info(transaction_id: str, sender: Party, receiver: Party, key_id: str) -> str:
    """The HKDF info of the MAC of one key (``key_id``) or of the key list (``KEY_IDS``) that ``sender`` sends."""
    return "".join(("MATRIX_KEY_VERIFICATION_MAC", sender.user_id, sender.device_id, receiver.user_id, receiver.device_id,
                    transaction_id, key_id))


class SasKeys:
    """One side's ephemeral Curve25519 key pair, then the secret shared with the other side."""

    def __init__(self) -> None:
        self._sas: vodozemac.Sas | None = vodozemac.Sas()
        self.public_key: str = self._sas.public_key.to_base64()
        self._established: vodozemac.EstablishedSas | None = None

    def agree(self, their_public_key: str) -> None:
        """The Diffie-Hellman exchange with the other side's public key (SasError when it is not a key)."""
        assert self._sas is not None, "the key agreement is done once"
        try:
            their_key = vodozemac.Curve25519PublicKey.from_base64(their_public_key)
            self._established = self._sas.diffie_hellman(their_key)
        except (vodozemac.KeyException, vodozemac.SasException, TypeError, ValueError) as exc:
            raise SasError(f"the public key is not a Curve25519 key: {exc}") from None
        self._sas = None

    @property
    def established(self) -> vodozemac.EstablishedSas:
        assert self._established is not None, "the keys were not agreed yet"
        return self._established

    def short_auth_string(self, info: str) -> ShortAuthString:
        found = self.established.bytes(info)
        decimals = tuple(found.decimals)
        return ShortAuthString(tuple(found.emoji_indices), (decimals[0], decimals[1], decimals[2]))

    def mac(self, method: str, value: str, info: str) -> str:
        if method == MAC_V1:
            return self.established.calculate_mac_invalid_base64(value, info)
        return self.established.calculate_mac(value, info)

    def mac_matches(self, method: str, value: str, info: str, tag: str) -> bool:
        return hmac.compare_digest(self.mac(method, value, info), tag) if isinstance(tag, str) else False
