"""Third-party networks bridged by the application services: the protocols each
registration names (`protocols: [irc, ...]`), their metadata and the lookups in them,
asked of the services through the Application Service API
(`GET /_matrix/app/v1/thirdparty/...`), as Synapse asks them.

- A protocol's metadata is asked of every service naming it, at once. Their `instances`
  are merged (the other fields come from the first answer, in registration order), and
  each instance gets an `instance_id` unique on this server, `{service ID}|{network ID}`
  (Synapse's form), which a client hands `/publicRooms` as `third_party_instance_id`; the
  service's `network_id` is kept. An answer is kept an hour, as Synapse keeps it; a
  failure a minute, so a bridge started after the server shows up soon, and a hung one
  does not hold every directory request for the whole timeout.
- A lookup of a protocol's locations or users is forwarded, with the client's query, to
  every service naming the protocol, at once; the valid entries of their answers are
  concatenated.
- A reverse lookup (which third-party locations a Matrix alias is, which third-party users
  a Matrix user is) is asked of the services that bridge some protocol and whose
  namespaces hold the alias or user. (Synapse asks none and always answers `[]`.)
- A service that fails, does not answer within QUERY_TIMEOUT_S or answers garbage is left
  out and logged: the client gets what the others said. An entry of the wrong shape is
  dropped alone.

Only the `/_matrix/app/v1` paths are asked: Synapse no longer falls back to the legacy
unprefixed ones, and neither does this server.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ranvier.appservice.registration import Registration
from ranvier.appservice.service import QUERY_TIMEOUT_S, AppServices, authorization
from ranvier.errors import MatrixError

log = logging.getLogger(__name__)

LOCATION, USER = "location", "user"
#: The field naming the Matrix side in each kind of lookup answer (the spec's Location
#: and User objects: `alias` or `userid`, with `protocol` and `fields`).
MATRIX_FIELD = {LOCATION: "alias", USER: "userid"}
#: How long a protocol's metadata answer is kept (Synapse's time), and a failure.
METADATA_KEPT_S = 3600.0
FAILURE_KEPT_S = 60.0
#: Between the service ID and the network ID in an instance ID.
INSTANCE_SEPARATOR = "|"


def instance_id(service_id: str, network_id: str) -> str:
    return f"{service_id}{INSTANCE_SEPARATOR}{network_id}"


def valid_metadata(answer: Any, registration: Registration, protocol: str) -> dict[str, Any] | None:
    """A service's protocol metadata with an `instance_id` given to each instance, or None
    when it is not an object with an `instances` list. Instances that are not objects with
    a `network_id` string are dropped (logged): the spec requires one, and a client could
    not name such an instance."""
    if not isinstance(answer, dict) or not isinstance(answer.get("instances"), list):
        log.warning("application service %s answered garbage for the metadata of protocol %s",
                    registration.id, protocol)
        return None
    instances = []
    for instance in answer["instances"]:
        network_id = instance.get("network_id") if isinstance(instance, dict) else None
        if isinstance(network_id, str) and network_id:
            instances.append({**instance, "instance_id": instance_id(registration.id, network_id)})
        else:
            log.warning("application service %s gave protocol %s an instance without a network_id; left out",
                        registration.id, protocol)
    return {**answer, "instances": instances}


def valid_entries(answer: Any, registration: Registration, kind: str) -> list[dict[str, Any]]:
    """The entries of a lookup answer that have the spec's shape: an object whose Matrix
    field (`alias` or `userid`) and `protocol` are strings and whose `fields` is an object.
    Anything else is dropped (logged)."""
    if not isinstance(answer, list):
        log.warning("application service %s answered a %s lookup with something else than a list",
                    registration.id, kind)
        return []
    key = MATRIX_FIELD[kind]
    entries = [entry for entry in answer
               if isinstance(entry, dict) and isinstance(entry.get(key), str)
               and isinstance(entry.get("protocol"), str) and isinstance(entry.get("fields"), dict)]
    if len(entries) < len(answer):
        log.warning("application service %s answered a %s lookup with %d malformed entries; left out",
                    registration.id, kind, len(answer) - len(entries))
    return entries


class _Kept:
    """One service's metadata answer for one protocol, shared by the requests that ask
    while it is being fetched, then kept until `expires`."""

    __slots__ = ("task", "expires")

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task
        self.expires = math.inf
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        answered = not task.cancelled() and task.exception() is None and task.result() is not None
        self.expires = time.monotonic() + (METADATA_KEPT_S if answered else FAILURE_KEPT_S)


class ThirdPartyLookups:
    """The protocols of the registered services and the lookups in them (see the module)."""

    def __init__(self, appservices: AppServices) -> None:
        self.appservices = appservices
        self._metadata: dict[tuple[str, str], _Kept] = {}

    def bridging(self, protocol: str) -> list[Registration]:
        """The services whose registration names the protocol."""
        return [r for r in self.appservices.registrations if protocol in r.protocols]

    async def close(self) -> None:
        for kept in self._metadata.values():
            kept.task.cancel()
        self._metadata.clear()

    # -- metadata --------------------------------------------------------------------------

    async def protocols(self, only: str | None = None) -> dict[str, dict[str, Any]]:
        """Protocol name -> its merged metadata, for the protocols (or the one) some
        service answered for; the others are left out."""
        asked = [(registration, protocol) for registration in self.appservices.registrations
                 for protocol in registration.protocols if only is None or protocol == only]
        answers = await asyncio.gather(*(self._metadata_of(registration, protocol)
                                         for registration, protocol in asked))
        merged: dict[str, dict[str, Any]] = {}
        for (_, protocol), info in zip(asked, answers):
            if info is None:
                continue
            if protocol in merged:
                merged[protocol]["instances"].extend(info["instances"])
            else:  # a copy: the kept answer stays as the service gave it
                merged[protocol] = {**info, "instances": list(info["instances"])}
        return merged

    async def _metadata_of(self, registration: Registration, protocol: str) -> dict[str, Any] | None:
        key = (registration.id, protocol)
        kept = self._metadata.get(key)
        if kept is None or kept.expires <= time.monotonic():
            kept = self._metadata[key] = _Kept(asyncio.ensure_future(self._fetch_metadata(registration, protocol)))
        # Shielded: a client that goes away does not cancel what the others wait on.
        return await asyncio.shield(kept.task)

    async def _fetch_metadata(self, registration: Registration, protocol: str) -> dict[str, Any] | None:
        answer = await self._get(registration, f"protocol/{quote(protocol, safe='')}")
        return None if answer is None else valid_metadata(answer, registration, protocol)

    # -- lookups ---------------------------------------------------------------------------

    async def lookup(self, kind: str, protocol: str, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The third-party locations or users (`kind`) of a protocol matching the client's
        query, as the services bridging it answer."""
        return await self._ask_all(self.bridging(protocol), kind, f"{kind}/{quote(protocol, safe='')}", query)

    async def reverse_lookup(self, kind: str, matrix_id: str) -> list[dict[str, Any]]:
        """The third-party locations a Matrix alias is, or the third-party users a Matrix
        user is, as the services with protocols whose namespaces hold it answer."""
        if kind == LOCATION:
            services = [r for r in self.appservices.registrations if r.protocols and r.claims_alias(matrix_id)]
        else:
            services = [r for r in self.appservices.registrations if r.protocols and r.claims_user(matrix_id)]
        return await self._ask_all(services, kind, kind, [(MATRIX_FIELD[kind], matrix_id)])

    async def _ask_all(self, services: list[Registration], kind: str, path: str,
                       query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        answers = await asyncio.gather(*(self._get(registration, path, query) for registration in services))
        found: list[dict[str, Any]] = []
        for registration, answer in zip(services, answers):
            if answer is not None:
                found += valid_entries(answer, registration, kind)
        return found

    async def _get(self, registration: Registration, path: str,
                   query: list[tuple[str, str]] | None = None) -> Any | None:
        """The service's JSON answer to `GET {url}/_matrix/app/v1/thirdparty/{path}`, or
        None (logged) when it has no URL, fails, is late or answers anything but 200 JSON."""
        if registration.url is None:
            return None
        url = f"{registration.url}/_matrix/app/v1/thirdparty/{path}"
        try:
            async with self.appservices.session().get(
                    url, params=query, headers=authorization(registration),
                    timeout=aiohttp.ClientTimeout(total=QUERY_TIMEOUT_S)) as response:
                if response.status != 200:
                    log.info("application service %s answered %d to thirdparty/%s", registration.id,
                             response.status, path)
                    return None
                return orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:  # ValueError: not JSON
            log.warning("application service %s did not answer thirdparty/%s: %s", registration.id, path,
                        exc.__class__.__name__)
            return None

    # -- network directories ---------------------------------------------------------------

    def network_of_instance(self, instance: str) -> tuple[str, str] | None:
        """The (service ID, network ID) a `third_party_instance_id` names, or None when no
        registered service made it (its list is empty then); 400 M_INVALID_PARAM when it is
        not an instance ID at all (no `|`, as Synapse refuses it)."""
        for registration in self.appservices.registrations:
            prefix = instance_id(registration.id, "")
            if instance.startswith(prefix):
                return registration.id, instance[len(prefix):]
        if INSTANCE_SEPARATOR not in instance:
            raise MatrixError("M_INVALID_PARAM", "third_party_instance_id is not an instance ID of this server "
                                                 "(see GET /thirdparty/protocols)")
        return None
