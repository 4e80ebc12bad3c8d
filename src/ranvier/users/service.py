"""The users service: accounts, passwords, logins, devices and their tokens.

API modules call this; it never sees HTTP. Anything a client can get wrong is answered
with a MatrixError.
"""

from __future__ import annotations

import secrets
import string
from typing import Any, Awaitable, Callable

from ranvier.config import Config
from ranvier.errors import MatrixError
from ranvier.events.identifiers import InvalidIdentifier, check_new_localpart, parse_user_id
from ranvier.ratelimit import RateLimiter
from ranvier.requester import Requester
from ranvier.storage.engine import Database
from ranvier.users.passwords import Passwords
from ranvier.users.store import UiaSessionUsed, UserStore
from ranvier.users.tokens import Tokens, now_ms
from ranvier.users.uia import AuthenticationRefused, InteractiveAuth

_DEVICE_ID_ALPHABET = string.ascii_uppercase
MAX_DEVICE_NAME = 1000


#: Told after a user's devices changed: (user_id, removed) where `removed` says that some
#: devices may be gone (their keys and pending messages go with them).
DeviceListener = Callable[[str, bool], Awaitable[None]]


def new_device_id() -> str:
    return "".join(secrets.choice(_DEVICE_ID_ALPHABET) for _ in range(10))


def device_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """A device as the devices API shows it; what is not known is left out, not null."""
    device_id, display_name, ip, ts, _user_agent = row
    device = {"device_id": device_id, "display_name": display_name, "last_seen_ip": ip, "last_seen_ts": ts}
    return {key: value for key, value in device.items() if value is not None}


class UserService:
    def __init__(self, db: Database, config: Config, *, uia_secret: bytes = b"") -> None:
        """`uia_secret` keys the hashes that bind UIA sessions to their requests (the
        server derives it from its signing key; the command line needs none)."""
        self.config = config
        self.server_name = config.server_name
        self.store = UserStore(db)
        self.passwords = Passwords(config.password_hashing)
        self.tokens = Tokens(self.store)
        self.uia = InteractiveAuth(self.store, uia_secret)
        self.uia.register_stage("m.login.dummy", self._stage_dummy)
        self.uia.register_stage("m.login.password", self._stage_password)
        self.uia.register_stage("m.login.registration_token", self._stage_registration_token)
        limits = config.rate_limits
        self.failed_logins = RateLimiter(limits.failed_login.per_second, limits.failed_login.burst,
                                         name="failed_login")
        #: Services that react to added, renamed and removed devices (end-to-end encryption),
        #: handed in by the composition root.
        self.device_listeners: list[DeviceListener] = []

    async def _devices_changed(self, user_id: str, *, removed: bool) -> None:
        for listener in self.device_listeners:
            await listener(user_id, removed)

    async def devices_removed(self, user_id: str) -> None:
        """Tell the device listeners that devices of the user went away behind this
        service's back (an account deactivated from the command line)."""
        await self._devices_changed(user_id, removed=True)

    # -- identifiers ---------------------------------------------------------------------

    def user_id_from_login(self, user: str) -> str:
        """A localpart or full user ID of this server, as given at login, made canonical."""
        if user.startswith("@"):
            try:
                localpart, domain = parse_user_id(user)
            except InvalidIdentifier as exc:
                raise MatrixError("M_INVALID_PARAM", f"Invalid user ID: {exc}") from None
            if domain != self.server_name:
                raise MatrixError("M_FORBIDDEN", "That user does not belong to this server")
        else:
            localpart = user
        return f"@{localpart.lower()}:{self.server_name}"

    async def check_username(self, localpart: str) -> str:
        """The user ID for a new account, or M_INVALID_USERNAME / M_USER_IN_USE."""
        try:
            user_id = check_new_localpart(localpart, self.server_name)
        except InvalidIdentifier as exc:
            raise MatrixError("M_INVALID_USERNAME", str(exc)) from None
        if await self.store.get_account(user_id) is not None:
            raise MatrixError("M_USER_IN_USE", "That user ID is already taken")
        return user_id

    # -- registration --------------------------------------------------------------------

    def registration_flows(self) -> list[list[str]]:
        mode = self.config.registration.mode
        if mode == "open":
            return [["m.login.dummy"], ["m.login.registration_token"]]
        if mode == "token":
            return [["m.login.registration_token"]]
        return []

    def check_password_strength(self, password: str) -> None:
        if len(password) < self.config.registration.min_password_length:
            raise MatrixError(
                "M_WEAK_PASSWORD",
                f"Password must be at least {self.config.registration.min_password_length} characters",
            )

    async def register(
        self,
        localpart: str | None,
        password: str | None,
        *,
        device_id: str | None = None,
        device_name: str | None = None,
        inhibit_login: bool = False,
        refreshable: bool = False,
        guest: bool = False,
        admin: bool = False,
        registration_token: str | None = None,
        uia_session: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        """Create an account (and log it in unless inhibit_login); the response body of /register.

        `uia_session` records the account in the registration's auth session; if a
        concurrent retry of that session created it first, this answers with that account.
        """
        if password is not None:
            self.check_password_strength(password)
        for _ in range(5):
            candidate = localpart if localpart is not None else _random_localpart(guest)
            user_id = await self.check_username(candidate)
            password_hash = await self.passwords.hash(password) if password is not None else None
            session = response = None
            if not inhibit_login:
                session, response = self._login_session(device_id, device_name, refreshable, ip, user_agent)
            try:
                created = await self.store.create_account(
                    user_id, password_hash, now=now_ms(), displayname=candidate, is_admin=admin, is_guest=guest,
                    session=session, registration_token=registration_token, uia_session=uia_session,
                )
            except UiaSessionUsed as used:
                return await self.resume_registration(used.user_id, inhibit_login=inhibit_login, device_id=device_id,
                                                      device_name=device_name, refreshable=refreshable, ip=ip,
                                                      user_agent=user_agent)
            if created:
                if session is not None:
                    await self._devices_changed(user_id, removed=False)
                return {"user_id": user_id, **(response or {})}
            if localpart is not None:
                break
        raise MatrixError("M_USER_IN_USE", "That user ID is already taken")

    async def upgrade_guest(
        self,
        user_id: str,
        password: str,
        *,
        uia_session: str,
        device_id: str | None = None,
        device_name: str | None = None,
        inhibit_login: bool = False,
        refreshable: bool = False,
        registration_token: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        """Turn a guest account into a full one, keeping its user ID (the guest access
        module's upgrade); the response body of /register."""
        self.check_password_strength(password)
        password_hash = await self.passwords.hash(password)
        session = response = None
        if not inhibit_login:
            session, response = self._login_session(device_id, device_name, refreshable, ip, user_agent)
        try:
            await self.store.upgrade_guest(user_id, password_hash, now=now_ms(), session=session,
                                           registration_token=registration_token, uia_session=uia_session)
        except UiaSessionUsed as used:
            return await self.resume_registration(used.user_id, inhibit_login=inhibit_login, device_id=device_id,
                                                  device_name=device_name, refreshable=refreshable, ip=ip,
                                                  user_agent=user_agent)
        self.tokens.forget_user(user_id)  # cached tokens still say "guest"
        return {"user_id": user_id, **(response or {})}

    async def resume_registration(self, user_id: str, *, inhibit_login: bool, device_id: str | None,
                                  device_name: str | None, refreshable: bool, ip: str | None,
                                  user_agent: str | None) -> dict[str, Any]:
        """The answer to a registration retried with a session that has created its
        account already: that account, with a new login unless inhibit_login.

        The account is not read back: a concurrent retry may have made it a moment ago, in
        a commit readers do not see yet (the new device's write joins that commit). A
        token made for an account deactivated or locked since is refused when used.
        """
        if inhibit_login:
            return {"user_id": user_id}
        session, response = self._login_session(device_id, device_name, refreshable, ip, user_agent)
        self.tokens.forget(await self.store.add_session(user_id, session, now_ms()))
        return {"user_id": user_id, **response}

    # -- login ---------------------------------------------------------------------------

    async def check_password_login(self, user: str, password: str, ip: str | None) -> str:
        """Verify a password login, counting failures per (account, address) and per address.

        Failures are never counted per account alone: a stranger guessing from one address
        would lock the owner out everywhere. `ip` is None for the re-authentication of a
        logged-in user (UIA), whose failures count for their account only.
        """
        user_id = self.user_id_from_login(user)
        keys = [f"user:{user_id} ip:{ip}"] + ([f"ip:{ip}"] if ip is not None else [])
        for key in keys:
            if not self.failed_logins.would_allow(key):
                self.failed_logins.check(key)
        account = await self.store.get_account(user_id)
        if account is not None and not account.deactivated and await self.passwords.verify(account.password_hash, password):
            return user_id
        for key in keys:
            self.failed_logins.record(key)
        if account is not None and account.deactivated:
            raise MatrixError("M_USER_DEACTIVATED", "This account has been deactivated")
        raise MatrixError("M_FORBIDDEN", "Invalid username or password")

    async def login(
        self,
        user_id: str,
        *,
        device_id: str | None,
        device_name: str | None,
        refreshable: bool,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        account = await self.store.get_account(user_id)
        if account is None:
            raise MatrixError("M_FORBIDDEN", "Invalid username or password")
        if account.deactivated:
            raise MatrixError("M_USER_DEACTIVATED", "This account has been deactivated")
        if account.locked:
            raise MatrixError("M_USER_LOCKED", "This account has been locked", soft_logout=True)
        session, response = self._login_session(device_id, device_name, refreshable, ip, user_agent)
        self.tokens.forget(await self.store.add_session(user_id, session, now_ms()))
        await self._devices_changed(user_id, removed=False)
        return {"user_id": user_id, **response}

    def _login_session(self, device_id, device_name, refreshable, ip, user_agent):
        if device_name is not None and len(device_name) > MAX_DEVICE_NAME:
            raise MatrixError("M_INVALID_PARAM", "Device name is too long")
        return self.tokens.new_session(
            device_id or new_device_id(), device_name, refreshable=refreshable,
            lifetime_ms=self.config.registration.refreshable_access_token_lifetime_ms, ip=ip, user_agent=user_agent,
        )

    # -- account management --------------------------------------------------------------

    async def change_password(self, requester: Requester, new_password: str, *, logout_devices: bool) -> None:
        self.check_password_strength(new_password)
        password_hash = await self.passwords.hash(new_password)
        await self.store.set_password_hash(
            requester.user_id, password_hash, keep_device=requester.device_id, logout_devices=logout_devices
        )
        if logout_devices:
            self.tokens.forget_user(requester.user_id)
            await self._devices_changed(requester.user_id, removed=True)

    async def deactivate(self, user_id: str) -> bool:
        """Deactivate for good: tokens revoked, no login, the user ID never reused."""
        done = await self.store.deactivate(user_id)
        self.tokens.forget_user(user_id)
        if done:
            await self._devices_changed(user_id, removed=True)
        return done

    # -- account moderation (locks and suspensions) ---------------------------------------

    async def set_locked(self, user_id: str, locked: bool) -> bool:
        """Lock or unlock an account (tokens kept, as the spec asks); False if there is no
        active account of that ID."""
        return await self._set_moderation(user_id, "locked", locked)

    async def set_suspended(self, user_id: str, suspended: bool) -> bool:
        """Suspend or unsuspend an account; False if there is no active account of that ID."""
        return await self._set_moderation(user_id, "suspended", suspended)

    async def _set_moderation(self, user_id: str, flag: str, on: bool) -> bool:
        changed = await self.store.set_moderation(user_id, flag, on)
        self.tokens.forget_user(user_id)  # cached tokens carry the flags: they apply at once
        return changed

    async def whois(self, user_id: str) -> dict[str, Any]:
        """The spec's whois: each device with its last connection (address, time, agent)."""
        devices = {}
        for device_id, _name, ip, ts, user_agent in await self.store.list_devices(user_id):
            connection = {key: value for key, value in (("ip", ip), ("last_seen", ts), ("user_agent", user_agent))
                          if value is not None}
            devices[device_id] = {"sessions": [{"connections": [connection] if connection else []}]}
        return {"user_id": user_id, "devices": devices}

    # -- devices -------------------------------------------------------------------------

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        return [device_json(row) for row in await self.store.list_devices(user_id)]

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        row = await self.store.get_device(user_id, device_id)
        if row is None:
            raise MatrixError("M_NOT_FOUND", "Unknown device")
        return device_json(row)

    async def rename_device(self, user_id: str, device_id: str, name: str | None) -> None:
        if name is not None and len(name) > MAX_DEVICE_NAME:
            raise MatrixError("M_INVALID_PARAM", "Device name is too long")
        if not await self.store.set_device_name(user_id, device_id, name):
            raise MatrixError("M_NOT_FOUND", "Unknown device")
        await self._devices_changed(user_id, removed=False)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        self.tokens.forget(await self.store.delete_devices(user_id, device_ids))
        await self._devices_changed(user_id, removed=True)

    async def logout(self, requester: Requester) -> None:
        """Every token belongs to a device: logging out deletes the device."""
        await self.tokens.logout(requester)
        await self._devices_changed(requester.user_id, removed=True)

    async def logout_all(self, user_id: str) -> None:
        await self.tokens.logout_all(user_id)
        await self._devices_changed(user_id, removed=True)

    # -- user-interactive auth stages ------------------------------------------------------

    async def _stage_dummy(self, auth: dict[str, Any], user_id: str | None) -> bool:
        return True

    async def _stage_password(self, auth: dict[str, Any], user_id: str | None) -> str:
        user, password = password_credentials(auth)
        if user_id is not None and self._claimed_user(user) != user_id:
            raise AuthenticationRefused("M_FORBIDDEN", "You can only authenticate as yourself")
        return await self.check_password_login(user, password, None)

    def _claimed_user(self, user: str) -> str | None:
        """The local user ID a login names, or None if it names no local user."""
        try:
            return self.user_id_from_login(user)
        except MatrixError:
            return None

    async def _stage_registration_token(self, auth: dict[str, Any], user_id: str | None) -> str:
        token = auth.get("token")
        if not isinstance(token, str) or not await self.registration_token_valid(token):
            raise MatrixError("M_FORBIDDEN", "Invalid registration token")
        return token

    async def registration_token_valid(self, token: str) -> bool:
        return await self.store.registration_token_usable(token, now_ms())

    async def create_registration_token(self, token: str | None, uses_allowed: int | None, expiry_ts: int | None) -> str:
        token = token or secrets.token_urlsafe(12)
        if not await self.store.create_registration_token(token, uses_allowed, expiry_ts):
            raise MatrixError("M_INVALID_PARAM", "That registration token already exists")
        return token


def login_user(body: dict[str, Any]) -> str:
    """The user a /login body names (identifier m.id.user, or legacy `user`)."""
    identifier = body.get("identifier")
    if identifier is not None:
        if not isinstance(identifier, dict):
            raise MatrixError("M_BAD_JSON", "identifier must be an object")
        if identifier.get("type") != "m.id.user":
            raise MatrixError("M_UNKNOWN", "Only the m.id.user identifier is supported")
        user = identifier.get("user")
    else:
        user = body.get("user")
    if not isinstance(user, str) or not user:
        raise MatrixError("M_MISSING_PARAM" if user is None else "M_BAD_JSON", "A user identifier is required")
    return user


def password_credentials(body: dict[str, Any]) -> tuple[str, str]:
    """The user and password of an m.login.password body (see `login_user`)."""
    user = login_user(body)
    password = body.get("password")
    if not isinstance(password, str):
        raise MatrixError("M_MISSING_PARAM" if password is None else "M_BAD_JSON", "A password is required")
    return user, password


def _random_localpart(guest: bool) -> str:
    if guest:
        return str(secrets.randbelow(10**12))
    return "u" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(11))
