"""The application services registered on this server: who a request with an `as_token`
acts as, which users and aliases are reserved to a service, and the calls this server
makes to a service (does this user or alias exist, the connectivity ping).

A service acts as its sender, or as any user of its namespaces it has registered (the
`user_id` query parameter), from a device of that user it names (`device_id`, which must
exist) or from none. Its users are spared the rate limits unless it says
`rate_limited: true`. Exclusive namespaces keep everyone else out: nobody else may
register such a user or create such an alias.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import aiohttp

from ranvier.appservice.registration import Registration
from ranvier.errors import MatrixError
from ranvier.requester import Requester

log = logging.getLogger(__name__)

#: How long the queries a client request waits on (does this user or alias exist) may take.
QUERY_TIMEOUT_S = 10.0
#: The ping's own limit, as the spec's M_CONNECTION_TIMEOUT suggests.
PING_TIMEOUT_S = 15.0
USER_AGENT = "ranvier application service client"


def authorization(registration: Registration) -> dict[str, str]:
    """The header every request to the service carries: its hs_token."""
    return {"Authorization": f"Bearer {registration.hs_token}", "User-Agent": USER_AGENT}


class AppServices:
    def __init__(self, registrations: list[Registration], *,
                 account_exists: Callable[[str], Awaitable[bool]] | None = None,
                 device_exists: Callable[[str, str], Awaitable[bool]] | None = None) -> None:
        """`account_exists` and `device_exists` look users and devices up (needed when
        there is a registration)."""
        self.registrations = registrations
        self._by_token = {registration.as_token: registration for registration in registrations}
        self._by_id = {registration.id: registration for registration in registrations}
        self._account_exists = account_exists
        self._device_exists = device_exists
        #: Users known to exist (accounts are never deleted, only deactivated).
        self._known_users: set[str] = set()
        self._session: aiohttp.ClientSession | None = None

    def __bool__(self) -> bool:
        return bool(self.registrations)

    def by_id(self, service_id: str) -> Registration | None:
        return self._by_id.get(service_id)

    def by_token(self, token: str) -> Registration | None:
        return self._by_token.get(token)

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client for calls to services (their URLs are the admin's, so no address
        checks apply)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- who a service's request acts as ---------------------------------------------------

    async def requester(self, registration: Registration, user_id: str | None, device_id: str | None) -> Requester:
        """The requester a service's request acts as (see the module's rules): 403
        M_FORBIDDEN for a user outside its namespaces or not registered yet, 400
        M_UNKNOWN_DEVICE for a device the user does not have."""
        user_id = user_id or registration.sender
        if not registration.claims_user(user_id):
            raise MatrixError("M_FORBIDDEN", "This application service may not act as that user")
        if user_id not in self._known_users:
            if not await self._account_exists(user_id):
                raise MatrixError("M_FORBIDDEN", "This application service has not registered that user")
            self._known_users.add(user_id)
        if device_id is not None and not await self._device_exists(user_id, device_id):
            raise MatrixError("M_UNKNOWN_DEVICE", "That user has no such device", status=400)
        return Requester(user_id=user_id, device_id=device_id or "", is_guest=False, token_hash="",
                         app_service=registration.id)

    # -- reserved names --------------------------------------------------------------------

    def owner_of_user(self, user_id: str) -> Registration | None:
        """The service whose sender or namespaces hold the user (an exclusive one first)."""
        return self.exclusive_owner_of_user(user_id) or next(
            (r for r in self.registrations if r.claims_user(user_id)), None)

    def exclusive_owner_of_user(self, user_id: str) -> Registration | None:
        return next((r for r in self.registrations if r.claims_user(user_id, exclusive_only=True)), None)

    def exclusive_owner_of_alias(self, alias: str) -> Registration | None:
        return next((r for r in self.registrations if r.claims_alias(alias, exclusive_only=True)), None)

    def check_user_not_reserved(self, user_id: str, service_id: str | None) -> None:
        """400 M_EXCLUSIVE when an exclusive namespace of another service holds the user."""
        owner = self.exclusive_owner_of_user(user_id)
        if owner is not None and owner.id != service_id:
            raise MatrixError("M_EXCLUSIVE", "That user ID is reserved by an application service")

    def check_alias_not_reserved(self, alias: str, service_id: str | None) -> None:
        """400 M_EXCLUSIVE when an exclusive namespace of another service holds the alias."""
        owner = self.exclusive_owner_of_alias(alias)
        if owner is not None and owner.id != service_id:
            raise MatrixError("M_EXCLUSIVE", "That alias is reserved by an application service")

    def unlimited(self, user_id: str) -> bool:
        """Whether the rate limits spare this user (a user of a service that is not rate limited)."""
        return any(not r.rate_limited and r.claims_user(user_id) for r in self.registrations)

    # -- asking the services ---------------------------------------------------------------

    async def query_user(self, user_id: str) -> bool:
        """Ask the services whose namespaces hold this unknown user to create it
        (`GET /_matrix/app/v1/users/{userId}`); whether one said it did."""
        return await self._query([r for r in self.registrations if r.claims_user(user_id)], "users", user_id)

    async def query_alias(self, alias: str) -> bool:
        """Ask the services whose namespaces hold this unknown alias to create its room
        (`GET /_matrix/app/v1/rooms/{roomAlias}`); whether one said it did."""
        return await self._query([r for r in self.registrations if r.claims_alias(alias)], "rooms", alias)

    async def _query(self, services: list[Registration], kind: str, name: str) -> bool:
        for registration in services:
            if registration.url is None:
                continue
            url = f"{registration.url}/_matrix/app/v1/{kind}/{quote(name, safe='')}"
            try:
                async with self.session().get(url, headers=authorization(registration),
                                              timeout=aiohttp.ClientTimeout(total=QUERY_TIMEOUT_S)) as response:
                    if response.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("application service %s did not answer the %s query: %s", registration.id, kind, exc)
        return False

    async def ping(self, registration: Registration, transaction_id: str | None) -> int:
        """`POST /_matrix/app/v1/ping` to the service; the milliseconds it took, or the
        spec's errors: M_URL_NOT_SET, M_BAD_STATUS (502, with the service's status and
        body), M_CONNECTION_FAILED (502), M_CONNECTION_TIMEOUT (504)."""
        if registration.url is None:
            raise MatrixError("M_URL_NOT_SET", "This application service has no URL")
        body: dict[str, Any] = {} if transaction_id is None else {"transaction_id": transaction_id}
        started = time.monotonic()
        try:
            async with self.session().post(f"{registration.url}/_matrix/app/v1/ping", json=body,
                                           headers=authorization(registration),
                                           timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT_S)) as response:
                text = await response.text(errors="replace")
                if response.status != 200:
                    error = MatrixError("M_BAD_STATUS", "The application service answered with an error")
                    error.extra = {"status": response.status, "body": text[:4096]}
                    raise error
        except TimeoutError:
            raise MatrixError("M_CONNECTION_TIMEOUT", "The application service did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise MatrixError("M_CONNECTION_FAILED", f"Could not reach the application service: {exc}") from None
        return int((time.monotonic() - started) * 1000)
