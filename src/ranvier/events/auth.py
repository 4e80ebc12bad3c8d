"""The authorisation rules of room versions 1 to 12, and the power level helpers.

One implementation serves every version: each difference between versions is
a flag of RoomVersion. `auth_state` is always a mapping from (type, state_key)
to Event holding the state the event is checked against (its auth events, the
state before it, or the current state) and must include the room's
m.room.create event in every version (for v12, whose events do not cite the
create event, the caller adds it; `auth_state_from_auth_events` does this).

Signatures are not checked here: the federation layer verifies every event's
signatures before authorisation. The rule "the event is validly signed by the
server of join_authorised_via_users_server" is therefore checked here as "that
server's signature is present". Third-party invite signatures, which sign a
small JSON object carried in the event, are verified here in full.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

from unpaddedbase64 import decode_base64

from ranvier.events.identifiers import domain_of, is_valid_user_id
from ranvier.events.model import (
    ALIASES,
    CREATE,
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS,
    REDACTION,
    THIRD_PARTY_INVITE,
    Event,
)
from ranvier.events.room_versions import ROOM_VERSIONS, RoomVersion
from ranvier.events.signing import SignatureError, verify_signed_json

StateKey = tuple[str, str]
AuthState = Mapping[StateKey, Event]

CREATE_KEY: StateKey = (CREATE, "")
POWER_LEVELS_KEY: StateKey = (POWER_LEVELS, "")
JOIN_RULES_KEY: StateKey = (JOIN_RULES, "")

JOIN, INVITE, LEAVE, BAN, KNOCK = "join", "invite", "leave", "ban", "knock"
PUBLIC, RESTRICTED, KNOCK_RESTRICTED = "public", "restricted", "knock_restricted"
JOIN_AUTHORISED_VIA = "join_authorised_via_users_server"

# Defaults from the m.room.power_levels schema, for a missing key or a missing event.
POWER_LEVEL_DEFAULTS = {
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
    "state_default": 50,
    "events_default": 0,
    "users_default": 0,
}
NOTIFICATION_LEVEL_DEFAULT = 50
# Power of the creator when the room has no power levels event (versions 1-11).
CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100

_STRING_INTEGER = re.compile(r"^\s*[+-]?[0-9]+\s*$")


class AuthError(Exception):
    """The event is not allowed; `reason` says which rule refused it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- power levels ----------------------------------------------------------


def parse_power_level(value: object, room_version: RoomVersion) -> int | None:
    """The integer a power level value stands for, or None if it is not one.

    Versions before 10 accept strings such as " +050 "; versions 1-5 also
    accept floats, truncated. Booleans are never levels.
    """
    if type(value) is int:
        return value
    if room_version.enforce_int_power_levels:
        return None
    if isinstance(value, str) and _STRING_INTEGER.match(value):
        return int(value)
    if type(value) is float and not room_version.strict_canonicaljson and math.isfinite(value):
        return int(value)
    return None


def _create_event_creator(create: Event) -> str | None:
    """The creator named by the create event: its sender from v11, content.creator before."""
    if create.room_version.implicit_room_creator:
        return create.sender
    creator = create.content.get("creator")
    return creator if isinstance(creator, str) else None


def room_creators(create: Event) -> frozenset[str]:
    """The room's creators: from v12 the sender plus content.additional_creators."""
    creators = {_create_event_creator(create)} - {None}
    additional = create.content.get("additional_creators")
    if create.room_version.privileged_creators and isinstance(additional, list):
        creators.update(user_id for user_id in additional if isinstance(user_id, str))
    return frozenset(creators)


def power_level_setting(auth_state: AuthState, name: str) -> int:
    """A top-level power level setting (ban, kick, redact, invite, *_default) with its default."""
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    if power_levels is not None and name in power_levels.content:
        level = parse_power_level(power_levels.content[name], power_levels.room_version)
        if level is not None:
            return level
    return POWER_LEVEL_DEFAULTS[name]


def _mapped_level(auth_state: AuthState, field: str, key: str) -> int | None:
    """The level `content[field][key]` of the power levels event, if present and valid."""
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    mapping = power_levels.content.get(field) if power_levels is not None else None
    if not isinstance(mapping, dict) or key not in mapping:
        return None
    return parse_power_level(mapping[key], power_levels.room_version)


def get_power_level(auth_state: AuthState, user_id: str) -> int | float:
    """The power level of `user_id`: math.inf for v12 creators, 100 for the creator of a
    room without power levels (versions 1-11), else users[user_id] or users_default."""
    create = auth_state.get(CREATE_KEY)
    is_creator = create is not None and user_id in room_creators(create)
    if is_creator and create.room_version.privileged_creators:
        return math.inf
    if POWER_LEVELS_KEY not in auth_state:
        return CREATOR_LEVEL_WITHOUT_POWER_LEVELS if is_creator else 0
    level = _mapped_level(auth_state, "users", user_id)
    return level if level is not None else power_level_setting(auth_state, "users_default")


def required_power_level(auth_state: AuthState, event_type: str, is_state: bool) -> int:
    """The level needed to send `event_type`: events[type], else state_default or events_default."""
    level = _mapped_level(auth_state, "events", event_type)
    if level is not None:
        return level
    return power_level_setting(auth_state, "state_default" if is_state else "events_default")


def notification_power_level(auth_state: AuthState, key: str = "room") -> int:
    """The level needed to trigger the `key` notification (`room` is @room)."""
    level = _mapped_level(auth_state, "notifications", key)
    return level if level is not None else NOTIFICATION_LEVEL_DEFAULT


def may_redact(auth_state: AuthState, redaction_sender: str, original_sender: str) -> bool:
    """Whether a redaction should be applied ("Handling redactions", v3+): the redacter has
    the redact level, or both senders are on the same server."""
    if get_power_level(auth_state, redaction_sender) >= power_level_setting(auth_state, "redact"):
        return True
    sender_domain = domain_of(redaction_sender)
    return sender_domain is not None and sender_domain == domain_of(original_sender)


def membership_of(auth_state: AuthState, user_id: str) -> str:
    """The user's membership in `auth_state`, "leave" if they have no member event."""
    member = auth_state.get((MEMBER, user_id))
    membership = member.membership if member is not None else None
    return membership or LEAVE


def join_rule_of(auth_state: AuthState) -> str:
    """The room's join rule; a room without m.room.join_rules behaves as invite-only."""
    join_rules = auth_state.get(JOIN_RULES_KEY)
    rule = join_rules.content.get("join_rule") if join_rules is not None else None
    return rule if isinstance(rule, str) else INVITE


# --- auth events selection -------------------------------------------------


def auth_types_for_event(
    room_version: RoomVersion, type: str, sender: str, state_key: str | None, content: dict
) -> list[StateKey]:
    """The (type, state_key) pairs an event must cite as auth events (server-server API,
    "Auth events selection"); empty for the create event."""
    if type == CREATE:
        return []
    selected: list[StateKey] = []
    if room_version.create_event_in_auth_events:
        selected.append(CREATE_KEY)
    selected += [POWER_LEVELS_KEY, (MEMBER, sender)]
    if type != MEMBER:
        return selected

    def add(key: StateKey) -> None:
        if key not in selected:
            selected.append(key)

    if state_key is not None:
        add((MEMBER, state_key))
    membership = content.get("membership")
    if membership in (JOIN, INVITE) or (membership == KNOCK and room_version.knock_join_rule):
        add(JOIN_RULES_KEY)
    if membership == INVITE:
        third_party_invite = content.get("third_party_invite")
        signed = third_party_invite.get("signed") if isinstance(third_party_invite, dict) else None
        token = signed.get("token") if isinstance(signed, dict) else None
        if isinstance(token, str):
            add((THIRD_PARTY_INVITE, token))
    via = content.get(JOIN_AUTHORISED_VIA)
    if membership == JOIN and room_version.restricted_join_rule and isinstance(via, str):
        add((MEMBER, via))
    return selected


def auth_state_from_auth_events(
    room_version: RoomVersion, event: Event, auth_events: Iterable[Event], create_event: Event | None = None
) -> dict[StateKey, Event]:
    """Check the rules about an event's own auth_events and key them by (type, state_key).

    Refuses duplicates, entries the selection algorithm would not pick,
    rejected entries, entries of another room, and (before v12) a missing
    create event. For v12 pass the room's `create_event`; it is added to the
    result, since the event cannot cite it.
    """
    expected = set(auth_types_for_event(room_version, event.type, event.sender, event.state_key, event.content))
    state: dict[StateKey, Event] = {}
    for auth_event in auth_events:
        key = (auth_event.type, auth_event.state_key)
        if key in state:
            raise AuthError(f"duplicate auth event for {key}")
        if key not in expected:
            raise AuthError(f"auth event {auth_event.event_id} for {key} is not one the event may cite")
        if auth_event.rejected_reason is not None:
            raise AuthError(f"auth event {auth_event.event_id} was rejected")
        if auth_event.room_id != event.room_id:
            raise AuthError(f"auth event {auth_event.event_id} belongs to another room")
        state[key] = auth_event
    if event.type == CREATE:
        return state
    if room_version.create_event_in_auth_events:
        if CREATE_KEY not in state:
            raise AuthError("auth events do not include the m.room.create event")
    elif create_event is None:
        raise AuthError("the room's m.room.create event is needed to authorise the event")
    else:
        state[CREATE_KEY] = create_event
    return state


# --- the rules -------------------------------------------------------------


def check_auth(room_version: RoomVersion, event: Event, auth_state: AuthState) -> None:
    """Raise AuthError unless the authorisation rules of `room_version` allow `event`
    against `auth_state`."""
    if event.type == CREATE:
        _check_create(room_version, event)
        return
    create = auth_state.get(CREATE_KEY)
    if create is None:
        raise AuthError("no m.room.create event in the auth state")
    if create.rejected_reason is not None:
        raise AuthError("the room's m.room.create event was rejected")
    if event.room_id != create.room_id:
        raise AuthError("the event's room_id is not the room of the m.room.create event")
    if create.content.get("m.federate", True) is False and domain_of(event.sender) != domain_of(create.sender):
        raise AuthError("the room does not federate and the sender is on another server")

    if room_version.special_case_aliases_auth and event.type == ALIASES:
        if event.state_key is None:
            raise AuthError("m.room.aliases needs a state_key")
        if domain_of(event.sender) != event.state_key:
            raise AuthError("m.room.aliases state_key must be the sender's server")
        return

    if event.type == MEMBER:
        _check_membership(room_version, event, auth_state, create)
        return

    if membership_of(auth_state, event.sender) != JOIN:
        raise AuthError(f"{event.sender} is not joined to the room")
    sender_level = get_power_level(auth_state, event.sender)
    if event.type == THIRD_PARTY_INVITE:
        if sender_level >= power_level_setting(auth_state, "invite"):
            return
        raise AuthError("sender may not invite")
    if required_power_level(auth_state, event.type, event.is_state) > sender_level:
        raise AuthError(f"sender's power level is too low to send {event.type}")
    if event.state_key is not None and event.state_key.startswith("@") and event.state_key != event.sender:
        raise AuthError("a state_key that is a user ID must be the sender's")
    if event.type == POWER_LEVELS:
        _check_power_levels(room_version, event, auth_state, create, sender_level)
    elif event.type == REDACTION and room_version.redaction_in_auth_rules:
        _check_legacy_redaction(event, auth_state, sender_level)


def _check_create(room_version: RoomVersion, event: Event) -> None:
    if event.pdu.get("prev_events"):
        raise AuthError("m.room.create must not have prev_events")
    if room_version.room_id_is_create_event_id:
        if "room_id" in event.pdu:
            raise AuthError("m.room.create must not have a room_id in this room version")
    else:
        room_domain = domain_of(event.room_id) if isinstance(event.room_id, str) else None
        if room_domain is None or room_domain != domain_of(event.sender):
            raise AuthError("the room_id's server must be the sender's server")
    content = event.content
    if "room_version" in content and content["room_version"] not in ROOM_VERSIONS:
        raise AuthError("unknown room_version in m.room.create")
    if not room_version.implicit_room_creator and "creator" not in content:
        raise AuthError("m.room.create needs content.creator in this room version")
    if room_version.privileged_creators and "additional_creators" in content:
        additional = content["additional_creators"]
        if not isinstance(additional, list) or not all(
            isinstance(user_id, str) and is_valid_user_id(user_id) for user_id in additional
        ):
            raise AuthError("additional_creators must be a list of user IDs")


def _check_membership(room_version: RoomVersion, event: Event, auth_state: AuthState, create: Event) -> None:
    membership = event.content.get("membership")
    target = event.state_key
    if target is None or not isinstance(membership, str):
        raise AuthError("m.room.member needs a state_key and content.membership")
    if room_version.restricted_join_rule and JOIN_AUTHORISED_VIA in event.content:
        via_domain = domain_of(event.content[JOIN_AUTHORISED_VIA])
        if via_domain is None or via_domain not in event.signatures:
            raise AuthError(f"{JOIN_AUTHORISED_VIA} names a server that did not sign the event")

    sender_membership = membership_of(auth_state, event.sender)
    target_membership = membership_of(auth_state, target)
    if membership == JOIN:
        _check_join(room_version, event, auth_state, create, target_membership)
    elif membership == INVITE:
        _check_invite(event, auth_state, sender_membership, target_membership)
    elif membership == LEAVE:
        _check_leave(room_version, event, auth_state, sender_membership, target_membership)
    elif membership == BAN:
        if sender_membership != JOIN:
            raise AuthError(f"{event.sender} is not joined to the room")
        _require_power_over_target(event, auth_state, "ban")
    elif membership == KNOCK and room_version.knock_join_rule:
        _check_knock(room_version, event, auth_state, sender_membership)
    else:
        raise AuthError(f"unknown membership {membership!r}")


def _check_join(
    room_version: RoomVersion, event: Event, auth_state: AuthState, create: Event, target_membership: str
) -> None:
    target = event.state_key
    if event.prev_event_ids == [create.event_id] and target == _create_event_creator(create):
        return
    if event.sender != target:
        raise AuthError("users may only join themselves")
    if target_membership == BAN:
        raise AuthError(f"{target} is banned from the room")
    join_rule = join_rule_of(auth_state)
    if join_rule == INVITE or (join_rule == KNOCK and room_version.knock_join_rule):
        if target_membership in (INVITE, JOIN):
            return
        raise AuthError(f"the room is {join_rule}-only and {target} is not invited")
    if (join_rule == RESTRICTED and room_version.restricted_join_rule) or (
        join_rule == KNOCK_RESTRICTED and room_version.knock_restricted_join_rule
    ):
        if target_membership in (INVITE, JOIN):
            return
        via = event.content.get(JOIN_AUTHORISED_VIA)
        if (
            not isinstance(via, str)
            or membership_of(auth_state, via) != JOIN
            or get_power_level(auth_state, via) < power_level_setting(auth_state, "invite")
        ):
            raise AuthError(f"{JOIN_AUTHORISED_VIA} is not a joined user who may invite")
        return
    if join_rule == PUBLIC:
        return
    raise AuthError(f"join rule {join_rule!r} does not allow joining")


def _check_invite(event: Event, auth_state: AuthState, sender_membership: str, target_membership: str) -> None:
    if "third_party_invite" in event.content:
        _check_third_party_invite(event, auth_state, target_membership)
        return
    if sender_membership != JOIN:
        raise AuthError(f"{event.sender} is not joined to the room")
    if target_membership in (JOIN, BAN):
        raise AuthError(f"{event.state_key} is already {target_membership}")
    if get_power_level(auth_state, event.sender) < power_level_setting(auth_state, "invite"):
        raise AuthError("sender may not invite")


def _third_party_invite_public_keys(invite_event: Event) -> list[str]:
    content = invite_event.content
    keys = [content["public_key"]] if isinstance(content.get("public_key"), str) else []
    public_keys = content.get("public_keys")
    if isinstance(public_keys, list):
        keys += [
            entry["public_key"]
            for entry in public_keys
            if isinstance(entry, dict) and isinstance(entry.get("public_key"), str)
        ]
    return keys


def _check_third_party_invite(event: Event, auth_state: AuthState, target_membership: str) -> None:
    if target_membership == BAN:
        raise AuthError(f"{event.state_key} is banned from the room")
    third_party_invite = event.content["third_party_invite"]
    signed = third_party_invite.get("signed") if isinstance(third_party_invite, dict) else None
    if not isinstance(signed, dict):
        raise AuthError("third_party_invite has no signed object")
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("third_party_invite.signed needs mxid and token")
    if mxid != event.state_key:
        raise AuthError("third_party_invite.signed.mxid is not the invited user")
    invite_event = auth_state.get((THIRD_PARTY_INVITE, token))
    if invite_event is None:
        raise AuthError("no m.room.third_party_invite for this token")
    if invite_event.sender != event.sender:
        raise AuthError("the sender did not send the m.room.third_party_invite")
    signatures = signed.get("signatures")
    if isinstance(signatures, dict):
        for server_name, key_signatures in signatures.items():
            if not isinstance(key_signatures, dict):
                continue
            for key_id in key_signatures:
                for public_key in _third_party_invite_public_keys(invite_event):
                    try:
                        verify_signed_json(signed, server_name, key_id, decode_base64(public_key))
                    except (SignatureError, ValueError):
                        continue
                    return
    raise AuthError("no signature in third_party_invite.signed matches the invite's public keys")


def _check_leave(
    room_version: RoomVersion,
    event: Event,
    auth_state: AuthState,
    sender_membership: str,
    target_membership: str,
) -> None:
    if event.sender == event.state_key:
        may_leave = {INVITE, JOIN, KNOCK} if room_version.knock_join_rule else {INVITE, JOIN}
        if target_membership in may_leave:
            return
        raise AuthError(f"cannot leave with membership {target_membership!r}")
    if sender_membership != JOIN:
        raise AuthError(f"{event.sender} is not joined to the room")
    if target_membership == BAN and get_power_level(auth_state, event.sender) < power_level_setting(auth_state, "ban"):
        raise AuthError("sender may not unban")
    _require_power_over_target(event, auth_state, "kick")


def _require_power_over_target(event: Event, auth_state: AuthState, action: str) -> None:
    """Kicks and bans need the action's level and more power than the target."""
    sender_level = get_power_level(auth_state, event.sender)
    if sender_level < power_level_setting(auth_state, action):
        raise AuthError(f"sender's power level is too low to {action}")
    if get_power_level(auth_state, event.state_key) >= sender_level:
        raise AuthError(f"sender may not {action} a user with equal or greater power")


def _check_knock(room_version: RoomVersion, event: Event, auth_state: AuthState, sender_membership: str) -> None:
    join_rule = join_rule_of(auth_state)
    if join_rule != KNOCK and not (room_version.knock_restricted_join_rule and join_rule == KNOCK_RESTRICTED):
        raise AuthError("the join rule does not allow knocking")
    if event.sender != event.state_key:
        raise AuthError("users may only knock for themselves")
    if sender_membership in (BAN, INVITE, JOIN):
        raise AuthError(f"cannot knock with membership {sender_membership!r}")


def _validate_power_levels_content(room_version: RoomVersion, content: dict) -> None:
    """Every level must be a valid level of this version (integers only from v10), and
    users must be keyed by user IDs. Versions before 10 also refuse values that are not
    integers or integer strings anywhere, since such values have no meaning."""
    for name in POWER_LEVEL_DEFAULTS:
        if name in content and parse_power_level(content[name], room_version) is None:
            raise AuthError(f"power level {name} is not an integer")
    for field in ("events", "notifications", "users"):
        if field not in content:
            continue
        mapping = content[field]
        if not isinstance(mapping, dict) or any(
            parse_power_level(value, room_version) is None for value in mapping.values()
        ):
            raise AuthError(f"power levels {field} must map to integers")
    if any(not is_valid_user_id(user_id) for user_id in content.get("users", {})):
        raise AuthError("power levels users must be keyed by user IDs")


def _levels_in(content: dict, field: str, room_version: RoomVersion) -> dict[str, int]:
    mapping = content.get(field)
    if not isinstance(mapping, dict):
        return {}
    levels = {key: parse_power_level(value, room_version) for key, value in mapping.items()}
    return {key: level for key, level in levels.items() if level is not None}


def _check_power_levels(
    room_version: RoomVersion, event: Event, auth_state: AuthState, create: Event, sender_level: int | float
) -> None:
    new = event.content
    _validate_power_levels_content(room_version, new)
    if room_version.privileged_creators and room_creators(create) & set(new.get("users", {})):
        raise AuthError("room creators may not be listed in power levels users")
    current = auth_state.get(POWER_LEVELS_KEY)
    if current is None:
        return
    old = current.content
    old_version = current.room_version

    def check_change(name: str, old_level: int | None, new_level: int | None) -> None:
        if old_level == new_level:
            return
        if old_level is not None and old_level > sender_level:
            raise AuthError(f"sender may not change {name} from a level above their own")
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"sender may not set {name} above their own level")

    for name in POWER_LEVEL_DEFAULTS:
        old_level = parse_power_level(old[name], old_version) if name in old else None
        new_level = parse_power_level(new[name], room_version) if name in new else None
        check_change(name, old_level, new_level)

    fields = ("events", "notifications") if room_version.limit_notifications_power_levels else ("events",)
    for field in fields:
        old_levels, new_levels = _levels_in(old, field, old_version), _levels_in(new, field, room_version)
        for key in old_levels.keys() | new_levels.keys():
            check_change(f"{field}.{key}", old_levels.get(key), new_levels.get(key))

    old_users, new_users = _levels_in(old, "users", old_version), _levels_in(new, "users", room_version)
    for user_id in old_users.keys() | new_users.keys():
        old_level, new_level = old_users.get(user_id), new_users.get(user_id)
        if old_level == new_level:
            continue
        if user_id != event.sender and old_level is not None and old_level >= sender_level:
            raise AuthError(f"sender may not change the level of {user_id}, which is not below their own")
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"sender may not give {user_id} a level above their own")


def _check_legacy_redaction(event: Event, auth_state: AuthState, sender_level: int | float) -> None:
    """Versions 1 and 2: redact level, or the redacted event's ID is from the redaction's server."""
    if sender_level >= power_level_setting(auth_state, "redact"):
        return
    redacts_domain = domain_of(event.redacts) if event.redacts else None
    if redacts_domain is not None and redacts_domain == domain_of(event.event_id):
        return
    raise AuthError("sender may not redact other servers' events")
