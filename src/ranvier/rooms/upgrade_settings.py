"""What a room upgrade carries over for each member (spec: client-server API, "Room
Upgrades": "When a user joins the new room, the server should automatically
transfer/replicate some of the user's personalized settings such as notifications, tags").

As Synapse does when one of its users upgrades a room, every local member of the old room
gets, for the new room: their tags of the old one, the new room in each of their m.direct
lists that holds the old one (a direct chat stays direct), and a copy of each of their
enabled push rules about the old room (a muted room stays muted).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of

if TYPE_CHECKING:
    from ranvier.push.service import PushService
    from ranvier.rooms.service import RoomServer
    from ranvier.users.account_data import AccountData

log = logging.getLogger(__name__)


async def carry_over_member_settings(rooms: "RoomServer", account_data: "AccountData", push: "PushService",
                                     old_room_id: str, new_room_id: str) -> None:
    """Copy the settings of the old room's local members to the new room. A copy that is
    refused (a member at the limit of their own push rules) is logged: the upgrade is done,
    and the other members still get theirs."""
    head = await rooms.head(old_room_id)
    for user_id in sorted(head.joined):
        if domain_of(user_id) != rooms.server_name:
            continue
        try:
            await account_data.copy_room_entries(user_id, old_room_id, new_room_id)
            await push.copy_room_rules(user_id, old_room_id, new_room_id)
        except MatrixError as exc:
            log.warning("upgrade of %s: could not carry %s's settings over to %s: %s %s", old_room_id, user_id,
                        new_room_id, exc.errcode, exc.message)
