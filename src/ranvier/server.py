"""The composition root: builds storage, services and the web app; starts and stops them.

Everything a running homeserver holds hangs off one `Homeserver` object, so tests and
`granolin.testing` can run a real server in-process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from ranvier import background, memory
from ranvier.appservice.ephemeral import EphemeralPush
from ranvier.appservice.registration import load_registrations
from ranvier.appservice.service import AppServices
from ranvier.appservice.thirdparty import ThirdPartyLookups
from ranvier.appservice.transactions import Transactions
from ranvier.config import Config
from ranvier.e2ee.backup import KeyBackup
from ranvier.e2ee.backup_store import BackupStore
from ranvier.e2ee.cross_signing import CrossSigning
from ranvier.e2ee.keys import KeyService
from ranvier.e2ee.keys_store import KeyStore
from ranvier.e2ee.schema import BACKUP_SCHEMA, KEYS_SCHEMA, TO_DEVICE_SCHEMA
from ranvier.e2ee.to_device import ToDevice, ToDeviceStore
from ranvier.events.signing import SigningKey
from ranvier.federation.schema import SCHEMA as FEDERATION_SCHEMA
from ranvier.federation.service import Federation
from ranvier.legacy_api.records import DraftRecords
from ranvier.legacy_api.routing import legacy_routes
from ranvier.legacy_api.schema import SCHEMA as LEGACY_SCHEMA
from ranvier.legacy_api.store import LegacyStore
from ranvier.metrics import DB_CONNECTIONS_IN_USE, metrics_app, serve_metrics
from ranvier.media.schema import SCHEMA as MEDIA_SCHEMA
from ranvier.media.service import MediaService
from ranvier.outbound.schema import SCHEMA as OUTBOUND_SCHEMA
from ranvier.private_files import make_private_dir, prepare_data_dir
from ranvier.push.pushers import Pushers
from ranvier.push.retention import PRUNE_INTERVAL_S, NotificationPruner
from ranvier.push.schema import SCHEMA as PUSH_SCHEMA
from ranvier.push.service import PushService
from ranvier.push.store import PushStore
from ranvier.ratelimit import RateLimiter
from ranvier.rooms.admin import RoomAdmin
from ranvier.rooms.admin_schema import SCHEMA as ROOM_ADMIN_SCHEMA
from ranvier.rooms.directory import RoomDirectory
from ranvier.rooms.hierarchy import SpaceHierarchy
from ranvier.rooms.relations import RelationsService
from ranvier.rooms.relations_schema import SCHEMA as RELATIONS_SCHEMA
from ranvier.rooms.reports import ReportService
from ranvier.rooms.reports_schema import SCHEMA as REPORTS_SCHEMA
from ranvier.rooms.schema import SCHEMA as ROOMS_SCHEMA
from ranvier.rooms.service import RoomServer
from ranvier.rooms.store import RoomStore
from ranvier.storage.datadir import DataDirLock
from ranvier.search.index import open_index
from ranvier.search.schema import SCHEMA as SEARCH_SCHEMA
from ranvier.search.service import SearchService
from ranvier.storage.engine import Database, open_database
from ranvier.storage.lock import DatabaseLock, acquire_database_lock
from ranvier.storage.migrations import Schema, apply_migrations
from ranvier.sync.legacy import LegacySync
from ranvier.sync.device_lists import DeviceLists
from ranvier.notify.notifier import Notifier
from ranvier.sync.receipts import Receipts
from ranvier.sync.receipts_schema import SCHEMA as RECEIPTS_SCHEMA
from ranvier.sync.receipts_store import ReceiptStore
from ranvier.sync.schema import SCHEMA as SYNC_SCHEMA
from ranvier.sync.service import SyncService
from ranvier.sync.sliding import SlidingSync
from ranvier.sync.sliding_lists import RoomFacts
from ranvier.sync.store import FilterStore
from ranvier.sync.timeline import Timeline
from ranvier.sync.typing import Typing
from ranvier.users.account_data import AccountData
from ranvier.users.admin_store import UserAdminStore
from ranvier.users.directory import UserDirectory
from ranvier.users.erasure import Erasure
from ranvier.users.erasure_schema import SCHEMA as ERASURE_SCHEMA
from ranvier.users.moderation import Moderation
from ranvier.users.moderation_schema import SCHEMA as MODERATION_SCHEMA
from ranvier.users.personal_schema import (ACCOUNT_DATA_SCHEMA, DIRECTORY_SCHEMA, PRESENCE_SCHEMA,
                                          PROFILE_FIELDS_SCHEMA)
from ranvier.users.personal_store import AccountDataStore, DirectoryStore, PresenceStore, ProfileStore
from ranvier.users.presence import Presence
from ranvier.users.profiles import Profiles
from ranvier.users.schema import SCHEMA as USERS_SCHEMA
from ranvier.users.service import UserService
from ranvier.web.app import RedactingAccessLogger, make_app
from ranvier.web.routing import add_routes
from ranvier.web.serving import HttpServer, raise_open_files_limit

log = logging.getLogger("ranvier")

#: How often the server looks for accounts deactivated from the command line that are
#: still in rooms (one query; the first look is at start).
DEACTIVATION_SWEEP_S = 60.0

#: Every service's tables, in the order their migrations run.
SCHEMAS: list[Schema] = [USERS_SCHEMA, ROOMS_SCHEMA, SYNC_SCHEMA, MEDIA_SCHEMA, PUSH_SCHEMA, RELATIONS_SCHEMA,
                         REPORTS_SCHEMA, PROFILE_FIELDS_SCHEMA, ACCOUNT_DATA_SCHEMA, PRESENCE_SCHEMA, DIRECTORY_SCHEMA,
                         RECEIPTS_SCHEMA, OUTBOUND_SCHEMA, ERASURE_SCHEMA, KEYS_SCHEMA, TO_DEVICE_SCHEMA, BACKUP_SCHEMA,
                         LEGACY_SCHEMA, MODERATION_SCHEMA, ROOM_ADMIN_SCHEMA,
                         SEARCH_SCHEMA, FEDERATION_SCHEMA]


def route_tables():
    """The route tables of every API module: today's client API, federation, and the 2014
    draft's (imported here, mounted once, listed in docs/api-coverage.md in this order)."""
    from ranvier.client_api import (account, devices, discovery, legacy_sync, login, media, membership, register,
                                    relations, rooms, search, sliding_sync, sync)
    from ranvier.client_api import directory, reporting, spaces, upgrade
    from ranvier.client_api import account_data, presence, profile, push, receipts, typing, user_directory
    from ranvier.client_api import admin, appservice, openid, threepid, thirdparty, voip
    from ranvier.client_api import keys, mutual_rooms, room_keys, room_summary, to_device
    from ranvier.federation_api import openid as federation_openid
    from ranvier.federation_api import (backfill, events, hierarchy, invites, joins, knocks, leaving, public_rooms,
                                        query, transactions, user_keys, version, wellknown)
    from ranvier.federation_api import keys as server_keys
    from ranvier.federation_api import media as federation_media
    from ranvier import admin_api

    return [discovery.routes, register.routes, login.routes, account.routes, devices.routes, rooms.routes,
            membership.routes, media.routes, sync.routes, sliding_sync.routes, legacy_sync.routes, relations.routes,
            directory.routes, upgrade.routes, spaces.routes, reporting.routes, profile.routes, account_data.routes,
            typing.routes, receipts.routes, presence.routes, user_directory.routes, push.routes,
            thirdparty.routes, appservice.routes, threepid.routes, admin.routes, openid.routes, voip.routes,
            room_summary.routes, mutual_rooms.routes, keys.routes, to_device.routes, room_keys.routes,
            search.routes, federation_openid.routes, wellknown.routes, server_keys.routes, version.routes,
            transactions.routes, joins.routes, leaving.routes, invites.routes, knocks.routes, events.routes,
            backfill.routes, query.routes, public_rooms.routes, hierarchy.routes, federation_media.routes,
            user_keys.routes, *admin_api.route_tables()] + legacy_routes()


@dataclass
class RateLimits:
    """The request rate limiters, one per kind of action (see `rate_limits` in the config)."""

    login: RateLimiter
    registration: RateLimiter
    message: RateLimiter
    join: RateLimiter

    @classmethod
    def from_config(cls, config: Config, user_overrides: dict[str, tuple[float, int]],
                    unlimited_users: Callable[[str], bool] | None = None) -> "RateLimits":
        """The limiters; `user_overrides` (an admin's per-user limits) and `unlimited_users`
        (application services' users spared) apply to the limiters keyed by user, message and join."""
        limits = config.rate_limits
        return cls(
            **{
                name: RateLimiter(getattr(limits, name).per_second, getattr(limits, name).burst, name=name,
                                  overrides=user_overrides if name in ("message", "join") else None,
                                  unlimited=unlimited_users if name in ("message", "join") else None)
                for name in ("login", "registration", "message", "join")
            }
        )


async def open_storage(config: Config) -> Database:
    """Open the configured database and bring its schema up to date."""
    db = await open_database(
        config.database_url, pool_size=config.database.pool_size, sqlite_synchronous=config.database.sqlite_synchronous
    )
    try:
        await apply_migrations(db, SCHEMAS)
    except BaseException:
        await db.close()
        raise
    return db


def _tls_context(config: Config) -> ssl.SSLContext:
    """The server side of listeners with tls: true."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls.certificate_path, config.tls.private_key_path)
    return context


def load_or_create_signing_key(path: str) -> tuple[SigningKey, bool]:
    """The server's signing key, generated on first start; returns (key, created)."""
    if os.path.exists(path):
        return SigningKey.load(path), False
    make_private_dir(os.path.dirname(os.path.abspath(path)))
    key = SigningKey.generate()
    key.save(path)
    return key, True


class Homeserver:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db: Database | None = None
        self.signing_key: SigningKey | None = None
        self.signing_key_created = False
        self.moderation: Moderation | None = None
        self.limits = RateLimits.from_config(config, {})
        self.tasks = background.Tasks()
        self.user_admin: UserAdminStore | None = None
        self.room_admin: RoomAdmin | None = None
        self.users: UserService | None = None
        self.appservices = AppServices([])
        self.thirdparty = ThirdPartyLookups(self.appservices)
        self.appservice_transactions: Transactions | None = None
        self.appservice_ephemeral: EphemeralPush | None = None
        self.notifier: Notifier | None = None
        self.rooms: RoomServer | None = None
        self.push: PushService | None = None
        self.pushers: Pushers | None = None
        self.notification_pruner: NotificationPruner | None = None
        self.timeline: Timeline | None = None
        self.directory: RoomDirectory | None = None
        self.hierarchy: SpaceHierarchy | None = None
        self.reports: ReportService | None = None
        self.relations: RelationsService | None = None
        self.search: SearchService | None = None
        self.sync: SyncService | None = None
        self.sliding_sync: SlidingSync | None = None
        self.legacy_sync: LegacySync | None = None
        self.media: MediaService | None = None
        self.profiles: Profiles | None = None
        self.account_data: AccountData | None = None
        self.typing: Typing | None = None
        self.receipts: Receipts | None = None
        self.presence: Presence | None = None
        self.user_directory: UserDirectory | None = None
        self.erasure: Erasure | None = None
        self.keys: KeyService | None = None
        self.cross_signing: CrossSigning | None = None
        self.device_lists: DeviceLists | None = None
        self.to_device: ToDevice | None = None
        self.key_backup: KeyBackup | None = None
        self.legacy: DraftRecords | None = None
        self.federation: Federation | None = None
        self.app: web.Application | None = None
        self.http: HttpServer | None = None
        self._runners: list[web.AppRunner] = []
        self.ports: list[int] = []
        self._deactivation_sweeper: asyncio.Task | None = None
        self._notification_pruner: asyncio.Task | None = None
        self._memory_trimmer: asyncio.Task | None = None
        self._database_lock: DatabaseLock | None = None
        self._data_dir_lock = DataDirLock(config.data_dir)

    async def start(self) -> None:
        """Start everything; a failure stops what had started (the locks included)."""
        prepare_data_dir(self.config)
        self._data_dir_lock.acquire("starting another")
        try:
            self._database_lock = await acquire_database_lock(self.config.database_url)
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.signing_key, self.signing_key_created = load_or_create_signing_key(self.config.signing_key_path)
        self.db = await open_storage(self.config)
        self.users = UserService(self.db, self.config, uia_secret=self.signing_key.sign(b"ranvier uia request key"))
        await self._start_appservices()
        self.notifier = Notifier()
        self.rooms = RoomServer(RoomStore(self.db), self.users.store, server_name=self.config.server_name,
                                signing_key=self.signing_key, notifier=self.notifier)
        await self.rooms.start()
        await self._start_moderation()
        self.timeline = Timeline(self.rooms)
        await self._start_personal_streams()
        push_store = PushStore(self.db)
        self.push = PushService(push_store, self.rooms.store, self.account_data, server_name=self.config.server_name)
        await self.push.start()
        self.rooms.persist_hooks.insert(0, self.push)
        self.notification_pruner = NotificationPruner(push_store, server_name=self.config.server_name)
        self.pushers = Pushers(push_store, self.push, self.rooms, self.db, self.config)
        await self.pushers.start()
        await self._start_encryption()
        self.directory = RoomDirectory(self.rooms)
        self.rooms.send_checks.append(self.directory.check_canonical_alias)
        self.directory.instance_network = self.thirdparty.network_of_instance
        self.hierarchy = SpaceHierarchy(self.rooms)
        self.reports = ReportService(self.db, self.rooms)
        self.relations = RelationsService(self.rooms.store, ignored_users=self.account_data.ignored_users)
        self.timeline.ignored_users = self.account_data.ignored_users
        self.rooms.persist_hooks.append(self.relations)
        self.rooms.send_checks.append(self.relations.check_new_event)
        self.timeline.relations = self.relations
        self.search = SearchService(open_index(self.db), self.rooms, self.timeline,
                                    ignored_users=self.account_data.ignored_users)
        self.rooms.persist_hooks.append(self.search)
        self.sync = SyncService(self.rooms, self.timeline, self.notifier, FilterStore(self.db), streams=self)
        room_facts = RoomFacts(self.sync.queries)
        self.rooms.persist_hooks.append(room_facts)
        self.sliding_sync = SlidingSync(self.sync, room_facts)
        self.legacy_sync = LegacySync(self.sync, self.timeline)
        self.media = MediaService(self.db, self.config)
        self.legacy = DraftRecords(LegacyStore(self.db), self.notifier)
        await self.legacy.start()
        self.rooms.persist_hooks.append(self.legacy)
        if self.appservices:
            self.profiles.unknown_user = self.rooms.unknown_user = self.appservices.query_user
            self.directory.unknown_alias = self.appservices.query_alias
        await self._start_room_admin(push_store)
        if self.config.federation.enabled:
            await self._start_federation()
        await self._start_appservice_transactions()
        self.app = make_app(self, max_body=self.config.limits.max_request_body_bytes)
        for routes in route_tables():
            add_routes(self.app.router, routes)
        if self.config.metrics.main_listener:
            self.app.router.add_get("/_synapse/metrics", serve_metrics)
        await self._listen()
        if not self.config.public_baseurl:
            self.config.public_baseurl = self.base_url
        if self.config.metrics.enabled:
            await self._start_metrics()
        self._deactivation_sweeper = background.every(
            DEACTIVATION_SWEEP_S, self.sweep_deactivated_accounts,
            "removing deactivated accounts from their rooms", first_now=True)
        self._notification_pruner = background.every(
            PRUNE_INTERVAL_S, self.notification_pruner.prune, "pruning notifications read and past their retention")
        self._memory_trimmer = background.every(
            memory.TRIM_INTERVAL_S, memory.release_free_memory, "returning free memory to the system")

    async def sweep_deactivated_accounts(self) -> None:
        """What deactivating does beyond the database, for accounts deactivated from the
        command line: their devices' keys and pending messages go (the users sharing rooms
        with them see the device-list change), then they leave their rooms."""
        for user_id in await self.rooms.deactivated_members():
            await self.users.devices_removed(user_id)
            await self.rooms.leave_all_rooms(user_id)

    async def _listen(self) -> None:
        """Serve the app on every listener, guarded against slow and greedy clients."""
        raise_open_files_limit()
        limits = self.config.limits
        access_log = logging.getLogger("ranvier.access") if self.config.logging.access_log else None
        self.http = HttpServer(self.app, header_timeout_s=limits.request_header_timeout_ms / 1000,
                               per_address=limits.max_connections_per_address, access_log=access_log,
                               access_log_class=RedactingAccessLogger)
        tls = _tls_context(self.config) if any(listener.tls for listener in self.config.listeners) else None
        for listener in self.config.listeners:
            self.ports.append(await self.http.listen(listener.bind, listener.port,
                                                     ssl_context=tls if listener.tls else None,
                                                     x_forwarded=listener.x_forwarded))

    def _answer_long_polls(self) -> None:
        if self.notifier is not None:
            self.notifier.close()

    async def _start_personal_streams(self) -> None:
        """Profiles, account data, typing, receipts, presence and the user directory."""
        self.profiles = Profiles(ProfileStore(self.db), self.rooms)
        self.account_data = AccountData(AccountDataStore(self.db), self.notifier)
        await self.account_data.start()
        self.typing = Typing(self.rooms, self.notifier)
        self.receipts = Receipts(ReceiptStore(self.db), self.rooms, self.account_data, self.notifier,
                                 push=lambda: self.push)
        await self.receipts.start()
        self.presence = Presence(PresenceStore(self.db), self.notifier)
        await self.presence.start()
        self.user_directory = UserDirectory(DirectoryStore(self.db))
        self.rooms.persist_hooks.append(self.user_directory)
        self.erasure = Erasure(self.db, self.profiles.store, self.account_data.store)
        await self.erasure.start()
        self.timeline.erased = self.erasure.erased

    async def _start_encryption(self) -> None:
        """Device and cross-signing keys, the device-list stream, to-device messages and
        key backups; the users service tells them when devices come and go."""
        self.keys = KeyService(KeyStore(self.db), self.notifier, self.config.server_name)
        await self.keys.start()
        self.cross_signing = CrossSigning(self.keys)
        self.device_lists = DeviceLists(self.keys, self.rooms)
        self.rooms.persist_hooks.append(self.device_lists)
        self.to_device = ToDevice(ToDeviceStore(self.db), self.notifier, self.config.server_name)
        await self.to_device.start()
        self.key_backup = KeyBackup(BackupStore(self.db))
        self.users.device_listeners += [self.to_device.devices_changed, self.keys.devices_changed]

    async def _start_appservices(self) -> None:
        """The registered application services, and each one's sender account."""
        store = self.users.store

        async def account_exists(user_id: str) -> bool:
            return await store.get_account(user_id) is not None

        async def device_exists(user_id: str, device_id: str) -> bool:
            return await store.get_device(user_id, device_id) is not None

        registrations = load_registrations(self.config.app_services.registration_files, self.config.server_name)
        self.appservices = AppServices(registrations, account_exists=account_exists, device_exists=device_exists)
        self.thirdparty = ThirdPartyLookups(self.appservices)
        for registration in registrations:
            localpart = registration.sender[1:].split(":", 1)[0]
            await store.create_account(registration.sender, None, now=int(time.time() * 1000), displayname=localpart)

    async def _start_appservice_transactions(self) -> None:
        """Room events pushed to the application services with a URL, and typing, receipts
        and presence to those of them that ask (`receive_ephemeral`)."""
        if not any(registration.url for registration in self.appservices.registrations):
            return
        self.appservice_transactions = transactions = Transactions(self.appservices, self.rooms, self.timeline,
                                                                   self.db, self.config.outbound)
        self.rooms.persist_hooks.append(transactions)
        await transactions.start()
        ephemeral = EphemeralPush(self.appservices, transactions.interest, transactions.queue.policy,
                                  transactions.timeout_s, typists=self.typing.typists,
                                  presence_content=self.presence.content)
        if ephemeral.registrations:
            self.appservice_ephemeral = ephemeral
            self.typing.local_listeners.append(ephemeral.typing_changed)
            self.receipts.local_listeners.append(ephemeral.receipt_sent)
            self.presence.listeners.append(ephemeral.presence_changed)
            ephemeral.start()

    async def _start_moderation(self) -> None:
        """Shadow bans and rate limit overrides, in memory where the hot paths read them."""
        self.moderation = Moderation(self.db)
        await self.moderation.start()
        self.rooms.shadow_banned = self.moderation.shadow_banned
        self.limits = RateLimits.from_config(self.config, self.moderation.ratelimit_overrides,
                                             self.appservices.unlimited if self.appservices else None)
        self.user_admin = UserAdminStore(self.db)
        DB_CONNECTIONS_IN_USE.set_function(self.db.connections_in_use)

    async def _start_room_admin(self, push_store: PushStore) -> None:
        """Blocked rooms, and the services whose rows a room purge deletes with the room's."""
        self.room_admin = RoomAdmin(self.rooms)
        await self.room_admin.start()
        self.room_admin.purge_hooks += [push_store, self.relations, self.receipts.store, self.account_data.store,
                                        self.user_directory.store]
        self.room_admin.event_purge_hooks += [push_store, self.relations]

    async def _start_federation(self) -> None:
        """The server-server API, and the narrow callables through which the other services
        reach other servers and tell them of their local users' changes."""
        self.federation = federation = Federation(self.config, self.db, self.rooms, self.signing_key, self)
        self.rooms.remote = federation.memberships
        self.rooms.persist_hooks.append(federation.pdus)
        edus, remote = federation.edus, federation.remote
        self.typing.local_listeners.append(edus.typing_changed)
        self.receipts.local_listeners.append(edus.receipt_sent)
        self.presence.listeners.append(edus.presence_changed)
        self.keys.device_list_listeners.append(edus.device_list_changed)
        self.keys.remote = remote
        self.to_device.remote = edus.to_device
        self.profiles.remote = remote.profile
        self.directory.remote_alias = remote.resolve_alias
        self.directory.remote_public_rooms = remote.public_rooms
        self.hierarchy.remote = federation.remote_spaces.lookup
        self.timeline.backfill = federation.receiver.backfill

        async def remote_media(server_name: str, media_id: str) -> tuple[bytes, str | None, str | None]:
            media = await remote.media(server_name, media_id)
            return media.content, media.content_type, media.upload_name

        self.media.remote = remote_media
        await federation.start()

    async def _start_metrics(self) -> None:
        runner = web.AppRunner(metrics_app(), handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self.config.metrics.bind, self.config.metrics.port).start()

    @property
    def base_url(self) -> str:
        """The URL of the first listener as actually bound (port 0 picks a free one)."""
        host = self.config.listeners[0].bind
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.ports[0]}"

    async def stop(self) -> None:
        """Stop accepting, answer long polls, let the requests in flight finish (at most
        `limits.shutdown_grace_ms`), then stop the services and release the database."""
        if self.http is not None:
            http, self.http = self.http, None
            await http.stop(self.config.limits.shutdown_grace_ms / 1000, self._answer_long_polls)
        self._answer_long_polls()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.typing is not None:
            self.typing.stop()
        if self.presence is not None:
            await self.presence.stop()
        if self.pushers is not None:
            await self.pushers.stop()
        if self.federation is not None:
            await self.federation.stop()
        if self.media is not None:
            await self.media.close()
        if self.appservice_transactions is not None:
            await self.appservice_transactions.stop()
        if self.appservice_ephemeral is not None:
            await self.appservice_ephemeral.stop()
        await self.thirdparty.close()
        await self.appservices.close()
        await self.tasks.stop()
        await background.cancel(self._deactivation_sweeper)
        self._deactivation_sweeper = None
        await background.cancel(self._notification_pruner)
        self._notification_pruner = None
        await background.cancel(self._memory_trimmer)
        self._memory_trimmer = None
        if self.db is not None:
            await self.db.close()
            self.db = None
        if self._database_lock is not None:
            await self._database_lock.release()
            self._database_lock = None
        self._data_dir_lock.release()
