"""Room versions as data: one record of flags per version.

Every algorithm in this package (event IDs, redaction, auth rules, state
resolution) reads these flags instead of comparing version strings, so a rule
is written once and each version only says which variant it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RoomVersion:
    """The behaviour of one room version, as described in the spec's rooms/vN pages."""

    identifier: str
    # "v1": `$opaque:server` chosen by the sender; "v3": `$` + standard unpadded
    # base64 of the reference hash; "v4": the same in URL-safe base64.
    event_id_format: str
    # "v1": the original algorithm; "v2": state resolution v2; "v2.1": the v12
    # variant (empty starting state, conflicted state subgraph).
    state_res: str
    # v5+: signing keys must be valid at the event's origin_server_ts.
    enforce_key_validity: bool
    # v1-v5: m.room.aliases has its own auth rule and keeps `aliases` on redaction.
    special_case_aliases_auth: bool
    # v1-v2: m.room.redaction is checked by the auth rules (redact level or same domain).
    redaction_in_auth_rules: bool
    # v6+: events must be strict canonical JSON (no floats, safe integers).
    strict_canonicaljson: bool
    # v6+: `notifications` in power levels is protected like `events`.
    limit_notifications_power_levels: bool
    # v7+: the `knock` join rule and membership.
    knock_join_rule: bool
    # v8+: the `restricted` join rule; join_rules keeps `allow` on redaction.
    restricted_join_rule: bool
    # v9+: m.room.member keeps `join_authorised_via_users_server` on redaction.
    redaction_keeps_join_authorised_via: bool
    # v10+: the `knock_restricted` join rule.
    knock_restricted_join_rule: bool
    # v10+: power levels must be JSON integers (no strings).
    enforce_int_power_levels: bool
    # v11+: the create event has no `creator`; the creator is its sender.
    implicit_room_creator: bool
    # v11+: the redaction algorithm of room version 11.
    updated_redaction_rules: bool
    # v11+: `redacts` lives in the content of m.room.redaction, not at the top level.
    redacts_in_content: bool
    # v12: the room ID is `!` + the create event's reference hash; the create
    # event has no room_id and is never listed in auth_events.
    room_id_is_create_event_id: bool
    # v12: the create event's sender and content.additional_creators have
    # infinite power and may not appear in power_levels.users.
    privileged_creators: bool

    @property
    def create_event_in_auth_events(self) -> bool:
        """Whether auth_events must cite the create event (all versions before 12)."""
        return not self.room_id_is_create_event_id

    @property
    def event_id_has_domain(self) -> bool:
        """Whether event IDs are `$opaque:server` (versions 1 and 2)."""
        return self.event_id_format == "v1"


def _build_versions() -> dict[str, RoomVersion]:
    """Derive each version from its predecessor, as the spec's pages do."""
    v1 = RoomVersion(
        identifier="1",
        event_id_format="v1",
        state_res="v1",
        enforce_key_validity=False,
        special_case_aliases_auth=True,
        redaction_in_auth_rules=True,
        strict_canonicaljson=False,
        limit_notifications_power_levels=False,
        knock_join_rule=False,
        restricted_join_rule=False,
        redaction_keeps_join_authorised_via=False,
        knock_restricted_join_rule=False,
        enforce_int_power_levels=False,
        implicit_room_creator=False,
        updated_redaction_rules=False,
        redacts_in_content=False,
        room_id_is_create_event_id=False,
        privileged_creators=False,
    )
    v2 = replace(v1, identifier="2", state_res="v2")
    v3 = replace(v2, identifier="3", event_id_format="v3", redaction_in_auth_rules=False)
    v4 = replace(v3, identifier="4", event_id_format="v4")
    v5 = replace(v4, identifier="5", enforce_key_validity=True)
    v6 = replace(
        v5,
        identifier="6",
        special_case_aliases_auth=False,
        strict_canonicaljson=True,
        limit_notifications_power_levels=True,
    )
    v7 = replace(v6, identifier="7", knock_join_rule=True)
    v8 = replace(v7, identifier="8", restricted_join_rule=True)
    v9 = replace(v8, identifier="9", redaction_keeps_join_authorised_via=True)
    v10 = replace(v9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True)
    v11 = replace(
        v10,
        identifier="11",
        implicit_room_creator=True,
        updated_redaction_rules=True,
        redacts_in_content=True,
    )
    v12 = replace(
        v11,
        identifier="12",
        state_res="v2.1",
        room_id_is_create_event_id=True,
        privileged_creators=True,
    )
    versions = [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12]
    return {version.identifier: version for version in versions}


ROOM_VERSIONS: dict[str, RoomVersion] = _build_versions()
DEFAULT_ROOM_VERSION = "11"
