"""Server ACLs (`m.room.server_acl`): which servers may take part in a room. Pure."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any, Mapping

from ranvier.federation.discovery import split_server_name

SERVER_ACL = ("m.room.server_acl", "")


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """A case-insensitive glob (`*` any run, `?` one character) matched on the whole name."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.IGNORECASE)


def _matches(patterns: Any, host: str) -> bool:
    return isinstance(patterns, list) and any(isinstance(p, str) and _glob(p).fullmatch(host) for p in patterns)


def acl_allows(content: Mapping[str, Any], server_name: str) -> bool:
    """The ACL's verdict on a server (its port never counts)."""
    host, _ = split_server_name(server_name)
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if is_ip and content.get("allow_ip_literals") is False:
        return False
    if _matches(content.get("deny"), host):
        return False
    return _matches(content.get("allow"), host)


def server_allowed(state: Mapping[tuple[str, str], Any], server_name: str) -> bool:
    """Whether the room whose state this is lets the server take part (no ACL: yes)."""
    acl = state.get(SERVER_ACL)
    return acl is None or acl_allows(acl.content, server_name)
