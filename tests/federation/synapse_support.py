"""Synapse on loopback for the interop tests, installed as the benchmarks install it (its own
virtual environment, bench/.venv-synapse, made once; scripts/test makes it on a fresh
machine): its own server name `127.0.0.1:PORT`, a TLS listener for federation with a
self-signed certificate, a plain one for its clients, loopback allowed as a destination,
certificates not checked, every rate limit raised."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ranvier.federation.certificates import write_self_signed_pair

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from servers import (  # noqa: E402
    SYNAPSE_PY, answers_versions, ensure_synapse, free_port, synapse_common_config, synapse_signing_key,
)

START_SECONDS = 120


@dataclass
class Synapse:
    name: str
    client_url: str
    process: subprocess.Popen
    workdir: Path
    log: Any

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "homeserver.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def start_synapse(workdir: Path) -> Synapse:
    ensure_synapse()
    workdir.mkdir(parents=True, exist_ok=True)
    tls_port, client_port = free_port(), free_port()
    name = f"127.0.0.1:{tls_port}"
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    write_self_signed_pair(str(cert), str(key), ["127.0.0.1"])
    config = workdir / "homeserver.yaml"
    config.write_text(
        f"server_name: '{name}'\n"
        f"pid_file: '{workdir / 'homeserver.pid'}'\n"
        "listeners:\n"
        f"  - {{port: {tls_port}, bind_addresses: ['127.0.0.1'], type: http, tls: true,\n"
        "      resources: [{names: [federation, media], compress: false}]}\n"
        f"  - {{port: {client_port}, bind_addresses: ['127.0.0.1'], type: http, tls: false,\n"
        "      resources: [{names: [client, media], compress: false}]}\n"
        f"tls_certificate_path: '{cert}'\n"
        f"tls_private_key_path: '{key}'\n"
        "federation_verify_certificates: false\n"
        "ip_range_whitelist: ['127.0.0.0/8']\n"
        "ip_range_blacklist: []\n"
        f"database: {{name: sqlite3, args: {{database: '{workdir / 'homeserver.db'}'}}}}\n"
        "rc_federation: {window_size: 1000, sleep_limit: 1000, sleep_delay: 1, reject_limit: 10000, concurrent: 100}\n"
        + synapse_common_config(workdir, synapse_signing_key(workdir), "INFO", "interop tests")
    )
    log = open(workdir / "stdout.log", "wb")
    process = subprocess.Popen([str(SYNAPSE_PY), "-m", "synapse.app.homeserver", "-c", str(config)], cwd=workdir,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    synapse = Synapse(name, f"http://127.0.0.1:{client_port}", process, workdir, log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Synapse exited: {(workdir / 'stdout.log').read_text(errors='replace')[-2000:]}")
        if answers_versions(synapse.client_url):
            return synapse
        time.sleep(0.1)
    synapse.stop()
    raise RuntimeError("Synapse did not answer in time")
