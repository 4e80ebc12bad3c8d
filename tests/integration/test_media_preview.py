"""URL previews: off by default, never fetching private or loopback addresses, OpenGraph when allowed."""

from __future__ import annotations

import io

import pytest
from aiohttp import web
from PIL import Image

from tests.integration.test_media import fetch, media_id_of, media_settings, server_config, token  # noqa: F401

PREVIEW = "/_matrix/client/v1/media/preview_url"
PAGE = """<!doctype html><html><head>
<title>Fallback title</title>
<meta property="og:title" content="A &amp; B">
<meta name="description" content="What the page is about">
<meta property="og:image" content="/picture.png">
<meta property="og:image:width" content="9999">
</head><body>hello</body></html>"""


def picture() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), "purple").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def website():
    """A small web server on 127.0.0.1 with a page, its image and redirects."""
    app = web.Application()

    async def page(request):
        return web.Response(text=PAGE, content_type="text/html")

    async def image(request):
        return web.Response(body=picture(), content_type="image/png")

    async def plain(request):
        return web.Response(text="<title>no</title>", content_type="text/plain")

    async def to_private(request):
        raise web.HTTPFound("http://10.255.255.1/secret")

    async def to_page(request):
        raise web.HTTPFound("/page")

    app.router.add_get("/page", page)
    app.router.add_get("/picture.png", image)
    app.router.add_get("/plain", plain)
    app.router.add_get("/to-private", to_private)
    app.router.add_get("/to-page", to_page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_previews_are_off_unless_enabled(api, token):
    for path in (PREVIEW, "/_matrix/media/v3/preview_url"):
        status, body = await api.get(path, token=token, params={"url": "https://example.org/"})
        assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")


@pytest.mark.parametrize("media_settings", [{"url_preview": {"enabled": True}}], ids=["enabled"])
async def test_private_addresses_are_never_fetched_and_bad_urls_refused(api, token, website):
    port = website.rsplit(":", 1)[1]
    for url in (f"{website}/page", f"http://localhost:{port}/page", f"http://[::1]:{port}/page",
                "http://10.0.0.1/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/",
                "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/"):
        status, body = await api.get(PREVIEW, token=token, params={"url": url})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), url

    status, body = await api.get(PREVIEW, token=token)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    for url in ("ftp://example.org/", "file:///etc/passwd", "not a url", "http://127.1/"):
        status, body = await api.get(PREVIEW, token=token, params={"url": url})
        assert status in (400, 403) and body["errcode"] in ("M_INVALID_PARAM", "M_FORBIDDEN"), (url, body)


ALLOW_LOOPBACK = {"url_preview": {"enabled": True, "allowed_networks": ["127.0.0.0/8"]}}


@pytest.mark.parametrize("media_settings", [ALLOW_LOOPBACK], ids=["loopback-allowed"])
async def test_opengraph_preview_and_redirects(api, token, website):
    for url in (f"{website}/page", f"{website}/to-page"):
        status, body = await api.get(PREVIEW, token=token, params={"url": url, "ts": "1510610716656"})
        assert status == 200, body
        assert body["og:title"] == "A & B"
        assert body["og:description"] == "What the page is about"
        assert body["og:image:type"] == "image/png"
        assert body["matrix:image:size"] == len(picture())
        assert "og:image:width" not in body
        status, _, image = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id_of(body['og:image'])}",
                                       token)
        assert (status, image) == (200, picture())

    status, body = await api.get(PREVIEW, token=token, params={"url": f"{website}/to-private"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize("media_settings", [ALLOW_LOOPBACK], ids=["loopback-allowed"])
async def test_image_urls_and_other_types(api, token, website):
    status, body = await api.get(PREVIEW, token=token, params={"url": f"{website}/picture.png"})
    assert status == 200 and body["matrix:image:size"] == len(picture())
    status, body = await api.get(PREVIEW, token=token, params={"url": f"{website}/plain"})
    assert (status, body) == (200, {})
    status, body = await api.get(PREVIEW, token=token, params={"url": f"{website}/missing"})
    assert (status, body["errcode"]) == (502, "M_UNKNOWN")
