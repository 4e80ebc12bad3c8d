"""`Federation`: the federation service, as the server builds it, and incoming transactions."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from ranvier.config import Config
from ranvier.errors import MatrixError
from ranvier.events.signing import SigningKey
from ranvier.federation.client import FederationClient
from ranvier.federation.edus import Edus
from ranvier.federation.hierarchy import HierarchyServing, RemoteSpaces
from ranvier.federation.keys import ServerKeys
from ranvier.federation.membership import Memberships
from ranvier.federation.receiver import PduReceiver
from ranvier.federation.remote import RemoteQueries
from ranvier.federation.sender import EduSender, PduSender, retry_policy
from ranvier.federation.serving import Serving
from ranvier.federation.store import FederationStore
from ranvier.outbound.addresses import parse_networks
from ranvier.rooms.service import RoomServer
from ranvier.storage.engine import Database

log = logging.getLogger(__name__)

MAX_PDUS, MAX_EDUS = 50, 100
_TRANSACTIONS_REMEMBERED = 1_000


class Federation:
    def __init__(self, config: Config, db: Database, rooms: RoomServer, signing_key: SigningKey,
                 services: Any) -> None:
        self.server_name = config.server_name
        self.store = FederationStore(db)
        self.client = FederationClient(
            config.server_name, signing_key, allowed=parse_networks(config.outbound.allowed_networks),
            verify_tls=config.federation.verify_certificates, timeout_s=config.outbound.request_timeout_ms / 1000,
            nameservers=config.federation.nameservers)
        self.keys = ServerKeys(self.store, self.client, config.server_name, signing_key,
                               config.federation.trusted_key_servers)
        policy = retry_policy(config.outbound.initial_backoff_ms, config.outbound.max_backoff_ms)
        self.pdus = PduSender(db, self.store, self.client, config.server_name, policy)
        self.edu_sender = EduSender(db, self.store, self.client, config.server_name, policy)
        self.receiver = PduReceiver(rooms, self.keys, self.client)
        self.memberships = Memberships(rooms, self.keys, self.client, self.receiver, self.pdus)
        self.edus = Edus(rooms, self.edu_sender, self.pdus, services)
        self.remote = RemoteQueries(self.client, config.media.max_upload_bytes)
        self.serving = Serving(rooms)
        self.hierarchy = HierarchyServing(rooms)
        self.remote_spaces = RemoteSpaces(self.client)
        self.rooms = rooms
        #: (origin, transaction ID) -> its answer: a repeated transaction is answered again.
        self._transactions: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._room_locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        await self.pdus.start()
        await self.edu_sender.start()

    async def stop(self) -> None:
        await self.pdus.stop()
        await self.edu_sender.stop()
        await self.client.close()

    async def transaction(self, origin: str, txn_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /send/{txnId}: the PDUs room by room, then the EDUs. Answers the same to a
        repeated transaction. Rejected events are no error of the transaction."""
        key = (origin, txn_id)
        if key in self._transactions:
            return self._transactions[key]
        pdus, edus = body.get("pdus", []), body.get("edus", [])
        if not isinstance(pdus, list) or not isinstance(edus, list):
            raise MatrixError("M_BAD_JSON", "pdus and edus must be lists")
        if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
            raise MatrixError("M_TOO_LARGE", f"A transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs")
        by_room: dict[str, list[Any]] = {}
        results: dict[str, dict[str, Any]] = {}
        for index, pdu in enumerate(pdus):
            room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
            if isinstance(room_id, str):
                by_room.setdefault(room_id, []).append(pdu)
            else:
                results[f"#{index}"] = {"error": "the PDU names no room"}
        for room_id, room_pdus in by_room.items():
            async with self._room_locks.setdefault(room_id, asyncio.Lock()):  # one gap filled at a time
                outcome = await self.receiver.receive(origin, room_id, room_pdus)
            for event_id, error in outcome.items():
                results[event_id] = {} if error is None else {"error": error}
        await self.edus.receive(origin, edus)
        answer = {"pdus": results}
        self._transactions[key] = answer
        if len(self._transactions) > _TRANSACTIONS_REMEMBERED:
            self._transactions.popitem(last=False)
        return answer
