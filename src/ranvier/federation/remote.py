"""Questions this server asks other servers for its own users: profiles, room aliases,
public room lists, devices and encryption keys, and media (`/_matrix/federation/v1/media`,
whose answer is a multipart body: JSON metadata, then the bytes or a redirect to them)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import aiohttp
from yarl import URL

from ranvier.errors import MatrixError
from ranvier.events.identifiers import domain_of
from ranvier.federation.client import FederationClient, FederationError, Unreachable, path_segment
from ranvier.outbound.addresses import literal_allowed

log = logging.getLogger(__name__)

#: How long a question to another server may take before it counts as unreachable.
QUERY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RemoteMedia:
    content: bytes
    content_type: str | None
    upload_name: str | None


def _as_matrix_error(server: str, exc: Exception) -> MatrixError:
    if isinstance(exc, FederationError) and exc.status == 404:
        return MatrixError("M_NOT_FOUND", exc.body.get("error") or f"{server} does not know it")
    if isinstance(exc, FederationError) and exc.errcode and exc.status < 500:
        return MatrixError("M_FORBIDDEN" if exc.status == 403 else "M_UNKNOWN",
                           exc.body.get("error") or f"{server} refused")
    return MatrixError("M_UNKNOWN", f"{server} could not be reached", status=502)


class RemoteQueries:
    def __init__(self, client: FederationClient, max_media_bytes: int) -> None:
        self.client = client
        self.max_media_bytes = max_media_bytes

    async def _get(self, server: str, path: str, query: dict[str, Any] | None = None) -> Any:
        try:
            return await self.client.get(server, path, query=query, timeout_s=QUERY_TIMEOUT_S)
        except (FederationError, Unreachable) as exc:
            raise _as_matrix_error(server, exc) from None

    async def _post(self, server: str, path: str, body: Any) -> Any:
        try:
            return await self.client.post(server, path, body, timeout_s=QUERY_TIMEOUT_S)
        except (FederationError, Unreachable) as exc:
            raise _as_matrix_error(server, exc) from None

    async def profile(self, user_id: str, field: str | None = None) -> dict[str, Any]:
        query = {"user_id": user_id, **({"field": field} if field else {})}
        answer = await self._get(domain_of(user_id), "/_matrix/federation/v1/query/profile", query)
        return answer if isinstance(answer, dict) else {}

    async def resolve_alias(self, alias: str) -> dict[str, Any]:
        server = alias.partition(":")[2]
        answer = await self._get(server, "/_matrix/federation/v1/query/directory", {"room_alias": alias})
        if not isinstance(answer, dict) or not isinstance(answer.get("room_id"), str):
            raise MatrixError("M_NOT_FOUND", f"Room alias {alias} not found")
        servers = answer.get("servers")
        return {"room_id": answer["room_id"],
                "servers": [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else [server]}

    async def public_rooms(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        """A page of another server's room directory (POST when filtered, else GET)."""
        if body.get("filter") or body.get("include_all_networks") or body.get("third_party_instance_id"):
            answer = await self._post(server, "/_matrix/federation/v1/publicRooms", body)
        else:
            query = {key: str(value) for key, value in body.items() if key in ("limit", "since") and value}
            answer = await self._get(server, "/_matrix/federation/v1/publicRooms", query)
        return answer if isinstance(answer, dict) else {"chunk": []}

    async def query_keys(self, server: str, device_keys: dict[str, list[str]]) -> dict[str, Any]:
        return await self._post(server, "/_matrix/federation/v1/user/keys/query", {"device_keys": device_keys})

    async def claim_keys(self, server: str, one_time_keys: dict[str, dict[str, str]]) -> dict[str, Any]:
        return await self._post(server, "/_matrix/federation/v1/user/keys/claim", {"one_time_keys": one_time_keys})

    async def media(self, server: str, media_id: str, thumbnail: dict[str, str] | None = None) -> RemoteMedia:
        """Another server's media (or a thumbnail of it) through the federation media API."""
        kind = "thumbnail" if thumbnail is not None else "download"
        try:
            status, headers, body = await self.client.request_raw(
                "GET", server, f"/_matrix/federation/v1/media/{kind}/{path_segment(media_id)}", query=thumbnail,
                timeout_s=60.0, limit=self.max_media_bytes + 64 * 1024)
        except Unreachable as exc:
            raise _as_matrix_error(server, exc) from None
        if status == 404:
            raise MatrixError("M_NOT_FOUND", "Remote media not found")
        if status != 200:
            raise MatrixError("M_UNKNOWN", f"{server} answered {status} for its media", status=502)
        return await self._media_part(server, headers.get("Content-Type", ""), body)

    async def _media_part(self, server: str, content_type: str, body: bytes) -> RemoteMedia:
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = list(message.iter_parts()) if message.is_multipart() else []
        if len(parts) != 2:
            raise MatrixError("M_UNKNOWN", f"{server} sent media in another shape than the spec's", status=502)
        media = parts[1]
        location = media.get("Location")
        if location:
            return await self._redirected(server, location)
        filename = media.get_filename()
        return RemoteMedia(media.get_payload(decode=True) or b"", media.get_content_type(), filename)

    async def _redirected(self, server: str, location: str) -> RemoteMedia:
        url = URL(location)
        if url.scheme not in ("http", "https") or not literal_allowed(url, self.client.allowed):
            raise MatrixError("M_UNKNOWN", f"{server} redirected its media to a place that may not be reached",
                              status=502)
        try:
            async with self.client.session().get(url, allow_redirects=True, max_redirects=5) as response:
                if response.status != 200:
                    raise MatrixError("M_NOT_FOUND", "Remote media not found")
                content = await response.content.read(self.max_media_bytes + 1)
                if len(content) > self.max_media_bytes:
                    raise MatrixError("M_TOO_LARGE", "Remote media is too large")
                return RemoteMedia(content, response.content_type, None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise MatrixError("M_UNKNOWN", f"{server}'s media could not be fetched: {exc}", status=502) from None
