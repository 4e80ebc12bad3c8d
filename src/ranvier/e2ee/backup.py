"""Server-side key backups: versions with their auth_data, and the encrypted room keys.

Keys are written only to the current (newest) version; any version that exists can be
read and emptied. The server never sees a key, only the metadata that decides whether
an uploaded key replaces the stored one (`RoomKey.better_than`).
"""

from __future__ import annotations

from typing import Any

import orjson

from ranvier.e2ee.backup_store import BackupStore, BackupVersion, RoomKey
from ranvier.e2ee.locks import KeyedLocks
from ranvier.errors import MatrixError
from ranvier.events.identifiers import is_valid_room_id

ALGORITHMS = ("m.megolm_backup.v1.curve25519-aes-sha2",)
#: Integers the two engines store alike (and JSON numbers keep exact).
_MAX_INT = 2**53
_MAX_SESSION_ID = 255


def check_algorithm(algorithm: Any) -> str:
    if not isinstance(algorithm, str):
        raise MatrixError("M_MISSING_PARAM" if algorithm is None else "M_BAD_JSON", "algorithm must be a string")
    if algorithm not in ALGORITHMS:
        raise MatrixError("M_INVALID_PARAM", f"Unsupported backup algorithm {algorithm!r}")
    return algorithm


def check_auth_data(auth_data: Any) -> str:
    if not isinstance(auth_data, dict):
        raise MatrixError("M_MISSING_PARAM" if auth_data is None else "M_BAD_JSON", "auth_data must be an object")
    return orjson.dumps(auth_data).decode()


def check_room_id(room_id: str) -> str:
    if not is_valid_room_id(room_id):
        raise MatrixError("M_INVALID_PARAM", f"{room_id!r} is not a room ID")
    return room_id


def check_session_id(session_id: str) -> str:
    if not session_id or len(session_id) > _MAX_SESSION_ID:
        raise MatrixError("M_INVALID_PARAM", "Invalid session ID")
    return session_id


def parse_room_key(room_id: str, session_id: str, data: Any) -> RoomKey:
    """One KeyBackupData object: both counts, is_verified and the opaque session_data."""
    if not isinstance(data, dict):
        raise MatrixError("M_BAD_JSON", "Key data must be an object")
    numbers = []
    for name in ("first_message_index", "forwarded_count"):
        value = data.get(name)
        if value is None:
            raise MatrixError("M_MISSING_PARAM", f"Missing {name}")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
            raise MatrixError("M_BAD_JSON", f"{name} must be a non-negative integer")
        numbers.append(value)
    verified, session_data = data.get("is_verified"), data.get("session_data")
    if not isinstance(verified, bool):
        raise MatrixError("M_MISSING_PARAM" if verified is None else "M_BAD_JSON", "is_verified must be a boolean")
    if not isinstance(session_data, dict):
        raise MatrixError("M_MISSING_PARAM" if session_data is None else "M_BAD_JSON", "session_data must be an object")
    return RoomKey(check_room_id(room_id), check_session_id(session_id), numbers[0], numbers[1], verified,
                   orjson.dumps(session_data).decode())


def parse_version(version: str) -> int:
    """A version from a path or query; one that cannot exist is M_NOT_FOUND."""
    if not (version.isascii() and version.isdigit()) or len(version) > 15:
        raise MatrixError("M_NOT_FOUND", "Unknown backup version")
    return int(version)


def version_json(version: BackupVersion) -> dict[str, Any]:
    return {"algorithm": version.algorithm, "auth_data": orjson.loads(version.auth_data), "count": version.count,
            "etag": str(version.etag), "version": str(version.version)}


def sessions_json(keys: list[RoomKey]) -> dict[str, dict[str, Any]]:
    """{room: {"sessions": {session: key data}}}."""
    rooms: dict[str, dict[str, Any]] = {}
    for key in keys:
        rooms.setdefault(key.room_id, {"sessions": {}})["sessions"][key.session_id] = key_json(key)
    return rooms


def key_json(key: RoomKey) -> dict[str, Any]:
    return {"first_message_index": key.first_message_index, "forwarded_count": key.forwarded_count,
            "is_verified": key.is_verified, "session_data": orjson.loads(key.session_data)}


class KeyBackup:
    def __init__(self, store: BackupStore) -> None:
        self.store = store
        #: One write per user at a time: version numbers, and the read-compare-write of keys.
        self._lock = KeyedLocks()

    # -- versions ----------------------------------------------------------------------------

    async def create_version(self, user_id: str, algorithm: Any, auth_data: Any) -> str:
        algorithm, auth_data = check_algorithm(algorithm), check_auth_data(auth_data)
        async with self._lock(user_id):
            return str(await self.store.create_version(user_id, algorithm, auth_data))

    async def version(self, user_id: str, version: str | None = None) -> BackupVersion:
        """The named version, or the current one; M_NOT_FOUND if there is none."""
        found = (await self.store.current_version(user_id) if version is None
                 else await self.store.get_version(user_id, parse_version(version)))
        if found is None:
            raise MatrixError("M_NOT_FOUND", "No current backup version" if version is None else "Unknown backup version")
        return found

    async def update_version(self, user_id: str, version: str, body: dict[str, Any]) -> None:
        """Only auth_data may change: the algorithm and a `version` in the body must match."""
        found = await self.version(user_id, version)
        if check_algorithm(body.get("algorithm")) != found.algorithm:
            raise MatrixError("M_INVALID_PARAM", "The algorithm of a backup cannot change")
        if "version" in body and body["version"] != version:
            raise MatrixError("M_INVALID_PARAM", "The version in the body does not match the path")
        await self.store.set_auth_data(user_id, found.version, check_auth_data(body.get("auth_data")))

    async def delete_version(self, user_id: str, version: str) -> None:
        async with self._lock(user_id):
            if not await self.store.delete_version(user_id, parse_version(version)):
                raise MatrixError("M_NOT_FOUND", "Unknown backup version")

    # -- keys --------------------------------------------------------------------------------

    async def get_keys(self, user_id: str, version: str, room_id: str | None = None,
                       session_id: str | None = None) -> list[RoomKey]:
        found = await self.version(user_id, version)
        return await self.store.get_keys(user_id, found.version, room_id, session_id)

    async def put_keys(self, user_id: str, version: str, keys: list[RoomKey]) -> dict[str, Any]:
        """Store keys in the current version, each replacing a stored one only if better.
        Another version is M_WRONG_ROOM_KEYS_VERSION with the current one."""
        async with self._lock(user_id):
            current = await self.store.current_version(user_id)
            if current is None:
                raise MatrixError("M_NOT_FOUND", "No current backup version")
            if not (version.isascii() and version.isdigit()) or int(version) != current.version:
                raise MatrixError("M_WRONG_ROOM_KEYS_VERSION", "Wrong backup version",
                                  current_version=str(current.version))
            best: dict[tuple[str, str], RoomKey] = {}
            for key in keys:
                seen = best.get((key.room_id, key.session_id))
                if seen is None or key.better_than(seen):
                    best[(key.room_id, key.session_id)] = key
            etag, count = await self.store.put_keys(user_id, current.version, list(best.values()))
        return {"etag": str(etag), "count": count}

    async def delete_keys(self, user_id: str, version: str, room_id: str | None = None,
                          session_id: str | None = None) -> dict[str, Any]:
        async with self._lock(user_id):
            found = await self.version(user_id, version)
            etag, count = await self.store.delete_keys(user_id, found.version, room_id, session_id)
        return {"etag": str(etag), "count": count}
