"""Events as clients see them (client-server API "ClientEvent"), and event_fields filtering."""

from __future__ import annotations

from typing import Any

from ranvier.events.model import REDACTION, Event


def serialize_event(
    event: Event,
    *,
    now_ms: int,
    as_client: bool = True,
    transaction_id: str | None = None,
    prev_content: dict | None = None,
    redacted_because: Event | dict | None = None,
    relations: dict | None = None,
    event_fields: list[str] | None = None,
    replaces_state: str | None = None,
    membership: str | None = None,
) -> dict:
    """The event as sent to a client: the client format, or the federation PDU when
    `as_client` is False (filter `event_format: federation`).

    `unsigned` is built here, never copied from the PDU, so that server-to-server
    data does not leak to clients: `age` is computed from `now_ms`, and the other
    optional arguments fill the keys of the same names (`relations` becomes
    `m.relations`). A redaction carries `redacts` both at the top level and in
    content, whatever its room version, as v11 asks for compatibility.
    """
    pdu = event.pdu  # read directly: a big /sync serialises tens of thousands of events
    unsigned: dict[str, Any] = {"age": now_ms - pdu.get("origin_server_ts", 0)}
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if prev_content is not None:
        unsigned["prev_content"] = prev_content
    if replaces_state is not None:
        unsigned["replaces_state"] = replaces_state
    if membership is not None:
        unsigned["membership"] = membership
    if redacted_because is not None:
        unsigned["redacted_because"] = (
            serialize_event(redacted_because, now_ms=now_ms, as_client=as_client)
            if isinstance(redacted_because, Event)
            else redacted_because
        )
    if relations:
        unsigned["m.relations"] = relations

    if as_client:
        content = pdu.get("content")
        serialized: dict[str, Any] = {
            "content": content if isinstance(content, dict) else {},
            "event_id": event.event_id,
            "origin_server_ts": pdu.get("origin_server_ts", 0),
            "room_id": pdu.get("room_id") or event.room_id,
            "sender": pdu["sender"],
            "type": pdu["type"],
            "unsigned": unsigned,
        }
        if "state_key" in pdu:
            serialized["state_key"] = pdu["state_key"]
        if pdu["type"] == REDACTION and event.redacts is not None:
            serialized["redacts"] = event.redacts
            serialized["content"] = {**event.content, "redacts": event.redacts}
    else:
        serialized = {**event.pdu, "unsigned": {**event.unsigned, **unsigned}}

    if event_fields is not None:
        return filter_event_fields(serialized, event_fields)
    return serialized


def split_field_path(path: str) -> list[str]:
    """Split a dot-separated property path (appendices): `\\.` is a literal dot, `\\\\` a
    literal backslash, and any other backslash stays as it is."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(path):
        char = path[index]
        if char == "\\" and index + 1 < len(path) and path[index + 1] in ".\\":
            current.append(path[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def filter_event_fields(event_dict: dict, fields: list[str]) -> dict:
    """Keep only the listed dotted paths of `event_dict` (filter `event_fields`); paths
    that do not exist are skipped."""
    filtered: dict[str, Any] = {}
    for path in fields:
        parts = split_field_path(path)
        source: Any = event_dict
        for part in parts:
            if not isinstance(source, dict) or part not in source:
                break
            source = source[part]
        else:
            target = filtered
            for part in parts[:-1]:
                existing = target.get(part)
                if not isinstance(existing, dict):
                    existing = target[part] = {}
                target = existing
            target[parts[-1]] = source
    return filtered
