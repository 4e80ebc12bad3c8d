"""Application service registrations: the YAML files a bridge or bot hands the server
admin (the format Synapse, Conduit and Dendrite read), parsed and checked, and the pure
questions asked of them: whose token, which users, aliases and rooms a service claims.

A namespace's regex is matched at the start of the user ID, alias or room ID (as Synapse
matches it, so a registration written for Synapse means the same here); most registrations
anchor both ends anyway (`@_discord_.*:example\\.org`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ranvier.config import ConfigError
from ranvier.events.identifiers import is_valid_user_id

#: The localpart characters a registration's `sender_localpart` may use (the grammar of
#: user IDs this server creates).
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")


@dataclass(frozen=True)
class Namespace:
    regex: re.Pattern
    exclusive: bool

    def matches(self, value: str) -> bool:
        return self.regex.match(value) is not None


@dataclass(frozen=True)
class Registration:
    """One application service, as registered by the server admin."""

    id: str
    #: Where transactions and queries go; None for a service that only uses the client API.
    url: str | None
    as_token: str
    hs_token: str
    #: The service's own user (`@sender_localpart:server`), created at start.
    sender: str
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    #: False exempts the service's users from the request rate limits.
    rate_limited: bool = True
    #: Typing notifications, receipts and presence pushed in transactions too (MSC2409).
    receive_ephemeral: bool = False
    #: The third-party protocols the service bridges (`irc`, `gitter` ...): asked for their
    #: metadata and lookups (appservice/thirdparty.py).
    protocols: tuple[str, ...] = field(default=())

    def claims_user(self, user_id: str, *, exclusive_only: bool = False) -> bool:
        """Whether the user is the service's sender or in its user namespaces."""
        if user_id == self.sender and not exclusive_only:
            return True
        return any(ns.matches(user_id) for ns in self.users if ns.exclusive or not exclusive_only)

    def claims_alias(self, alias: str, *, exclusive_only: bool = False) -> bool:
        return any(ns.matches(alias) for ns in self.aliases if ns.exclusive or not exclusive_only)

    def claims_room(self, room_id: str) -> bool:
        return any(ns.matches(room_id) for ns in self.rooms)


def parse_registration(data: Any, server_name: str, source: str) -> Registration:
    """A registration from its YAML mapping; ConfigError naming `source` and the field when
    a required field is missing or a value is wrong."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an application service registration must be a mapping")

    def text(name: str, *, required: bool = True) -> str | None:
        value = data.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {name} must be a non-empty string")
        return value

    service_id, as_token, hs_token = text("id"), text("as_token"), text("hs_token")
    sender_localpart = text("sender_localpart")
    if not _LOCALPART.fullmatch(sender_localpart) or not is_valid_user_id(f"@{sender_localpart}:{server_name}"):
        raise ConfigError(f"{source}: sender_localpart {sender_localpart!r} is not a valid localpart")
    url = text("url", required=False)
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: url must start with http:// or https://, or be null")
    namespaces = data.get("namespaces", {})
    if not isinstance(namespaces, dict):
        raise ConfigError(f"{source}: namespaces must be a mapping")
    protocols = data.get("protocols") or []
    if not isinstance(protocols, list) or not all(isinstance(p, str) and p for p in protocols):
        raise ConfigError(f"{source}: protocols must be a list of non-empty strings")
    flags = {}
    for name, default in (("rate_limited", True), ("receive_ephemeral", False)):
        value = data.get(name, data.get("de.sorunome.msc2409.push_ephemeral", default)
                         if name == "receive_ephemeral" else default)
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be true or false")
        flags[name] = value
    return Registration(
        id=service_id, url=url.rstrip("/") if url else None, as_token=as_token, hs_token=hs_token,
        sender=f"@{sender_localpart}:{server_name}",
        users=_namespaces(namespaces, "users", source), aliases=_namespaces(namespaces, "aliases", source),
        rooms=_namespaces(namespaces, "rooms", source), protocols=tuple(dict.fromkeys(protocols)), **flags,
    )


def _namespaces(namespaces: dict[str, Any], kind: str, source: str) -> tuple[Namespace, ...]:
    entries = namespaces.get(kind) or []
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: namespaces.{kind} must be a list")
    parsed = []
    for index, entry in enumerate(entries):
        where = f"{source}: namespaces.{kind}[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("regex"), str):
            raise ConfigError(f"{where} needs a regex (a string)")
        exclusive = entry.get("exclusive", False)
        if not isinstance(exclusive, bool):
            raise ConfigError(f"{where}.exclusive must be true or false")
        try:
            parsed.append(Namespace(re.compile(entry["regex"]), exclusive))
        except re.error as exc:
            raise ConfigError(f"{where}.regex is not a valid regular expression ({exc})") from None
    return tuple(parsed)


def load_registrations(paths: list[str], server_name: str) -> list[Registration]:
    """The registrations of these YAML files; ConfigError when one cannot be read or two
    share an ID, a token or a sender (a token must name one service)."""
    import yaml

    registrations = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except OSError as exc:
            raise ConfigError(f"application service registration {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"application service registration {path}: not valid YAML "
                              f"({exc.__class__.__name__})") from None
        registrations.append(parse_registration(data, server_name, path))
    for name in ("id", "as_token", "hs_token", "sender"):
        values = [getattr(registration, name) for registration in registrations]
        if len(set(values)) != len(values):
            raise ConfigError(f"application services: two registrations share one {name}")
    return registrations
