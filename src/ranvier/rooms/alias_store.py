"""The reads and writes of local room aliases and of the public room directories (the
server's own, `rooms.is_public`, and those of application services' networks,
`appservice_room_list`), a part of `RoomStore` (used by rooms/directory.py,
rooms/upgrade.py and the room server)."""

from __future__ import annotations

from ranvier.storage.engine import Database, any_of


class AliasQueries:
    db: Database

    async def room_of_alias(self, alias: str) -> str | None:
        return await self.db.fetchval("SELECT room_id FROM room_aliases WHERE alias = ?", alias)

    async def create_alias(self, alias: str, room_id: str, creator: str) -> bool:
        """Map a local alias to a room; False if the alias is already taken."""
        return bool(await self.db.execute(
            "INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?) ON CONFLICT (alias) DO NOTHING",
            alias, room_id, creator,
        ))

    async def alias_entry(self, alias: str) -> tuple[str, str] | None:
        """(room_id, creator) of a local alias, or None."""
        row = await self.db.fetchone("SELECT room_id, creator FROM room_aliases WHERE alias = ?", alias)
        return (row[0], row[1]) if row else None

    async def delete_alias(self, alias: str) -> bool:
        return bool(await self.db.execute("DELETE FROM room_aliases WHERE alias = ?", alias))

    async def aliases_of_room(self, room_id: str) -> list[str]:
        rows = await self.db.fetchall("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", room_id)
        return [row[0] for row in rows]

    async def aliases_of_rooms(self, room_ids: list[str]) -> dict[str, list[str]]:
        """room_id -> its local aliases, for the rooms that have any (one query)."""
        if not room_ids:
            return {}
        condition, ids = any_of(self.db, room_ids)
        found: dict[str, list[str]] = {}
        for alias, room_id in await self.db.fetchall(
                f"SELECT alias, room_id FROM room_aliases WHERE room_id {condition} ORDER BY alias", ids):
            found.setdefault(room_id, []).append(alias)
        return found

    async def move_aliases(self, old_room_id: str, new_room_id: str) -> list[str]:
        """Point every local alias of one room at another (room upgrades); returns them."""
        async with self.db.transaction() as txn:
            rows = await txn.fetchall("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", old_room_id)
            await txn.execute("UPDATE room_aliases SET room_id = ? WHERE room_id = ?", new_room_id, old_room_id)
        return [row[0] for row in rows]

    async def set_network_public(self, room_id: str, service_id: str, network_id: str, public: bool) -> None:
        """Publish (or hide) a room in the directory of an application service's network."""
        if public:
            await self.db.execute(
                "INSERT INTO appservice_room_list (appservice_id, network_id, room_id) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", service_id, network_id, room_id)
        else:
            await self.db.execute(
                "DELETE FROM appservice_room_list WHERE appservice_id = ? AND network_id = ? AND room_id = ?",
                service_id, network_id, room_id)

    async def public_rooms(self, network: tuple[str, str] | None = None, *,
                           all_networks: bool = False) -> list[tuple[str, str | None, int]]:
        """(room_id, room_type, joined member count) of every room published in the
        server's own directory, oldest first (the order the draft API's public room list
        pages by); of those published in one network's directory instead (`network`:
        service ID, network ID), or of both kinds (`all_networks`)."""
        args: tuple[str, ...] = ()
        if network is not None:
            published = ("r.room_id IN (SELECT l.room_id FROM appservice_room_list l "
                         "WHERE l.appservice_id = ? AND l.network_id = ?)")
            args = network
        elif all_networks:
            published = "(r.is_public = 1 OR r.room_id IN (SELECT l.room_id FROM appservice_room_list l))"
        else:
            published = "r.is_public = 1"
        rows = await self.db.fetchall(
            "SELECT r.room_id, r.room_type, COUNT(m.user_id) FROM rooms r "
            "LEFT JOIN memberships m ON m.room_id = r.room_id AND m.membership = 'join' "
            f"WHERE {published} GROUP BY r.room_id, r.room_type, r.created_ts ORDER BY r.created_ts, r.room_id",
            *args,
        )
        return [(row[0], row[1], int(row[2])) for row in rows]
