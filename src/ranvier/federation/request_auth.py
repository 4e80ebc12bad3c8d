"""The X-Matrix `Authorization` header of server-server requests (server-server API,
"Request Authentication"): the method, target, origin, destination and body signed with
the origin server's key. Pure: signing and parsing, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ranvier.events.signing import SigningKey, sign_json

_SCHEME = "X-Matrix"
#: name=value pairs, the value a quoted string (with backslash escapes) or a token; colons
#: are allowed unquoted, as older servers send them.
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')


@dataclass(frozen=True)
class XMatrix:
    origin: str
    destination: str | None
    key_id: str
    signature: str


def request_json(method: str, uri: str, origin: str, destination: str, content: Any | None) -> dict[str, Any]:
    """The JSON object a request's signature covers."""
    signed: dict[str, Any] = {"method": method, "uri": uri, "origin": origin, "destination": destination}
    if content is not None:
        signed["content"] = content
    return signed


def authorization_header(origin: str, destination: str, signing_key: SigningKey, method: str, uri: str,
                         content: Any | None) -> str:
    """The header value for a request from `origin` to `destination`."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, signing_key)
    signature = signed["signatures"][origin][signing_key.key_id]
    return f'{_SCHEME} origin="{origin}",destination="{destination}",key="{signing_key.key_id}",sig="{signature}"'


def parse_authorization(header: str) -> XMatrix:
    """The parameters of an X-Matrix header; ValueError when it is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != _SCHEME:
        raise ValueError("not an X-Matrix authorization")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            raise ValueError("malformed X-Matrix parameters")
        quoted, token = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
        params.setdefault(match.group(1).lower(), value)
        position = match.end()
    try:
        return XMatrix(params["origin"], params.get("destination"), params["key"], params["sig"])
    except KeyError as exc:
        raise ValueError(f"X-Matrix authorization without {exc.args[0]}") from None
