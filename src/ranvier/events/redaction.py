"""The redaction algorithm of every room version (rooms/vN "Redactions").

Redaction decides which fields survive; the same stripped form is what gets
signed and what the reference hash covers, so it must match other servers
byte for byte.
"""

from __future__ import annotations

from typing import Any

from ranvier.events.room_versions import RoomVersion

_KEPT_TOP_LEVEL_KEYS = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)
# Protected before room version 11 only.
_LEGACY_TOP_LEVEL_KEYS = frozenset({"origin", "membership", "prev_state"})

_POWER_LEVEL_KEYS = frozenset(
    {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
)


def _kept_content_keys(event_type: str, room_version: RoomVersion) -> frozenset[str] | None:
    """Content keys that survive for `event_type`; None means all of them."""
    updated = room_version.updated_redaction_rules
    if event_type == "m.room.member":
        if room_version.redaction_keeps_join_authorised_via:
            return frozenset({"membership", "join_authorised_via_users_server"})
        return frozenset({"membership"})
    if event_type == "m.room.create":
        return None if updated else frozenset({"creator"})
    if event_type == "m.room.join_rules":
        if room_version.restricted_join_rule:
            return frozenset({"join_rule", "allow"})
        return frozenset({"join_rule"})
    if event_type == "m.room.power_levels":
        return _POWER_LEVEL_KEYS | {"invite"} if updated else _POWER_LEVEL_KEYS
    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        return frozenset({"aliases"})
    if event_type == "m.room.history_visibility":
        return frozenset({"history_visibility"})
    if event_type == "m.room.redaction" and updated:
        return frozenset({"redacts"})
    return frozenset()


def _redact_content(event_type: str, content: Any, room_version: RoomVersion) -> dict:
    if not isinstance(content, dict):
        return {}
    kept_keys = _kept_content_keys(event_type, room_version)
    if kept_keys is None:
        return dict(content)
    redacted = {key: value for key, value in content.items() if key in kept_keys}
    if event_type == "m.room.member" and room_version.updated_redaction_rules:
        third_party_invite = content.get("third_party_invite")
        if isinstance(third_party_invite, dict) and "signed" in third_party_invite:
            redacted["third_party_invite"] = {"signed": third_party_invite["signed"]}
    return redacted


def redact(pdu: dict, room_version: RoomVersion) -> dict:
    """Return a new dict holding what survives redaction of `pdu`; `pdu` is not changed."""
    kept_keys = _KEPT_TOP_LEVEL_KEYS
    if not room_version.updated_redaction_rules:
        kept_keys = kept_keys | _LEGACY_TOP_LEVEL_KEYS
    redacted = {key: value for key, value in pdu.items() if key in kept_keys}
    redacted["content"] = _redact_content(pdu.get("type", ""), pdu.get("content"), room_version)
    return redacted
