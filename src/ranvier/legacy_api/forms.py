"""Today's events in the draft's Event Data form (docs/legacy-api.md, "Events").

The draft's forms: m.room.message (with its msg_id and the server's `from` and
timestamps), m.room.member (`user_id`, and `from` when someone else made the change),
m.room.topic, m.room.message.feedback and m.presence. Other message-like events keep the
generic form (event_id, type, room_id, from, content); other state events, redactions and
redacted events have no draft form and are left out.
"""

from __future__ import annotations

from typing import Any

from ranvier.events.model import MEMBER, REDACTION, Event
from ranvier.legacy_api.ids import user_to_draft
from ranvier.legacy_api.store import Feedback

MESSAGE, TOPIC, FEEDBACK, PRESENCE = "m.room.message", "m.room.topic", "m.room.message.feedback", "m.presence"
#: Keys the server attaches to messages and feedback; a client's keys of these names are dropped.
SERVER_KEYS = ("from", "hs_ts", "hsob_ts", "hsib_ts")
#: The memberships the draft knows; a ban reads as leave, a knock has no draft form.
DRAFT_MEMBERSHIP = {"join": "join", "invite": "invite", "leave": "leave", "ban": "leave"}
#: Types only the draft API makes; an event of today's API with such a type is left out.
DRAFT_ONLY_TYPES = (FEEDBACK, PRESENCE)


def server_timestamps(ts: int) -> dict[str, int]:
    """hs_ts as the draft's examples show it, hsob_ts and hsib_ts as its text names them
    (one server, so the three agree)."""
    return {"hs_ts": ts, "hsob_ts": ts, "hsib_ts": ts}


def has_draft_form(event: Event, redacted: bool) -> bool:
    if redacted:
        return False
    if event.type == MESSAGE:
        return not event.is_state and isinstance(event.content.get("msgtype"), str)
    if event.type == MEMBER:
        return event.membership in DRAFT_MEMBERSHIP
    if event.type == TOPIC:
        return event.state_key == "" and isinstance(event.content.get("topic"), str)
    return not event.is_state and event.type != REDACTION and event.type not in DRAFT_ONLY_TYPES


def room_event(event: Event, room_name: str, msg_id: str | None) -> dict[str, Any]:
    """An event that `has_draft_form`, as the draft's Event Data."""
    if event.type == MESSAGE:
        return message(event, room_name, msg_id)
    if event.type == MEMBER:
        return member(event, room_name)
    data: dict[str, Any] = {"event_id": event.event_id, "type": event.type, "room_id": room_name,
                            "from": user_to_draft(event.sender)}
    if event.type != TOPIC:
        data.update(server_timestamps(event.origin_server_ts))
    data["content"] = event.content
    return data


def message(event: Event, room_name: str, msg_id: str | None) -> dict[str, Any]:
    """A message; one sent through today's API has its event ID as msg_id."""
    return {"event_id": event.event_id, "type": MESSAGE, "room_id": room_name, "msg_id": msg_id or event.event_id,
            "from": user_to_draft(event.sender), **server_timestamps(event.origin_server_ts),
            "content": event.content}


def member(event: Event, room_name: str) -> dict[str, Any]:
    data: dict[str, Any] = {"event_id": event.event_id, "type": MEMBER, "room_id": room_name,
                            "user_id": user_to_draft(event.state_key)}
    if event.sender != event.state_key:
        data["from"] = user_to_draft(event.sender)
    data["content"] = member_content(event)
    return data


def member_content(event: Event) -> dict[str, Any]:
    return {**event.content, "membership": DRAFT_MEMBERSHIP[event.membership]}


def feedback_content(feedback: Feedback) -> dict[str, Any]:
    return {} if feedback.sender_ts is None else {"sender_ts": feedback.sender_ts}


def compressed_feedback(feedback: Feedback) -> dict[str, Any]:
    """A feedback bundled with its message: the message's own keys left out."""
    return {"from": user_to_draft(feedback.user_id), "feedback": feedback.kind,
            **server_timestamps(feedback.hs_ts), "content": feedback_content(feedback)}


def feedback_event(feedback: Feedback, room_name: str, message_sender: str, msg_id: str) -> dict[str, Any]:
    return {"event_id": feedback.feedback_event_id, "type": FEEDBACK, "room_id": room_name, "msg_id": msg_id,
            "msgfrom": user_to_draft(message_sender), **compressed_feedback(feedback)}


def presence_event(stream_id: int, content: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": f"presence-{stream_id}", "type": PRESENCE, "content": content}
