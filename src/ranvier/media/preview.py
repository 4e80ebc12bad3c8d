"""URL previews: fetch a page and read its OpenGraph tags, never from a private address.

Every address a request would connect to is checked (`outbound.addresses`), the resolved
addresses of a host name as well as literal IPs, and again at every redirect: only public
(global unicast) addresses are fetched, plus the ranges an administrator allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import aiohttp
from yarl import URL

from ranvier.config import UrlPreviewConfig
from ranvier.errors import MatrixError
from ranvier.outbound.addresses import BlockedAddress, checked_session, literal_allowed, parse_networks

MAX_REDIRECTS = 5
FETCH_TIMEOUT_SECONDS = 10
USER_AGENT = "ranvier URL preview"
_REDIRECTS = {301, 302, 303, 307, 308}
#: OpenGraph values longer than this are cut; a page cannot make the answer large.
MAX_VALUE_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class Preview:
    og: dict[str, Any]
    #: The page's image (or the URL itself when it is an image): bytes and content type.
    image: tuple[bytes, str] | None


@dataclass(frozen=True, slots=True)
class _Fetched:
    url: URL
    content_type: str
    charset: str | None
    body: bytes
    complete: bool


class UrlPreviewer:
    def __init__(self, config: UrlPreviewConfig) -> None:
        self.max_bytes = config.max_fetch_bytes
        self.allowed = parse_networks(config.allowed_networks)

    async def preview(self, url: str) -> Preview:
        target = _parse(url)
        async with checked_session(self.allowed, timeout_s=FETCH_TIMEOUT_SECONDS, user_agent=USER_AGENT) as session:
            page = await self._fetch(session, target)
            if page.content_type.startswith("image/"):
                return Preview({}, (page.body, page.content_type) if page.complete else None)
            if page.content_type not in ("text/html", "application/xhtml+xml"):
                return Preview({}, None)
            og, image_url = parse_opengraph(page.body.decode(page.charset or "utf-8", errors="replace"))
            image = None
            if image_url:
                image = await self._fetch_image(session, page.url.join(URL(image_url)))
            return Preview(og, image)

    async def _fetch_image(self, session: aiohttp.ClientSession, url: URL) -> tuple[bytes, str] | None:
        """The page's image, or None if it cannot be had; the page's preview stands without it."""
        try:
            fetched = await self._fetch(session, url)
        except MatrixError:
            return None
        if not fetched.complete or not fetched.content_type.startswith("image/"):
            return None
        return fetched.body, fetched.content_type

    async def _fetch(self, session: aiohttp.ClientSession, url: URL) -> _Fetched:
        """GET with redirects followed by hand, so each hop's address is checked."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_literal(url)
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in _REDIRECTS and "Location" in response.headers:
                        url = response.url.join(URL(response.headers["Location"]))
                        if url.scheme not in ("http", "https"):
                            raise _unfetchable("redirected to a URL that is not http or https")
                        continue
                    if response.status != 200:
                        raise _unfetchable(f"the server answered {response.status}")
                    body = bytearray()
                    complete = True
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        body += chunk
                        if len(body) > self.max_bytes:
                            del body[self.max_bytes:]
                            complete = False
                            break
                    return _Fetched(response.url, response.content_type, response.charset, bytes(body), complete)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress):
                    raise _blocked() from None
                raise _unfetchable("could not connect") from None
            except aiohttp.InvalidURL:
                raise MatrixError("M_INVALID_PARAM", "url is not a valid URL") from None
            except (aiohttp.ClientError, TimeoutError, UnicodeError, ValueError) as exc:
                raise _unfetchable(type(exc).__name__) from None
        raise _unfetchable("too many redirects")

    def _check_literal(self, url: URL) -> None:
        if not literal_allowed(url, self.allowed):
            raise _blocked()


def _parse(url: str) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise MatrixError("M_INVALID_PARAM", "url is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise MatrixError("M_INVALID_PARAM", "url must be an http or https URL")
    return parsed


def _blocked() -> MatrixError:
    return MatrixError("M_FORBIDDEN", "URLs on private or loopback addresses are not previewed")


def _unfetchable(reason: str) -> MatrixError:
    return MatrixError("M_UNKNOWN", f"Could not fetch the URL: {reason}", status=502)


class _OpenGraphParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.description: str | None = None
        self.title: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta":
            key = values.get("property") or values.get("name") or ""
            content = values.get("content")
            if content is None:
                return
            if key.startswith("og:"):
                self.og.setdefault(key, content[:MAX_VALUE_LENGTH])
            elif key.lower() == "description" and self.description is None:
                self.description = content[:MAX_VALUE_LENGTH]
        elif tag == "title" and self.title is None:
            self._in_title = True
            self.title = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and self.title is not None and len(self.title) < MAX_VALUE_LENGTH:
            self.title += data


def parse_opengraph(html: str) -> tuple[dict[str, Any], str | None]:
    """The page's og:* values (title and description fall back to <title> and the meta
    description) and the address of its og:image, which the caller fetches and replaces."""
    parser = _OpenGraphParser()
    parser.feed(html)
    parser.close()
    og: dict[str, Any] = dict(parser.og)
    if "og:title" not in og and parser.title and parser.title.strip():
        og["og:title"] = parser.title.strip()[:MAX_VALUE_LENGTH]
    if "og:description" not in og and parser.description:
        og["og:description"] = parser.description
    image_url = og.pop("og:image", None)
    for key in [k for k in og if k.startswith("og:image:")]:
        del og[key]
    return og, image_url
