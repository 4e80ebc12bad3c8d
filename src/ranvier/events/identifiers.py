"""Grammar of Matrix identifiers (appendices: server names, user IDs).

Pure functions, so that every layer (web validation, the room server, the CLI)
applies one and the same rule.
"""

from __future__ import annotations

import ipaddress
import re

MAX_ID_BYTES = 255

_PORT = r"(?::(?P<port>[0-9]{1,5}))?"
#: Matched with fullmatch: `$` would also accept a trailing newline.
_SERVER_NAME_RE = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[A-Za-z0-9.-]{1,255})" + _PORT
)
_NEW_LOCALPART_RE = re.compile(r"[a-z0-9._=/+-]+")
#: The media ID of an mxc:// URI (content repository module: alphanumerics, `_` and `-`).
MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")


class InvalidIdentifier(ValueError):
    """An identifier does not follow the spec's grammar; the message says why."""


def is_valid_server_name(server_name: str) -> bool:
    """True if `server_name` is a hostname, IPv4 or [IPv6] literal with an optional port."""
    match = _SERVER_NAME_RE.fullmatch(server_name)
    if not match:
        return False
    host = match.group("host")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    elif host[0].isdigit() and host.replace(".", "").isdigit() and host.count(".") == 3:
        if any(int(part) > 255 for part in host.split(".")):
            return False
    port = match.group("port")
    return port is None or 0 < int(port) < 65536


def split_id(identifier: str, sigil: str) -> tuple[str, str]:
    """Split `<sigil>localpart:domain` into (localpart, domain) or raise InvalidIdentifier."""
    if not isinstance(identifier, str) or not identifier.startswith(sigil):
        raise InvalidIdentifier(f"identifier must start with {sigil!r}")
    if len(identifier.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidIdentifier(f"identifier is longer than {MAX_ID_BYTES} bytes")
    localpart, sep, domain = identifier[1:].partition(":")
    if not sep or not is_valid_server_name(domain):
        raise InvalidIdentifier("identifier must have a valid server name after ':'")
    return localpart, domain


def parse_user_id(user_id: str) -> tuple[str, str]:
    """Parse any user ID accepted on the wire, historical localparts included.

    Historical localparts may hold any character except ':' and NUL; we accept them
    because existing rooms contain such senders.
    """
    localpart, domain = split_id(user_id, "@")
    if "\x00" in localpart:
        raise InvalidIdentifier("user ID localpart contains NUL")
    return localpart, domain


def is_valid_user_id(user_id: str) -> bool:
    """True if `user_id` parses as a (possibly historical) user ID."""
    try:
        parse_user_id(user_id)
    except InvalidIdentifier:
        return False
    return True


def check_new_localpart(localpart: str, server_name: str) -> str:
    """Validate a localpart for a new account; returns the full user ID.

    New accounts must use the current grammar (lowercase, digits, `-._=/+`) and the
    full ID must fit in 255 bytes.
    """
    if not localpart:
        raise InvalidIdentifier("user ID localpart must not be empty")
    if not _NEW_LOCALPART_RE.fullmatch(localpart):
        raise InvalidIdentifier("user ID may only contain a-z, 0-9 and the characters -._=/+")
    user_id = f"@{localpart}:{server_name}"
    if len(user_id.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidIdentifier(f"user ID is longer than {MAX_ID_BYTES} bytes")
    return user_id


def is_valid_mxc_uri(uri: str) -> bool:
    """True for `mxc://<server-name>/<media-id>` with the grammar the spec asks servers to
    hold such URIs to (no path traversal, no other characters)."""
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        return False
    server_name, sep, media_id = uri[len("mxc://"):].partition("/")
    return bool(sep) and is_valid_server_name(server_name) and MEDIA_ID_RE.fullmatch(media_id) is not None


def domain_of(identifier: str) -> str | None:
    """The server name of a `<sigil>localpart:domain` identifier, or None if it has no valid one.

    Used by the auth rules, which compare the domains of senders, room IDs and
    event IDs; domain-less IDs (v3+ event IDs, v12 room IDs) give None.
    """
    try:
        return split_id(identifier, identifier[:1])[1]
    except (InvalidIdentifier, TypeError):
        return None


def _is_opaque_id(identifier: str, sigil: str) -> bool:
    """`<sigil>opaque` with no ':' or NUL in the opaque part, within the length limit."""
    return (
        isinstance(identifier, str)
        and identifier.startswith(sigil)
        and len(identifier) > 1
        and ":" not in identifier
        and "\x00" not in identifier
        and len(identifier.encode("utf-8")) <= MAX_ID_BYTES
    )


def _is_id_with_domain(identifier: str, sigil: str) -> bool:
    try:
        localpart, _ = split_id(identifier, sigil)
    except InvalidIdentifier:
        return False
    return "\x00" not in localpart


def is_valid_room_id(room_id: str) -> bool:
    """True for `!opaque:domain` (room versions 1-11) or domain-less `!opaque` (v12+)."""
    return _is_id_with_domain(room_id, "!") or _is_opaque_id(room_id, "!")


def is_valid_room_alias(alias: str) -> bool:
    """True for `#localpart:domain` whose localpart has no NUL."""
    return _is_id_with_domain(alias, "#")
