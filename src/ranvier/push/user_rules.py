"""A user's push rules: their own rules and their changes to the server-default ones.

Pure code. The rules are kept, as the spec says, in the user's `m.push_rules` account data,
whose content is the whole rule set as the push rules API shows it. `UserRules` reads that
content back into what the user chose (their own rules in order, and the `enabled` flag
and `actions` of each default rule they changed), applies the push rules API's edits, and
merges both with the current default rules in the spec's order: `.m.rule.master` first,
then within each kind the user's rules before the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ranvier.errors import MatrixError
from ranvier.push.rules import KINDS, RuleSet, default_rules

MASTER = ".m.rule.master"
#: Own rules a user may have in all; each one is evaluated for every event in their rooms.
MAX_OWN_RULES = 500
#: Actions of older spec versions: accepted, and stripped as the spec asks.
HISTORICAL_ACTIONS = ("dont_notify", "coalesce")
_MEMBER_COUNT = re.compile(r"^(==|<=|>=|<|>)?[0-9]+$")
_DEFAULTS = default_rules()
_DEFAULT_BY_ID = {(kind, rule["rule_id"]): rule for kind in KINDS for rule in _DEFAULTS[kind]}


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise MatrixError("M_INVALID_PARAM", f"Unknown push rule kind {kind!r}; one of {', '.join(KINDS)}")
    return kind


def is_server_default(rule_id: str) -> bool:
    return rule_id.startswith(".")


def check_actions(actions: Any) -> list[Any]:
    """The actions of a rule as a client gives them, historical ones stripped."""
    if not isinstance(actions, list):
        raise MatrixError("M_BAD_JSON", "actions must be an array")
    kept: list[Any] = []
    for action in actions:
        if action == "notify":
            kept.append(action)
        elif isinstance(action, str) and action in HISTORICAL_ACTIONS:
            continue
        elif isinstance(action, dict) and isinstance(action.get("set_tweak"), str) and action["set_tweak"]:
            kept.append(action)
        else:
            raise MatrixError("M_BAD_JSON", f"Unknown push rule action {action!r}")
    return kept


def check_conditions(conditions: Any) -> list[dict[str, Any]]:
    """Conditions of a new override or underride rule. The parameters of the spec's kinds
    are checked; a kind the spec does not define is kept (it never matches, as the spec says)."""
    if not isinstance(conditions, list):
        raise MatrixError("M_BAD_JSON", "conditions must be an array")
    checked = []
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise MatrixError("M_BAD_JSON", "Each condition must be an object with a string kind")
        kind = condition["kind"]
        if kind in ("event_match", "event_property_is", "event_property_contains", "sender_notification_permission"):
            if not isinstance(condition.get("key"), str):
                raise MatrixError("M_BAD_JSON", f"A {kind} condition needs a string key")
        if kind == "event_match" and not isinstance(condition.get("pattern"), str):
            raise MatrixError("M_BAD_JSON", "An event_match condition needs a string pattern")
        if kind in ("event_property_is", "event_property_contains"):
            value = condition.get("value", ...)
            if not (value is None or isinstance(value, (str, bool)) or type(value) is int):
                raise MatrixError("M_BAD_JSON", f"A {kind} condition needs a string, integer, boolean or null value")
        if kind == "room_member_count" and not (isinstance(condition.get("is"), str)
                                                and _MEMBER_COUNT.match(condition["is"])):
            raise MatrixError("M_BAD_JSON", "room_member_count needs `is`: a number, optionally after ==, <, >, <= or >=")
        # pattern_type and value_type name the owner in the server's own rules only.
        checked.append({k: v for k, v in condition.items() if k not in ("pattern_type", "value_type")})
    return checked


def new_rule(kind: str, rule_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A user's rule from the body of PUT /pushrules/global/{kind}/{ruleId}."""
    if is_server_default(rule_id):
        raise MatrixError("M_INVALID_PARAM", "Rule IDs starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id or not rule_id:
        raise MatrixError("M_INVALID_PARAM", "Rule IDs may not contain slashes or backslashes")
    if "actions" not in body:
        raise MatrixError("M_MISSING_PARAM", "Missing required field: actions")
    rule: dict[str, Any] = {"rule_id": rule_id, "default": False, "enabled": True,
                            "actions": check_actions(body["actions"])}
    if kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str):
            raise MatrixError("M_MISSING_PARAM" if pattern is None else "M_BAD_JSON",
                              "Content rules need a string pattern")
        rule["pattern"] = pattern
    elif kind in ("override", "underride"):
        rule["conditions"] = check_conditions(body.get("conditions", []))
    return rule


@dataclass
class UserRules:
    """What one user chose: their own rules per kind, and their changes to default rules."""

    own: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    #: (kind, default rule_id) -> {"enabled": bool} and/or {"actions": [...]}
    changed: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_content(cls, content: Any) -> "UserRules":
        """Read back stored `m.push_rules` content; anything malformed in it is skipped."""
        rules = cls()
        ruleset = content.get("global") if isinstance(content, dict) else None
        if not isinstance(ruleset, dict):
            return rules
        for kind in KINDS:
            stored = ruleset.get(kind)
            for rule in stored if isinstance(stored, list) else ():
                if not isinstance(rule, dict) or not isinstance(rule.get("rule_id"), str):
                    continue
                rule_id = rule["rule_id"]
                if is_server_default(rule_id):
                    default = _DEFAULT_BY_ID.get((kind, rule_id))
                    if default is not None:
                        change = {name: rule[name] for name in ("enabled", "actions")
                                  if name in rule and rule[name] != default[name]}
                        if change:
                            rules.changed[(kind, rule_id)] = change
                elif isinstance(rule.get("actions"), list):
                    rules.own[kind].append({**rule, "default": False, "enabled": rule.get("enabled", True) is not False})
        return rules

    @property
    def is_default(self) -> bool:
        return not self.changed and not any(self.own.values())

    def merged(self) -> dict[str, list[dict[str, Any]]]:
        """The whole rule set in evaluation order, defaults as data (owner-independent)."""
        result: dict[str, list[dict[str, Any]]] = {}
        for kind in KINDS:
            defaults = [{**rule, **self.changed.get((kind, rule["rule_id"]), {})} for rule in _DEFAULTS[kind]]
            master = [rule for rule in defaults if rule["rule_id"] == MASTER]
            rest = [rule for rule in defaults if rule["rule_id"] != MASTER]
            result[kind] = master + self.own[kind] + rest
        return result

    def compile(self) -> RuleSet:
        return RuleSet.compile(self.merged())

    def content(self, user_id: str) -> dict[str, Any]:
        """The rule set as the push rules API and `m.push_rules` show it to `user_id`."""
        return {kind: [render_rule(rule, user_id) for rule in rules] for kind, rules in self.merged().items()}

    # -- the push rules API's edits --------------------------------------------------------

    def find(self, kind: str, rule_id: str) -> dict[str, Any]:
        for rule in self.merged()[check_kind(kind)]:
            if rule["rule_id"] == rule_id:
                return rule
        raise MatrixError("M_NOT_FOUND", "The push rule was not found")

    def put(self, kind: str, rule: dict[str, Any], *, before: str | None, after: str | None) -> None:
        """Add or replace a user rule; a new one without before/after becomes the most important."""
        own = self.own[check_kind(kind)]
        rule_id = rule["rule_id"]
        existing = next((i for i, r in enumerate(own) if r["rule_id"] == rule_id), None)
        if existing is not None and before is None and after is None:
            own[existing] = rule
            return
        remaining = [r for r in own if r["rule_id"] != rule_id]
        if existing is None and sum(len(rules) for rules in self.own.values()) >= MAX_OWN_RULES:
            raise MatrixError("M_INVALID_PARAM", f"A user may have at most {MAX_OWN_RULES} push rules of their own")
        anchor = before if before is not None else after
        if anchor is None:
            index = 0
        else:
            found = next((i for i, r in enumerate(remaining) if r["rule_id"] == anchor), None)
            if found is None:
                raise MatrixError("M_UNKNOWN", f"before/after rule not found: {anchor}")
            index = found if before is not None else found + 1
        remaining.insert(index, rule)
        self.own[kind] = remaining

    def delete(self, kind: str, rule_id: str) -> None:
        if is_server_default(rule_id):
            self.find(kind, rule_id)
            raise MatrixError("M_INVALID_PARAM", "Server-default push rules cannot be deleted")
        own = self.own[check_kind(kind)]
        kept = [rule for rule in own if rule["rule_id"] != rule_id]
        if len(kept) == len(own):
            raise MatrixError("M_NOT_FOUND", "The push rule was not found")
        self.own[kind] = kept

    def copy_room_rules(self, old_room_id: str, new_room_id: str) -> bool:
        """Give a room's replacement (a room upgrade) a copy of each enabled rule of the user's
        that names the old room: a room rule (its ID is the room), or an override or underride
        rule with a `room_id` condition on it. Each copy is named after the new room, as
        Synapse names them, and its conditions name the new room; a rule of that name that
        exists already is kept. Whether anything was copied."""
        copied = False
        for kind in KINDS:
            for rule in list(self.own[kind]):
                about_room = rule["rule_id"] == old_room_id if kind == "room" else any(
                    condition.get("key") == "room_id" and condition.get("pattern") == old_room_id
                    for condition in rule.get("conditions", ()))
                if not about_room or not rule["enabled"] or any(r["rule_id"] == new_room_id for r in self.own[kind]):
                    continue
                copy = {**rule, "rule_id": new_room_id}
                if "conditions" in rule:
                    copy["conditions"] = [
                        {**condition, "pattern": new_room_id}
                        if condition.get("key") == "room_id" and condition.get("pattern") == old_room_id else condition
                        for condition in rule["conditions"]]
                self.put(kind, copy, before=None, after=None)
                copied = True
        return copied

    def set_attribute(self, kind: str, rule_id: str, name: str, value: Any) -> None:
        """Set `enabled` or `actions` of a user rule or a default rule."""
        self.find(kind, rule_id)
        if is_server_default(rule_id):
            change = {**self.changed.get((kind, rule_id), {}), name: value}
            default = _DEFAULT_BY_ID[(kind, rule_id)]
            change = {key: item for key, item in change.items() if item != default[key]}
            if change:
                self.changed[(kind, rule_id)] = change
            else:
                self.changed.pop((kind, rule_id), None)
            return
        for rule in self.own[kind]:
            if rule["rule_id"] == rule_id:
                rule[name] = value


def render_rule(rule: Mapping[str, Any], user_id: str) -> dict[str, Any]:
    """A rule as the API shows it to `user_id`: the owner-relative parts of the default
    rules (`pattern_type`, `value_type`) written out as the user's ID or localpart."""
    localpart = user_id[1:].partition(":")[0]
    owner = {"user_id": user_id, "user_localpart": localpart}
    shown = {key: value for key, value in rule.items() if key != "pattern_type"}
    if rule.get("pattern_type") in owner:
        shown["pattern"] = owner[rule["pattern_type"]]
    if "conditions" in rule:
        shown["conditions"] = [_render_condition(c, owner) for c in rule["conditions"]]
    return shown


def _render_condition(condition: Mapping[str, Any], owner: dict[str, str]) -> dict[str, Any]:
    shown = {key: value for key, value in condition.items() if key not in ("pattern_type", "value_type")}
    if condition.get("pattern_type") in owner:
        shown["pattern"] = owner[condition["pattern_type"]]
    if condition.get("value_type") in owner:
        shown["value"] = owner[condition["value_type"]]
    return shown
