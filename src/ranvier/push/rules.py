"""Push rules: the spec's default rule set as data and a pure evaluator.

Rules are kept in the JSON shape of the push rules API (`{kind: [rule, ...]}`), so a
user's modified rule set can be stored and compiled the same way. Where a default rule
names "the user's Matrix ID" or its localpart, the rule says so with `pattern_type` /
`value_type` (`user_id`, `user_localpart`) instead of a literal, so one compiled rule set
serves every user.

Evaluation runs for every member of a room for every event, so it is split in two:
`RuleSet.narrow(event)` evaluates, once per event, every condition that does not depend on
the member and keeps only the rules that can still match, with only their member-dependent
conditions; `evaluate(narrowed, event, member)` then usually checks a handful of conditions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import orjson

Action = str | dict[str, Any]

#: The kinds of rules, in the order they are checked.
KINDS = ("override", "content", "room", "sender", "underride")

#: Actions of older spec versions that must be ignored.
_HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})

#: The rules that looked for mentions in the body; skipped when the event has `m.mentions`.
LEGACY_MENTION_RULES = frozenset({".m.rule.contains_display_name", ".m.rule.roomnotif", ".m.rule.contains_user_name"})

MAX_SAFE_INTEGER = 2**53 - 1

_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Action], *, enabled: bool = True) -> dict:
    return {"rule_id": rule_id, "default": True, "enabled": enabled, "conditions": conditions, "actions": actions}


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def default_rules() -> dict[str, list[dict[str, Any]]]:
    """The server-default rules of the spec, in its order (a fresh copy each call).

    The body-mention rules removed in v1.17 (`.m.rule.contains_display_name`,
    `.m.rule.roomnotif`, `.m.rule.contains_user_name`) are kept for clients that do not send
    `m.mentions`; the evaluator skips them for events that do, as the mentions module says.
    """
    return {
        "override": [
            _rule(".m.rule.master", [], [], enabled=False),
            _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
            _rule(
                ".m.rule.invite_for_me",
                [_match("type", "m.room.member"), _match("content.membership", "invite"),
                 {"kind": "event_match", "key": "state_key", "pattern_type": "user_id"}],
                ["notify", _SOUND_DEFAULT],
            ),
            _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
            _rule(
                ".m.rule.is_user_mention",
                [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value_type": "user_id"}],
                ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
            ),
            _rule(".m.rule.contains_display_name", [{"kind": "contains_display_name"}],
                  ["notify", _SOUND_DEFAULT, _HIGHLIGHT]),
            _rule(
                ".m.rule.is_room_mention",
                [{"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                 {"kind": "sender_notification_permission", "key": "room"}],
                ["notify", _HIGHLIGHT],
            ),
            _rule(
                ".m.rule.roomnotif",
                [_match("content.body", "@room"), {"kind": "sender_notification_permission", "key": "room"}],
                ["notify", _HIGHLIGHT],
            ),
            _rule(".m.rule.tombstone", [_match("type", "m.room.tombstone"), _match("state_key", "")],
                  ["notify", _HIGHLIGHT]),
            _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
            _rule(".m.rule.room.server_acl", [_match("type", "m.room.server_acl"), _match("state_key", "")], []),
            _rule(
                ".m.rule.suppress_edits",
                [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}],
                [],
            ),
        ],
        "content": [
            {"rule_id": ".m.rule.contains_user_name", "default": True, "enabled": True,
             "pattern_type": "user_localpart", "actions": ["notify", _SOUND_DEFAULT, _HIGHLIGHT]},
        ],
        "room": [],
        "sender": [],
        "underride": [
            _rule(".m.rule.call", [_match("type", "m.call.invite")],
                  ["notify", {"set_tweak": "sound", "value": "ring"}]),
            _rule(".m.rule.encrypted_room_one_to_one",
                  [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
                  ["notify", _SOUND_DEFAULT]),
            _rule(".m.rule.room_one_to_one",
                  [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
                  ["notify", _SOUND_DEFAULT]),
            _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
            _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
            _rule(".m.rule.poll_start_one_to_one",
                  [{"kind": "room_member_count", "is": "2"}, _match("type", "m.poll.start")],
                  ["notify", _SOUND_DEFAULT]),
            _rule(".m.rule.poll_start", [_match("type", "m.poll.start")], ["notify"]),
            _rule(".m.rule.poll_end_one_to_one",
                  [{"kind": "room_member_count", "is": "2"}, _match("type", "m.poll.end")],
                  ["notify", _SOUND_DEFAULT]),
            _rule(".m.rule.poll_end", [_match("type", "m.poll.end")], ["notify"]),
        ],
    }


# -- the event and the member -------------------------------------------------------------


def escape_key(name: str) -> str:
    """One property name as a part of a dot-separated path: `\\` and `.` escaped."""
    return name.replace("\\", "\\\\").replace(".", "\\.")


def flatten(value: Mapping[str, Any], prefix: str = "", into: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event as {dotted path: value}, keeping what conditions can match.

    Strings, booleans, null and integers within canonical JSON's range are kept as they
    are; arrays become a frozenset of `(type, value)` pairs of such items (what
    `event_property_contains` looks in, without `1 == True`); objects are walked into.
    """
    flat = {} if into is None else into
    for name, item in value.items():
        key = prefix + escape_key(name)
        if isinstance(item, dict):
            flatten(item, key + ".", flat)
        elif isinstance(item, list):
            flat[key] = frozenset((type(x), x) for x in item if _is_scalar(x))
        elif _is_scalar(item):
            flat[key] = item
    return flat


def _is_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


@dataclass(slots=True)
class PushEvent:
    """What the conditions see of one event, computed once for all members."""

    #: The event flattened by `flatten`.
    flat: dict[str, Any]
    #: Joined members of the room.
    room_member_count: int
    #: The sender's power level, and the level each notification key needs (`room`, ...).
    sender_power_level: float = 0
    notification_levels: Mapping[str, int] = field(default_factory=dict)
    #: Whether content has `m.mentions` at all (even empty): the body-mention rules are then skipped.
    has_mentions: bool = False
    #: content.body case-folded: a substring test rules out most members before any regex runs.
    body_folded: str = ""

    @classmethod
    def from_event(cls, event: Mapping[str, Any], room_member_count: int, sender_power_level: float = 0,
                   notification_levels: Mapping[str, int] | None = None) -> "PushEvent":
        flat = flatten({k: v for k, v in event.items() if k not in _UNMATCHED_FIELDS})
        content = event.get("content")
        has_mentions = isinstance(content, dict) and "m.mentions" in content
        body = flat.get("content.body")
        return cls(flat, room_member_count, sender_power_level, notification_levels or {}, has_mentions,
                   body.casefold() if isinstance(body, str) else "")

    def notification_level(self, key: str) -> int:
        """The power level needed for the `key` notification; 50 when unset."""
        return self.notification_levels.get(key, 50)


#: PDU fields no rule matches on; left out of the flattened event.
_UNMATCHED_FIELDS = frozenset({"signatures", "hashes", "auth_events", "prev_events", "unsigned"})


@dataclass(slots=True)
class Member:
    """The user the rules are evaluated for."""

    user_id: str
    display_name: str | None = None

    @property
    def localpart(self) -> str:
        return self.user_id[1:].partition(":")[0]


# -- matching -----------------------------------------------------------------------------

_WORD = "A-Za-z0-9_"


def _glob_regex(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


@lru_cache(maxsize=4096)
def glob_matcher(pattern: str, words: bool) -> Callable[[str], Any]:
    """A case-insensitive glob matcher: of the whole value, or (`words`) of any substring
    that starts and ends at a word boundary (as matches on `content.body` need)."""
    body = _glob_regex(pattern)
    if words:
        regex = f"(?<![{_WORD}]){body}(?![{_WORD}])"
        return re.compile(regex, re.IGNORECASE | re.DOTALL).search
    return re.compile(f"(?:{body})\\Z", re.IGNORECASE | re.DOTALL).match


@lru_cache(maxsize=4096)
def _escaped_matcher(literal: str, words: bool) -> Callable[[str], Any]:
    """Like `glob_matcher`, for text taken literally (a user ID, localpart or display name)."""
    body = re.escape(literal)
    regex = f"(?<![{_WORD}]){body}(?![{_WORD}])" if words else f"{body}\\Z"
    return re.compile(regex, re.IGNORECASE | re.DOTALL).search if words else re.compile(regex, re.IGNORECASE).match


def _same_value(a: Any, b: Any) -> bool:
    """Exact equality of canonical JSON scalars: `1` is not `true`."""
    return type(a) is type(b) and a == b


_MEMBER_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": int.__eq__, "<": int.__lt__, ">": int.__gt__, "<=": int.__le__, ">=": int.__ge__,
}


# -- compiled conditions ------------------------------------------------------------------

Test = Callable[[PushEvent, Member], bool]


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition; `per_member` says whether its result depends on the member.

    `member_match` says, for a per-member condition, which members it can be true for, so
    a room's members can be looked up instead of tested one by one: `("user_id", key)`,
    `("localpart", key)` (the value at `key` names them; whole words when `key` is
    `content.body`), `("listed", key)` (the array at `key` holds their ID) or
    `("display_name",)`.
    """

    test: Test
    per_member: bool
    member_match: tuple[str, ...] | None = None


_NEVER = Condition(lambda event, member: False, False)


def compile_condition(spec: Mapping[str, Any]) -> Condition:
    """A condition of a rule; an unrecognised or malformed one never matches."""
    kind = spec.get("kind")
    key = spec.get("key")
    if kind == "event_match" and isinstance(key, str):
        words = key == "content.body"
        pattern_type = spec.get("pattern_type")
        if pattern_type in ("user_id", "user_localpart"):
            own = (lambda m: m.user_id) if pattern_type == "user_id" else (lambda m: m.localpart)

            def test(event: PushEvent, member: Member) -> bool:
                value = event.flat.get(key)
                if not isinstance(value, str):
                    return False
                literal = own(member)
                if words and literal.casefold() not in event.body_folded:
                    return False
                return _escaped_matcher(literal, words)(value) is not None

            return Condition(test, True, ("user_id" if pattern_type == "user_id" else "localpart", key))
        pattern = spec.get("pattern")
        if not isinstance(pattern, str):
            return _NEVER
        matcher = glob_matcher(pattern, words)

        def test(event: PushEvent, member: Member) -> bool:
            value = event.flat.get(key)
            return isinstance(value, str) and matcher(value) is not None

        return Condition(test, False)
    if kind in ("event_property_is", "event_property_contains") and isinstance(key, str):
        if kind == "event_property_contains" and spec.get("value_type") == "user_id":
            return Condition(lambda event, member: (str, member.user_id) in _array(event.flat.get(key)), True,
                             ("listed", key))
        if "value" not in spec or not _is_scalar(spec["value"]):
            return _NEVER
        wanted = spec["value"]
        if kind == "event_property_is":
            return Condition(lambda event, member: key in event.flat and _same_value(event.flat[key], wanted), False)
        pair = (type(wanted), wanted)
        return Condition(lambda event, member: pair in _array(event.flat.get(key)), False)
    if kind == "contains_display_name":
        return Condition(_contains_display_name, True, ("display_name",))
    if kind == "room_member_count":
        parsed = _MEMBER_COUNT.match(spec.get("is") or "") if isinstance(spec.get("is"), str) else None
        if parsed is None:
            return _NEVER
        compare, number = _COMPARE[parsed.group(1) or "=="], int(parsed.group(2))
        return Condition(lambda event, member: compare(event.room_member_count, number), False)
    if kind == "sender_notification_permission" and isinstance(key, str):
        return Condition(lambda event, member: event.sender_power_level >= event.notification_level(key), False)
    return _NEVER


def _array(value: Any) -> frozenset:
    return value if isinstance(value, frozenset) else frozenset()


def _contains_display_name(event: PushEvent, member: Member) -> bool:
    """The body names the member's display name as whole words, in any case."""
    body = event.flat.get("content.body")
    name = member.display_name
    return (isinstance(body, str) and bool(name) and name.casefold() in event.body_folded
            and _escaped_matcher(name, True)(body) is not None)


# -- rule sets ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    legacy_mention: bool
    #: The actions as JSON text, serialised once (they are stored with each notification).
    actions_json: str = "[]"
    #: What `notifies(actions)` says, worked out once.
    notify: bool = False
    highlight: bool = False


def _content_rule_conditions(rule: Mapping[str, Any]) -> list[dict[str, Any]]:
    if rule.get("pattern_type") == "user_localpart":
        return [{"kind": "event_match", "key": "content.body", "pattern_type": "user_localpart"}]
    return [{"kind": "event_match", "key": "content.body", "pattern": rule.get("pattern")}]


def _conditions_of(kind: str, rule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The conditions a rule stands for: its own, or those its kind implies."""
    if kind == "content":
        return _content_rule_conditions(rule)
    if kind == "room":
        return [_match("room_id", rule.get("rule_id", ""))]
    if kind == "sender":
        return [_match("sender", rule.get("rule_id", ""))]
    conditions = rule.get("conditions", [])
    return conditions if isinstance(conditions, list) else [{"kind": "malformed"}]


class RuleSet:
    """Compiled rules in the order they are checked (disabled rules left out)."""

    __slots__ = ("rules",)

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def compile(cls, rules_by_kind: Mapping[str, Sequence[Mapping[str, Any]]]) -> "RuleSet":
        """Compile rules in the push rules API's shape; `.m.rule.master` always comes first."""
        ordered = [(kind, rule) for kind in KINDS for rule in rules_by_kind.get(kind, ())]
        ordered.sort(key=lambda pair: pair[1].get("rule_id") != ".m.rule.master")
        compiled = []
        for kind, rule in ordered:
            if not rule.get("enabled", True):
                continue
            conditions = tuple(compile_condition(c if isinstance(c, Mapping) else {}) for c in _conditions_of(kind, rule))
            actions = tuple(a for a in rule.get("actions", ()) if not (isinstance(a, str) and a in _HISTORICAL_ACTIONS))
            rule_id = rule.get("rule_id", "")
            compiled.append(Rule(rule_id, conditions, actions, rule_id in LEGACY_MENTION_RULES,
                                 orjson.dumps(actions).decode(), *notifies(actions)))
        return cls(compiled)

    def narrow(self, event: PushEvent) -> "RuleSet":
        """The rules that can still match `event`, keeping only their per-member conditions.

        Every condition that does not depend on the member is evaluated here, once, and the
        rules after the first one that matches unconditionally are dropped.
        """
        nobody = Member("")
        skip_legacy = event.has_mentions
        kept = []
        for rule in self.rules:
            if skip_legacy and rule.legacy_mention:
                continue
            remaining = []
            for condition in rule.conditions:
                if condition.per_member:
                    remaining.append(condition)
                elif not condition.test(event, nobody):
                    break
            else:
                kept.append(Rule(rule.rule_id, tuple(remaining), rule.actions, rule.legacy_mention, rule.actions_json,
                                 rule.notify, rule.highlight))
                if not remaining:
                    break
        return RuleSet(kept)


def evaluate(rules: RuleSet, event: PushEvent, member: Member) -> tuple[Action, ...]:
    """The actions of the first rule that matches `event` for `member` (empty when none does).

    `rules` may be a full rule set or one narrowed for this event; both give the same answer.
    """
    rule = matching_rule(rules, event, member)
    return rule.actions if rule is not None else ()


def matching_rule(rules: RuleSet, event: PushEvent, member: Member) -> Rule | None:
    """The first rule that matches `event` for `member`, or None."""
    for rule in rules.rules:
        if rule.legacy_mention and event.has_mentions:
            continue
        for condition in rule.conditions:
            if not condition.test(event, member):
                break
        else:
            return rule
    return None


def generic_rule(narrowed: RuleSet) -> Rule | None:
    """The rule that matches for a member no per-member condition names (no mention, no
    display name): the first narrowed rule without conditions left."""
    return next((rule for rule in narrowed.rules if not rule.conditions), None)


def notifies(actions: Sequence[Action]) -> tuple[bool, bool]:
    """(notify, highlight) of a rule's actions; a highlight tweak without a value is true."""
    notify = highlight = False
    for action in actions:
        if action == "notify":
            notify = True
        elif isinstance(action, dict) and action.get("set_tweak") == "highlight":
            highlight = action.get("value", True) is True
    return notify, highlight


#: The default rules, compiled once.
DEFAULT_RULESET = RuleSet.compile(default_rules())
