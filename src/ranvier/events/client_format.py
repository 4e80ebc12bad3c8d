"""Events as clients see them (client-server API "ClientEvent"), and event_fields filtering."""

from __future__ import annotations

from typing import Any

import orjson

from ranvier.events.model import REDACTION, Event


def client_unsigned(
    event: Event,
    *,
    now_ms: int,
    as_client: bool = True,
    transaction_id: str | None = None,
    prev_content: dict | None = None,
    redacted_because: Event | dict | None = None,
    relations: dict | None = None,
    replaces_state: str | None = None,
    membership: str | None = None,
) -> dict[str, Any]:
    """The `unsigned` object of an event as sent to a client. It is built here, never
    copied from the PDU, so that server-to-server data does not leak to clients: `age` is
    computed from `now_ms`, and the optional arguments fill the keys of the same names
    (`relations` becomes `m.relations`)."""
    unsigned: dict[str, Any] = {"age": now_ms - event.pdu.get("origin_server_ts", 0)}
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
            serialize_event(redacted_because, client_unsigned(redacted_because, now_ms=now_ms), as_client=as_client)
            if isinstance(redacted_because, Event)
            else redacted_because
        )
    if relations:
        unsigned["m.relations"] = relations
    return unsigned


def serialize_event(event: Event, unsigned: dict[str, Any], *, as_client: bool = True,
                    event_fields: list[str] | None = None, with_room_id: bool = True) -> dict:
    """The event as sent to a client, with this `unsigned` (`client_unsigned`): the client
    format (ClientEvent, or without its `room_id` where the room is implied, as in
    /sync), or the federation PDU when `as_client` is False (filter `event_format:
    federation`). A redaction carries `redacts` both at the top level and in content,
    whatever its room version, as v11 asks for compatibility."""
    if as_client:
        serialized = _client_fields(event, with_room_id=with_room_id)
        serialized["unsigned"] = unsigned
    else:
        serialized = {**event.pdu, "unsigned": {**event.unsigned, **unsigned}}
    if event_fields is not None:
        return filter_event_fields(serialized, event_fields)
    return serialized


def encoded_sync_event(event: Event, unsigned: dict[str, Any]) -> orjson.Fragment:
    """The event in /sync's form (ClientEventWithoutRoomID: the room is the key it is
    listed under) as JSON, ready to be embedded in an answer. A state event's fields but
    `unsigned` are encoded once and kept on it, since the same state events are served
    again and again (every initial sync lists a room's state); a message is encoded
    once per wake-up of its readers anyway, and keeping that would only cost memory."""
    fields = event.sync_json
    if fields is None:
        fields = orjson.dumps(_client_fields(event, with_room_id=False))[:-1]
        if "state_key" in event.pdu:
            event.sync_json = fields
    return orjson.Fragment(b"".join((fields, b',"unsigned":', orjson.dumps(unsigned), b"}")))


def _client_fields(event: Event, *, with_room_id: bool) -> dict[str, Any]:
    pdu = event.pdu  # read directly: a big /sync serialises tens of thousands of events
    content = pdu.get("content")
    fields: dict[str, Any] = {
        "content": content if isinstance(content, dict) else {},
        "event_id": event.event_id,
        "origin_server_ts": pdu.get("origin_server_ts", 0),
        "sender": pdu["sender"],
        "type": pdu["type"],
    }
    if with_room_id:
        fields["room_id"] = pdu.get("room_id") or event.room_id
    if "state_key" in pdu:
        fields["state_key"] = pdu["state_key"]
    if pdu["type"] == REDACTION and event.redacts is not None:
        fields["redacts"] = event.redacts
        fields["content"] = {**event.content, "redacts": event.redacts}
    return fields


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
