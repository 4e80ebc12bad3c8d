"""Events of another server, built by hand, for the room graph tests: each names the prev
events it is given and cites the auth events the state it is given selects."""

from __future__ import annotations

import itertools

from ranvier.events import auth as auth_rules
from ranvier.events.model import Event, build_event
from ranvier.events.signing import SigningKey

REMOTE = "remote.test"
BOB = f"@bob:{REMOTE}"
CAROL = f"@carol:{REMOTE}"

_clock = itertools.count(10_000_000)


class RemoteServer:
    """Another server's view of a room: it builds events on the state and prev events
    it is told about."""

    def __init__(self, name: str = REMOTE) -> None:
        self.name = name
        self.key = SigningKey.generate()

    def event(self, room_id: str, version, state: dict, prevs: list[Event], sender: str, event_type: str,
              content: dict, state_key: str | None = None, *, ts: int | None = None) -> Event:
        keys = auth_rules.auth_types_for_event(version, event_type, sender, state_key, content)
        auth_ids = [state[key].event_id for key in keys if key in state]
        return build_event(version, room_id=room_id, sender=sender, type=event_type, content=content,
                           state_key=state_key, prev_event_ids=[p.event_id for p in prevs],
                           auth_event_ids=auth_ids, depth=max(p.depth for p in prevs) + 1,
                           origin_server_ts=ts if ts is not None else next(_clock), signing_key=self.key,
                           server_name=self.name)


def after(state: dict, *events: Event) -> dict:
    """A state map moved on by some state events."""
    state = dict(state)
    for event in events:
        if event.is_state:
            state[(event.type, event.state_key)] = event
    return state
