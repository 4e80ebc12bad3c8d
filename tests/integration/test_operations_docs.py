"""The reverse proxy examples of docs/operations.md, taken from the page itself: nginx's runs
for real in front of a ranvier (TLS with a throwaway certificate, on a free port of
127.0.0.1) and serves the client API, the admin pages and the .well-known files; Caddy's
passes `caddy validate`. scripts/test installs nginx and caddy (Debian packages)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

DOC = Path(__file__).parents[2] / "docs" / "operations.md"

pytestmark = pytest.mark.interop


def example(language: str) -> str:
    """The one fenced block of `language` on the page."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, f"docs/operations.md should have one {language} example"
    return blocks[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_caddy_example_is_valid(tmp_path):
    caddy = shutil.which("caddy")
    assert caddy, "caddy is needed: run scripts/test (apt)"
    (tmp_path / "Caddyfile").write_text(example("caddyfile"))
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run([caddy, "validate", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=60, env=home)
    assert done.returncode == 0 and "Valid configuration" in done.stderr + done.stdout, done.stderr


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_the_nginx_example_serves_ranvier_over_tls(homeserver, tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is needed: run scripts/test (apt)"
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=matrix.example.org", "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True)
    port = free_port()
    site = example("nginx")
    site = re.sub(r"\n\s*listen \[::\]:443 ssl http2;", "", site)
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    site = re.sub(r"ssl_certificate .*?;", f"ssl_certificate {certificate};", site)
    site = re.sub(r"ssl_certificate_key .*?;", f"ssl_certificate_key {key};", site)
    site = site.replace("http://127.0.0.1:8008", homeserver.base_url)
    (tmp_path / "site.conf").write_text(site)
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (tmp_path / "nginx.conf").write_text(
        f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n  access_log off;\n"
        + "".join(f"  {name}_temp_path {path};\n" for name, path in
                  (("client_body", temp["body"]), ("proxy", temp["proxy"]), ("fastcgi", temp["fastcgi"]),
                   ("uwsgi", temp["uwsgi"]), ("scgi", temp["scgi"])))
        + f"  include {tmp_path}/site.conf;\n}}\n"
    )
    base = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run(base + ["-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = await asyncio.create_subprocess_exec(*base, "-g", "daemon off;",
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        tls = ssl.create_default_context(cafile=str(certificate))
        tls.check_hostname = False
        url = f"https://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"{url}/_matrix/client/versions", ssl=tls,
                                           headers={"Host": "matrix.example.org"}) as response:
                        versions = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("nginx did not answer")
            assert "v1.11" in versions["versions"]
            async with session.get(f"{url}/_ranvier/admin/", ssl=tls, headers={"Host": "matrix.example.org"}) as r:
                assert r.status == 200 and 'id="login-form"' in await r.text()
            async with session.get(f"{url}/_synapse/admin/v2/users", ssl=tls,
                                   headers={"Host": "matrix.example.org"}) as r:
                assert r.status == 401 and (await r.json())["errcode"] == "M_MISSING_TOKEN"
            async with session.get(f"{url}/.well-known/matrix/server", ssl=tls, headers={"Host": "example.org"}) as r:
                assert r.headers["Content-Type"] == "application/json"
                assert json.loads(await r.text()) == {"m.server": "matrix.example.org:443"}
            async with session.get(f"{url}/.well-known/matrix/client", ssl=tls, headers={"Host": "example.org"}) as r:
                assert json.loads(await r.text()) == {"m.homeserver": {"base_url": "https://matrix.example.org"}}
                assert r.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
