"""Another server's answer to `GET /_matrix/federation/v1/hierarchy/{roomId}`, checked
before the walk uses it (pure). The answer is untrusted: each entry keeps only the fields
of the spec's room summary, each of the type the spec gives (a field of another type, or
a string longer than `MAX_STRING`, is dropped; an entry without a valid room ID, member
count or join rule is dropped whole), and the lists are cut at `MAX_ITEMS`. The requested
room's own entry must name that room, else the answer is not used at all."""

from __future__ import annotations

from typing import Any

from ranvier.events.identifiers import is_valid_room_id
from ranvier.rooms.hierarchy import SPACE_CHILD, RemoteSpace, valid_via

#: How many children, child events, allowed rooms or inaccessible rooms an answer may list.
MAX_ITEMS = 500
#: The longest string field kept (names, topics, aliases, URLs).
MAX_STRING = 4096
_STRINGS = ("name", "topic", "avatar_url", "canonical_alias", "room_type", "encryption", "room_version")
_FLAGS = ("world_readable", "guest_can_join")


def _room_ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [room_id for room_id in value[:MAX_ITEMS] if isinstance(room_id, str) and is_valid_room_id(room_id)]


def checked_child_event(value: Any) -> dict[str, Any] | None:
    """A stripped m.space.child event with its `origin_server_ts`, or None."""
    if not isinstance(value, dict) or value.get("type") != SPACE_CHILD:
        return None
    state_key, content, sender, ts = (value.get(key) for key in ("state_key", "content", "sender", "origin_server_ts"))
    if not (isinstance(state_key, str) and is_valid_room_id(state_key) and isinstance(content, dict)
            and valid_via(content) and isinstance(sender, str) and type(ts) is int):
        return None
    return {"type": SPACE_CHILD, "state_key": state_key, "content": content, "sender": sender, "origin_server_ts": ts}


def checked_entry(value: Any) -> dict[str, Any] | None:
    """A room's summary as the client API shows it (always with `children_state`), or None."""
    if not isinstance(value, dict):
        return None
    room_id, members = value.get("room_id"), value.get("num_joined_members")
    join_rule = value.get("join_rule", "public")
    if not (isinstance(room_id, str) and is_valid_room_id(room_id) and type(members) is int and members >= 0
            and isinstance(join_rule, str) and len(join_rule) <= MAX_STRING):
        return None
    entry: dict[str, Any] = {"room_id": room_id, "num_joined_members": members, "join_rule": join_rule}
    for key in _FLAGS:
        entry[key] = value.get(key) is True
    for key in _STRINGS:
        text = value.get(key)
        if isinstance(text, str) and len(text) <= MAX_STRING:
            entry[key] = text
    if "allowed_room_ids" in value:
        entry["allowed_room_ids"] = _room_ids(value["allowed_room_ids"])
    children_state = value.get("children_state")
    events = children_state[:MAX_ITEMS] if isinstance(children_state, list) else []
    entry["children_state"] = [event for event in map(checked_child_event, events) if event is not None]
    return entry


def checked_answer(room_id: str, answer: Any) -> RemoteSpace | None:
    """The answer about `room_id` as the walk uses it, or None when it is not one."""
    if not isinstance(answer, dict):
        return None
    room = checked_entry(answer.get("room"))
    if room is None or room["room_id"] != room_id:
        return None
    listed = answer.get("children")
    entries = [checked_entry(child) for child in (listed[:MAX_ITEMS] if isinstance(listed, list) else [])]
    children = {entry["room_id"]: entry for entry in entries if entry is not None and entry["room_id"] != room_id}
    return RemoteSpace(room, children, frozenset(_room_ids(answer.get("inaccessible_children"))))
