"""History visibility: which events of a room a user may see (spec, history_visibility).

The visibility setting is recorded on each event as it is stored (it applies at the point
an event is sent), and a user's membership at an event comes from their membership
history in the room, so a page of events is checked without loading any state.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ranvier.rooms.store import EventRow

MembershipHistory = list[tuple[int, str]]  # (stream_ordering, membership), ascending


def _membership_at(history: MembershipHistory, position: int, *, inclusive: bool) -> str | None:
    positions = [stream for stream, _ in history]
    index = (bisect_right if inclusive else bisect_left)(positions, position) - 1
    return history[index][1] if index >= 0 else None


def joined_at(history: MembershipHistory, position: int) -> bool:
    """Whether the user was joined when the event at stream `position` was sent."""
    return _membership_at(history, position, inclusive=True) == "join"


def _allowed(visibility: str, membership: str | None, joined_later: bool) -> bool:
    if visibility == "world_readable" or membership == "join":
        return True
    if visibility == "shared" and joined_later:
        return True
    return visibility == "invited" and membership == "invite"


def is_visible(row: EventRow, user_id: str, history: MembershipHistory) -> bool:
    """The spec's rules, with its two exceptions: a history visibility change is visible
    if the setting before or after allows it, and so is a user's own membership change
    if their membership before or after allows it."""
    event = row.event
    if event.type == "m.room.member" and event.state_key == user_id and event.membership in ("leave", "ban"):
        return True  # how a user left (a declined invite, a kick): clients need to see it
    position = row.stream_ordering
    joined_later = any(membership == "join" and stream >= position for stream, membership in history)
    before = _membership_at(history, position, inclusive=False)
    after = _membership_at(history, position, inclusive=True)
    visibilities = [row.history_visibility]
    if event.type == "m.room.history_visibility" and event.state_key == "":
        new_setting = event.content.get("history_visibility")
        visibilities.append(new_setting if isinstance(new_setting, str) else "shared")
    memberships = [before, after] if event.type == "m.room.member" and event.state_key == user_id else [after]
    return any(_allowed(v, m, joined_later) for v in visibilities for m in memberships)
