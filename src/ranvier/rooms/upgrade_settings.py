"""What a room upgrade carries over for each member (spec: client-server API, "Room
Upgrades": "When a user joins the new room, the server should automatically
transfer/replicate some of the user's personalized settings such as notifications, tags").

As Synapse does, a user gets, for the new room: their tags of the old one, the new room in
each of their m.direct lists that holds the old one (a direct chat stays direct), and a
copy of each of their enabled push rules about the old room (a muted room stays muted).
Every local member of the old room gets them when one of this server's users upgrades it;
a local user who joins the new room later (an upgrade made on another server, or a user
who was not in the old room then) gets them as they join.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.events.model import CREATE
from ranvier.rooms.upgrade import TOMBSTONE

if TYPE_CHECKING:
    from ranvier.push.service import PushService
    from ranvier.rooms.service import RoomServer
    from ranvier.users.account_data import AccountData

log = logging.getLogger(__name__)


async def carry_over_on_join(rooms: "RoomServer", account_data: "AccountData", push: "PushService",
                             user_id: str, room_id: str) -> None:
    """`user_id` has just joined `room_id`: when its create event names a predecessor whose
    tombstone names this room back, the user's settings of that room are copied to this one.
    (Anyone may name any room as the predecessor of a room they create; only the old room's
    tombstone, sent by someone with the power to, says the new room replaces it.)"""
    head = await rooms.head_if_known(room_id)
    create = head.state.get((CREATE, "")) if head is not None else None
    predecessor = create.content.get("predecessor") if create is not None else None
    old_room_id = predecessor.get("room_id") if isinstance(predecessor, dict) else None
    if not isinstance(old_room_id, str) or old_room_id == room_id:
        return
    old = await rooms.head_if_known(old_room_id)
    tombstone = old.state.get((TOMBSTONE, "")) if old is not None else None
    if tombstone is not None and tombstone.content.get("replacement_room") == room_id:
        await _carry_over(account_data, push, user_id, old_room_id, room_id)


async def _carry_over(account_data: "AccountData", push: "PushService", user_id: str, old_room_id: str,
                      new_room_id: str) -> None:
    try:
        await account_data.copy_room_entries(user_id, old_room_id, new_room_id)
        await push.copy_room_rules(user_id, old_room_id, new_room_id)
    except MatrixError as exc:
        log.warning("upgrade of %s: could not carry %s's settings over to %s: %s %s", old_room_id, user_id,
                    new_room_id, exc.errcode, exc.message)


async def carry_over_member_settings(rooms: "RoomServer", account_data: "AccountData", push: "PushService",
                                     old_room_id: str, new_room_id: str) -> None:
    """Copy the settings of the old room's local members to the new room. A copy that is
    refused (a member at the limit of their own push rules) is logged: the upgrade is done,
    and the other members still get theirs."""
    head = await rooms.head(old_room_id)
    for user_id in sorted(head.joined):
        if domain_of(user_id) == rooms.server_name:
            await _carry_over(account_data, push, user_id, old_room_id, new_room_id)
