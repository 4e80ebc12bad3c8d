"""Which members of a room need their push rules evaluated for an event.

Pure code. Most members of a room get what the server-default rules give a member that
no per-member condition names; only a few can get something else: those a per-member
condition names (mentioned, display name or localpart in the body, the invitee), and
those whose own rules could match the event. `Audience` is built once per room and
membership (and again when a member changes their rules) with indexes that find those
few without looking at every member: own rules are indexed by the sender, type or body
word they need; rules that need another room are left out; rules that cannot be indexed
put their owner on the `always` list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ranvier.push.rules import KINDS, PushEvent, RuleSet, glob_matcher
from ranvier.push.user_rules import MASTER, UserRules

_GLOB = re.compile(r"[*?]")


def literal_part(pattern: str) -> str:
    """The longest run of a glob pattern without wildcards, case-folded: any value the
    pattern matches contains it."""
    return max(_GLOB.split(pattern), key=len).casefold()


@dataclass(slots=True)
class Audience:
    """A room's local members, and the indexes that find who needs a full evaluation."""

    #: The joined-members mapping this was built from (its identity tells when it is stale).
    joined: Mapping[str, Any]
    local: frozenset[str]
    #: (case-folded display name, user) and (case-folded localpart, user) of local members.
    names: list[tuple[str, str]] = field(default_factory=list)
    localparts: list[tuple[str, str]] = field(default_factory=list)
    #: Members with own rules that may match any event here (or that no index covers).
    always: set[str] = field(default_factory=set)
    by_sender: dict[str, set[str]] = field(default_factory=dict)
    by_type: dict[str, set[str]] = field(default_factory=dict)
    #: (case-folded word the body must contain, user) of own body-matching rules.
    body_words: list[tuple[str, str]] = field(default_factory=list)
    #: Default rule ID -> members who changed its `enabled` or `actions`.
    by_default_rule: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, room_id: str, joined: Mapping[str, Any], is_local: Callable[[str], bool],
              rules_of: Callable[[str], UserRules | None]) -> "Audience":
        local = frozenset(user_id for user_id in joined if is_local(user_id))
        audience = cls(joined, local)
        for user_id in local:
            name = joined[user_id].content.get("displayname")
            if isinstance(name, str) and name:
                audience.names.append((name.casefold(), user_id))
            audience.localparts.append((user_id[1:].partition(":")[0].casefold(), user_id))
            rules = rules_of(user_id)
            if rules is not None:
                audience._index(room_id, user_id, rules)
        return audience

    def _index(self, room_id: str, user_id: str, rules: UserRules) -> None:
        for kind, rule_id in rules.changed:
            if rule_id == MASTER:
                self.always.add(user_id)
            self.by_default_rule.setdefault(rule_id, set()).add(user_id)
        for kind in KINDS:
            for rule in rules.own[kind]:
                if rule.get("enabled", True):
                    self._index_rule(room_id, user_id, kind, rule)

    def _index_rule(self, room_id: str, user_id: str, kind: str, rule: Mapping[str, Any]) -> None:
        if kind == "room":
            conditions: Iterable[Any] = [{"kind": "event_match", "key": "room_id", "pattern": rule["rule_id"]}]
        elif kind == "sender":
            conditions = [{"kind": "event_match", "key": "sender", "pattern": rule["rule_id"]}]
        elif kind == "content":
            conditions = [{"kind": "event_match", "key": "content.body", "pattern": rule.get("pattern", "")}]
        else:
            conditions = rule.get("conditions", [])
        for condition in conditions:
            if not isinstance(condition, dict) or condition.get("kind") != "event_match":
                continue
            key, pattern = condition.get("key"), condition.get("pattern")
            if not isinstance(pattern, str):
                continue
            if key == "room_id":
                if glob_matcher(pattern, False)(room_id) is None:
                    return  # needs another room: it can never match here
            elif key in ("sender", "type") and not _GLOB.search(pattern):
                index = self.by_sender if key == "sender" else self.by_type
                index.setdefault(pattern.casefold(), set()).add(user_id)
                return
            elif key == "content.body" and literal_part(pattern):
                self.body_words.append((literal_part(pattern), user_id))
                return
        self.always.add(user_id)

    def candidates(self, event: PushEvent, narrowed: RuleSet, event_type: str, sender: str) -> set[str]:
        """Local members whose outcome may differ from the generic one (the sender included)."""
        found = set(self.always)
        found |= self.by_sender.get(sender.casefold(), set())
        found |= self.by_type.get(event_type.casefold(), set())
        body = event.body_folded
        if body:
            found.update(user for word, user in self.body_words if word in body)
        for rule in narrowed.rules:
            changed = self.by_default_rule.get(rule.rule_id)
            if changed:
                found |= changed
            for condition in rule.conditions:
                if condition.member_match is not None:
                    found |= self._named(condition.member_match, event)
        return found

    def _named(self, member_match: tuple[str, ...], event: PushEvent) -> set[str]:
        """The local members a per-member condition can be true for."""
        what = member_match[0]
        body = event.body_folded
        if what == "display_name":
            return {user for name, user in self.names if name in body} if body else set()
        if what == "listed":
            listed = event.flat.get(member_match[1])
            if not isinstance(listed, frozenset):
                return set()
            return {value for kind, value in listed if kind is str and value in self.local}
        value = event.flat.get(member_match[1])
        if not isinstance(value, str):
            return set()
        folded = value.casefold()
        if what == "localpart":
            pairs = self.localparts
        else:
            pairs = [(user.casefold(), user) for user in self.local]
        if member_match[1] == "content.body":
            return {user for part, user in pairs if part in folded}
        return {user for part, user in pairs if part == folded}
