"""The content repository over real HTTP: uploads, downloads, limits, the freeze, async uploads, nio."""

from __future__ import annotations

import asyncio
import io
import os
import time

import nio
import orjson
import pytest

from tests.conftest import Api, test_config

MXC_PREFIX = "mxc://localhost/"
CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
       "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")


@pytest.fixture
def media_settings() -> dict:
    """The `media` config section of the test server; a test changes it by parametrizing."""
    return {}


@pytest.fixture
def server_config(tmp_path, database_url, media_settings):
    return test_config(tmp_path / "data", database_url, media=media_settings)


@pytest.fixture
async def token(api) -> str:
    return (await api.register("alice"))["access_token"]


def media_id_of(content_uri: str) -> str:
    assert content_uri.startswith(MXC_PREFIX), content_uri
    return content_uri[len(MXC_PREFIX):]


async def upload(api: Api, token: str, data, content_type: str = "application/octet-stream",
                 filename: str | None = None) -> str:
    """Upload and return the media ID."""
    params = {"filename": filename} if filename is not None else None
    status, body = await api.post("/_matrix/media/v3/upload", data=data, token=token,
                                  headers={"Content-Type": content_type}, params=params)
    assert status == 200, body
    return media_id_of(body["content_uri"])


async def fetch(api: Api, path: str, token: str | None = None, params: dict | None = None):
    """GET returning (status, headers, raw bytes): downloads are not JSON."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with api.session.get(api.base_url + path, headers=headers, params=params) as response:
        return response.status, response.headers, await response.read()


def error(raw: bytes) -> str:
    return orjson.loads(raw)["errcode"]


def content_files(homeserver) -> list[str]:
    root = os.path.join(homeserver.config.media_dir, "content")
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def temp_files(homeserver) -> list[str]:
    return os.listdir(os.path.join(homeserver.config.media_dir, "tmp"))


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 20 * 1024 * 1024], ids=["empty", "one-byte", "20MiB"])
async def test_round_trip_is_byte_exact(api, token, size):
    data = os.urandom(size)
    media_id = await upload(api, token, data, "application/x-test", "blob.bin")
    status, headers, body = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}", token)
    assert status == 200
    assert body == data
    assert headers["Content-Length"] == str(size)
    assert headers["Content-Type"] == "application/x-test"


async def test_same_content_is_stored_once(api, token, homeserver):
    data = b"the same bytes, uploaded twice"
    first = await upload(api, token, data, "text/plain", "one.txt")
    second = await upload(api, token, data, "application/octet-stream", "two.bin")
    assert first != second
    assert len(content_files(homeserver)) == 1
    _, headers_one, body_one = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{first}", token)
    _, headers_two, body_two = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{second}", token)
    assert body_one == body_two == data
    assert headers_one["Content-Disposition"] == 'inline; filename="one.txt"'
    assert headers_two["Content-Disposition"] == 'attachment; filename="two.bin"'
    assert temp_files(homeserver) == []


async def test_upload_without_content_type_and_through_r0(api, token):
    async with api.session.post(api.base_url + "/_matrix/media/r0/upload", data=b"raw",
                                headers={"Authorization": f"Bearer {token}"},
                                skip_auto_headers=["Content-Type"]) as response:
        media_id = media_id_of((await response.json())["content_uri"])
    _, headers, body = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}", token)
    assert body == b"raw"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == "attachment"


# -- what downloads carry ----------------------------------------------------------------------


SAFE_INLINE = ["image/png", "text/plain; charset=utf-8", "video/mp4", "audio/ogg"]
ATTACHMENT = ["image/svg+xml", "text/html", "application/javascript", "application/pdf", "application/xhtml+xml"]


async def test_download_headers_sandbox_the_content(api, token):
    for content_type in SAFE_INLINE + ATTACHMENT:
        media_id = await upload(api, token, b"<script>alert(1)</script>", content_type, "file")
        status, headers, _ = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}", token)
        assert status == 200
        disposition = "inline" if content_type in SAFE_INLINE else "attachment"
        assert headers["Content-Type"] == content_type
        assert headers["Content-Disposition"] == f'{disposition}; filename="file"', content_type
        assert headers["Content-Security-Policy"] == CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"


async def test_file_names_in_content_disposition(api, token):
    cases = [
        ("text/plain", 'a"b/c\\d\r\nSet-Cookie: x=1.txt', "", 'inline; filename="a_b_c_dSet-Cookie: x=1.txt"'),
        ("text/plain", "résumé ünïcode.txt", "", "inline; filename*=utf-8''r%C3%A9sum%C3%A9%20%C3%BCn%C3%AFcode.txt"),
        ("application/zip", "original.zip", "/other.zip", 'attachment; filename="other.zip"'),
        ("image/png", None, "", "inline"),
    ]
    for content_type, name, suffix, expected in cases:
        media_id = await upload(api, token, b"x", content_type, name)
        status, headers, _ = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}{suffix}", token)
        assert status == 200
        assert headers["Content-Disposition"] == expected
        assert "Set-Cookie" not in headers


async def test_overlong_file_name_is_refused(api, token):
    status, body = await api.post("/_matrix/media/v3/upload", data=b"x", token=token, params={"filename": "n" * 300})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_unknown_invalid_and_remote_media_are_not_found(api, token):
    for path in ("/_matrix/client/v1/media/download/localhost/NoSuchMedia",
                 "/_matrix/client/v1/media/download/localhost/..%2F..%2Fetc%2Fpasswd",
                 "/_matrix/client/v1/media/download/localhost/a.b",
                 "/_matrix/client/v1/media/download/elsewhere.example/NoSuchMedia",
                 "/_matrix/client/v1/media/thumbnail/localhost/NoSuchMedia?width=32&height=32"):
        status, _, raw = await fetch(api, path, token)
        assert (status, error(raw)) == (404, "M_NOT_FOUND"), path


# -- authentication and the freeze --------------------------------------------------------------


AUTHENTICATED = [
    ("GET", "/_matrix/client/v1/media/download/localhost/{id}"),
    ("GET", "/_matrix/client/v1/media/download/localhost/{id}/name.txt"),
    ("GET", "/_matrix/client/v1/media/thumbnail/localhost/{id}?width=32&height=32"),
    ("GET", "/_matrix/client/v1/media/config"),
    ("GET", "/_matrix/client/v1/media/preview_url?url=https://example.org/"),
    ("GET", "/_matrix/media/v3/config"),
    ("POST", "/_matrix/media/v3/upload"),
    ("POST", "/_matrix/media/v1/create"),
    ("PUT", "/_matrix/media/v3/upload/localhost/{id}"),
]


async def test_authenticated_endpoints_refuse_requests_without_a_valid_token(api, token):
    media_id = await upload(api, token, b"secret", "text/plain")
    for method, path in AUTHENTICATED:
        path = path.format(id=media_id)
        data = b"x" if method != "GET" else None
        status, body = await api.request(method, path, data=data)
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN"), path
        status, body = await api.request(method, path, data=data, token="rva_nonsense")
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), path


async def test_config_endpoints_report_the_upload_limit(api, token, homeserver):
    for path in ("/_matrix/client/v1/media/config", "/_matrix/media/v3/config"):
        status, body = await api.get(path, token=token)
        assert (status, body) == (200, {"m.upload.size": homeserver.config.media.max_upload_bytes})


async def test_media_uploaded_after_the_freeze_is_only_served_authenticated(api, token):
    media_id = await upload(api, token, b"new media", "text/plain")
    for path in (f"/_matrix/media/v3/download/localhost/{media_id}",
                 f"/_matrix/media/v3/download/localhost/{media_id}/name.txt",
                 f"/_matrix/media/r0/download/localhost/{media_id}",
                 f"/_matrix/media/v3/thumbnail/localhost/{media_id}?width=32&height=32"):
        status, _, raw = await fetch(api, path)
        assert (status, error(raw)) == (404, "M_NOT_FOUND"), path
    status, _, body = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}", token)
    assert (status, body) == (200, b"new media")


@pytest.mark.parametrize("media_settings", [{"unauthenticated_freeze_date": "2999-01-01"}], ids=["future-freeze"])
async def test_media_uploaded_before_the_freeze_is_still_served_unauthenticated(api, token):
    media_id = await upload(api, token, b"old media", "text/plain", "old.txt")
    status, headers, body = await fetch(api, f"/_matrix/media/v3/download/localhost/{media_id}")
    assert (status, body) == (200, b"old media")
    assert headers["Content-Disposition"] == 'inline; filename="old.txt"'
    assert headers["Content-Security-Policy"] == CSP
    status, _, body = await fetch(api, f"/_matrix/media/r0/download/localhost/{media_id}/renamed.txt")
    assert (status, body) == (200, b"old media")


# -- size limits and quota ------------------------------------------------------------------------


@pytest.mark.parametrize("media_settings", [{"max_upload_bytes": 1024 * 1024}], ids=["1MiB"])
async def test_upload_size_limit(api, token, homeserver):
    # Content-Length says 10 GiB and no body follows: the answer must not wait for the body.
    host, port = homeserver.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: application/octet-stream\r\nContent-Length: {10 * 1024 ** 3}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")

    status, body = await api.post("/_matrix/media/v3/upload", data=b"x" * (1024 * 1024 + 1), token=token)
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")

    async def chunks():
        for _ in range(20):
            yield b"y" * 65536 + b"!"

    status, body = await api.post("/_matrix/media/v3/upload", data=chunks(), token=token)
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")
    assert content_files(homeserver) == []
    assert temp_files(homeserver) == []
    await upload(api, token, b"x" * (1024 * 1024))
    assert len(content_files(homeserver)) == 1


async def test_chunked_upload_within_the_limit_is_stored(api, token):
    parts = [os.urandom(100_000) for _ in range(5)]

    async def chunks():
        for part in parts:
            yield part

    media_id = await upload(api, token, chunks())
    _, _, body = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}", token)
    assert body == b"".join(parts)


@pytest.mark.parametrize("media_settings", [{"user_quota_bytes": 1000}], ids=["quota"])
async def test_user_quota(api, token):
    await upload(api, token, b"a" * 600)
    status, body = await api.post("/_matrix/media/v3/upload", data=b"b" * 600, token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    async def chunks():
        yield b"c" * 300
        yield b"c" * 300

    status, body = await api.post("/_matrix/media/v3/upload", data=chunks(), token=token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await upload(api, token, b"d" * 400)
    other = (await api.register("bob"))["access_token"]
    await upload(api, other, b"e" * 600)


# -- asynchronous uploads --------------------------------------------------------------------------


async def create_media_id(api: Api, token: str) -> tuple[str, dict]:
    status, body = await api.post("/_matrix/media/v1/create", token=token)
    assert status == 200, body
    return media_id_of(body["content_uri"]), body


async def test_create_then_upload(api, token):
    before = int(time.time() * 1000)
    media_id, body = await create_media_id(api, token)
    assert before + 24 * 3600 * 1000 <= body["unused_expires_at"] <= int(time.time() * 1000) + 24 * 3600 * 1000

    path = f"/_matrix/client/v1/media/download/localhost/{media_id}"
    status, _, raw = await fetch(api, path, token, params={"timeout_ms": "0"})
    assert (status, error(raw)) == (504, "M_NOT_YET_UPLOADED")

    other = (await api.register("mallory"))["access_token"]
    status, body = await api.put(f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"not yours", token=other)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    status, body = await api.put(f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"late content",
                                 token=token, headers={"Content-Type": "text/plain"}, params={"filename": "late.txt"})
    # The URI again, as POST /upload answers (mautrix-python reads it; the spec's answer is `{}`).
    assert (status, body) == (200, {"content_uri": f"mxc://localhost/{media_id}"})
    status, body = await api.put(f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"again", token=token)
    assert (status, body["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")

    status, headers, raw = await fetch(api, path, token)
    assert (status, raw) == (200, b"late content")
    assert headers["Content-Disposition"] == 'inline; filename="late.txt"'


async def test_download_waits_for_a_pending_upload_up_to_timeout_ms(api, token):
    media_id, _ = await create_media_id(api, token)
    path = f"/_matrix/client/v1/media/download/localhost/{media_id}"
    started = time.monotonic()
    status, _, raw = await fetch(api, path, token, params={"timeout_ms": "300"})
    assert (status, error(raw)) == (504, "M_NOT_YET_UPLOADED")
    assert 0.25 < time.monotonic() - started < 3

    started = time.monotonic()
    waiting = asyncio.create_task(fetch(api, path, token, params={"timeout_ms": "10000"}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    status, _ = await api.put(f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"arrived", token=token)
    assert status == 200
    status, _, raw = await waiting
    assert (status, raw) == (200, b"arrived")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("media_settings", [{"unused_upload_lifetime_ms": 1}], ids=["expiring"])
async def test_unused_media_ids_expire(api, token):
    media_id, _ = await create_media_id(api, token)
    await asyncio.sleep(0.05)
    status, body = await api.put(f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"too late", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, _, raw = await fetch(api, f"/_matrix/client/v1/media/download/localhost/{media_id}", token)
    assert (status, error(raw)) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize("media_settings", [{"max_pending_uploads": 2}], ids=["two-pending"])
async def test_pending_uploads_are_limited_per_user(api, token):
    first, _ = await create_media_id(api, token)
    await create_media_id(api, token)
    status, body = await api.post("/_matrix/media/v1/create", token=token)
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    await api.put(f"/_matrix/media/v3/upload/localhost/{first}", data=b"done", token=token)
    await create_media_id(api, token)


async def test_upload_to_an_unknown_or_uploaded_media_id(api, token):
    for server_name, media_id in (("localhost", "NeverCreated"), ("elsewhere.example", "Abc"), ("localhost", "a.b")):
        status, body = await api.put(f"/_matrix/media/v3/upload/{server_name}/{media_id}", data=b"x", token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    media_id = await upload(api, token, b"first")
    status, body = await api.put(f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"second", token=token)
    assert (status, body["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")


# -- an independent client ---------------------------------------------------------------------------


async def test_nio_uploads_and_downloads(homeserver, tmp_path):
    client = nio.AsyncClient(homeserver.base_url, "@niomedia:localhost", store_path=str(tmp_path))
    try:
        await client.register("niomedia", "correct horse")
        data = os.urandom(300_000)
        response, keys = await client.upload(io.BytesIO(data), content_type="image/png", filename="pic.png",
                                             filesize=len(data))
        assert isinstance(response, nio.UploadResponse), response
        assert keys is None
        downloaded = await client.download(response.content_uri)
        assert isinstance(downloaded, nio.DownloadResponse), downloaded
        assert downloaded.body == data
        assert downloaded.content_type == "image/png"
        assert downloaded.filename == "pic.png"
        renamed = await client.download(response.content_uri, filename="other.png")
        assert renamed.filename == "other.png" and renamed.body == data
        saved = await client.download(response.content_uri, save_to=tmp_path / "saved.png")
        assert isinstance(saved, nio.DiskDownloadResponse), saved
        assert (tmp_path / "saved.png").read_bytes() == data
    finally:
        await client.close()
