"""Starting the servers under test, each fresh, and the throwaway PostgreSQL cluster.

Every process started here is stopped here, by its PID. Everything listens on 127.0.0.1.
"""

import compileall
import glob
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from measure import process_tree

BENCH = Path(__file__).resolve().parent
SYNAPSE_PY = BENCH / ".venv-synapse" / "bin" / "python"
START_SECONDS = 120
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_synapse():
    """Installs Synapse in its own virtual environment, once: its pins must not touch ranvier's.
    Returns its version."""
    if not SYNAPSE_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SYNAPSE_PY.parent.parent)], check=True)
    probe = [str(SYNAPSE_PY), "-c", "import psycopg2, synapse, importlib.metadata as m; "
             "print(m.version('matrix-synapse'))"]
    found = subprocess.run(probe, capture_output=True, text=True)
    if found.returncode != 0:
        print("installing Synapse into bench/.venv-synapse (a few minutes, once)", file=sys.stderr)
        subprocess.run([str(SYNAPSE_PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                       check=True)
        subprocess.run([str(SYNAPSE_PY), "-m", "pip", "install", "--quiet",
                        "matrix-synapse[postgres]"], check=True)
        found = subprocess.run(probe, capture_output=True, text=True, check=True)
    return found.stdout.strip()


def compile_ranvier():
    """Writes ranvier's bytecode, as pip does for an installed Synapse: an editable install
    has none until a first run writes it (never, where PYTHONDONTWRITEBYTECODE is set), and
    start-up would otherwise time the compiler."""
    import ranvier

    compileall.compile_dir(Path(ranvier.__file__).parent, quiet=1)


class StartFailed(Exception):
    """The server exited, or never answered /versions, within START_SECONDS."""


class Server:
    """A server process we started: how long it took to answer, and which PIDs are its own."""

    def __init__(self, argv, workdir, port, extra_pids=list):
        self.argv, self.workdir = argv, Path(workdir)
        self.url = f"http://127.0.0.1:{port}"
        self.extra_pids = extra_pids
        self.log = self.workdir / "stdout.log"
        self.proc = None
        #: () -> (bytes of its notification tables with their indexes, bytes of its whole
        #: database); set by run.py for the servers that have a database.
        self.push_table_bytes = None

    def start(self):
        """Starts the process and returns seconds until the first 200 on /versions."""
        with open(self.log, "wb") as log:
            begin = time.perf_counter()
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while time.perf_counter() - begin < START_SECONDS:
            if self.proc.poll() is not None:
                raise StartFailed(f"exited with code {self.proc.returncode}: {self.log_tail()}")
            if answers_versions(self.url):
                return time.perf_counter() - begin
            time.sleep(0.005)
        raise StartFailed(f"no answer on /versions after {START_SECONDS} s: {self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def own_pids(self):
        """The server's own processes, without its PostgreSQL cluster."""
        return process_tree(self.proc.pid) if self.alive() else []

    def pids(self):
        """The server's processes, plus its PostgreSQL cluster's when it has one."""
        return self.own_pids() + self.extra_pids()

    def log_tail(self, lines=3):
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " / ".join(line.strip()[:200] for line in text[-lines:]) or "(no output)"

    def restart(self):
        """Stops the process and starts it again on the same data: what it had in memory is
        gone, while the database files stay in the operating system's cache (a cold
        process, not a cold disk). Returns seconds until it answers again."""
        self.stop()
        return self.start()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ranvier(workdir, port, database):
    """How ranvier is launched: the one place to adjust when its command line changes."""
    config = Path(workdir) / "ranvier.yaml"
    unlimited = "{per_second: 100000, burst: 100000}"
    config.write_text(
        "server_name: localhost\n"
        "rate_limits:\n"
        + "".join(f"  {kind}: {unlimited}\n"
                  for kind in ("login", "failed_login", "registration", "message", "join"))
        + "logging: {level: warning}\n"
        # the fan-out's long-pollers all come from 127.0.0.1, a thousand and more at once
        + "limits: {max_connections_per_address: 0}\n"
    )
    executable = Path(sys.executable).with_name("ranvier")
    command = str(executable) if executable.exists() else shutil.which("ranvier") or "ranvier"
    url = database["url"] if database else f"sqlite:{Path(workdir) / 'ranvier.db'}"
    return [command, "serve", "--config", str(config), "--data-dir", str(workdir),
            "--port", str(port), "--bind", "127.0.0.1", "--database", url, "--open-registration"]


# Every rate limit Synapse has, raised far beyond what the load generator can reach.
SYNAPSE_RATE_LIMITS = [
    "rc_message", "rc_registration", "rc_registration_token_validity", "rc_login.address",
    "rc_login.account", "rc_login.failed_attempts", "rc_admin_redaction", "rc_joins.local",
    "rc_joins.remote", "rc_joins_per_room", "rc_key_requests", "rc_3pid_validation",
    "rc_invites.per_room", "rc_invites.per_user", "rc_invites.per_issuer",
    "rc_third_party_invite", "rc_media_create", "rc_presence.per_user",
    "rc_delayed_event_mgmt", "rc_room_creation", "rc_reports", "rc_user_directory",
    "rc_profile",
]


def synapse_rate_limits():
    """The nested rc_* settings as YAML lines."""
    tree = {}
    for key in SYNAPSE_RATE_LIMITS:
        *parents, leaf = key.split(".")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = None
    limit = "{per_second: 100000, burst_count: 100000}"

    def lines(node, indent):
        for name, child in node.items():
            if child is None:
                yield f"{indent}{name}: {limit}"
            else:
                yield f"{indent}{name}:"
                yield from lines(child, indent + "  ")

    return "\n".join(lines(tree, ""))


def answers_versions(base_url):
    """Whether a server at base_url answers 200 on /versions yet (not listening: False)."""
    try:
        with DIRECT.open(base_url + "/_matrix/client/versions", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def synapse_signing_key(workdir):
    """One ed25519 key for every Synapse run, made with Synapse's own library."""
    path = Path(workdir) / "synapse.signing.key"
    code = ("import sys; from signedjson.key import generate_signing_key, write_signing_keys; "
            "write_signing_keys(open(sys.argv[1], 'w'), [generate_signing_key('a_bench')])")
    subprocess.run([str(SYNAPSE_PY), "-c", code, str(path)], check=True)
    return path


def synapse(workdir, port, database, signing_key):
    """Synapse with its config written out in full: client API only, loopback, no federation,
    no stats, open registration, every rate limit raised."""
    workdir = Path(workdir)
    if database:
        db = database
        store = (f"  name: psycopg2\n  args: {{user: {db['user']}, host: {db['host']}, "
                 f"port: {db['port']}, database: {db['name']}, cp_min: 5, cp_max: 10}}\n")
    else:
        store = f"  name: sqlite3\n  args: {{database: '{workdir / 'homeserver.db'}'}}\n"
    config = workdir / "homeserver.yaml"
    config.write_text(
        "server_name: localhost\n"
        f"pid_file: '{workdir / 'homeserver.pid'}'\n"
        "listeners:\n"
        f"  - {{port: {port}, bind_addresses: ['127.0.0.1'], type: http, tls: false,\n"
        "      x_forwarded: false, resources: [{names: [client], compress: false}]}\n"
        f"database:\n{store}"
        + synapse_common_config(workdir, signing_key, "WARNING", os.urandom(16).hex())
    )
    return [str(SYNAPSE_PY), "-m", "synapse.app.homeserver", "-c", str(config)]


def synapse_common_config(workdir, signing_key, log_level, secret):
    """The part of a Synapse config the benchmarks and the interop tests share: its files in
    workdir (the log's config written there), open registration with cheap password hashes,
    no key servers or stats, every rate limit raised."""
    workdir = Path(workdir)
    (workdir / "log.yaml").write_text(
        "version: 1\n"
        "formatters: {plain: {format: '%(asctime)s %(name)s %(levelname)s %(message)s'}}\n"
        f"handlers: {{file: {{class: logging.FileHandler, formatter: plain, "
        f"filename: '{workdir / 'homeserver.log'}'}}}}\n"
        f"root: {{level: {log_level}, handlers: [file]}}\n"
        "disable_existing_loggers: false\n"
    )
    return (
        f"log_config: '{workdir / 'log.yaml'}'\n"
        f"media_store_path: '{workdir / 'media'}'\n"
        f"signing_key_path: '{signing_key}'\n"
        "report_stats: false\n"
        "suppress_key_server_warning: true\n"
        "trusted_key_servers: []\n"
        "enable_registration: true\n"
        "enable_registration_without_verification: true\n"
        # Registration is setup, not a measured figure: cheap hashes keep runs short.
        "bcrypt_rounds: 4\n"
        f"macaroon_secret_key: '{secret}'\n"
        f"form_secret: '{secret}'\n"
        + synapse_rate_limits() + "\n"
    )


#: Where each server keeps what push notifications and their counts need.
PUSH_TABLES = {
    "ranvier": ("room_notifications", "member_notifications", "push_action_sets", "push_read_positions"),
    "synapse": ("event_push_actions", "event_push_actions_staging", "event_push_summary"),
}
#: Each server's SQLite file, in its data folder.
SQLITE_FILES = {"ranvier": "ranvier.db", "synapse": "homeserver.db"}


def sqlite_table_bytes(path, tables):
    """(bytes of `tables` and their indexes, bytes of the whole database) of a SQLite file
    another process writes, from its `dbstat` table (what its write-ahead log holds included)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
        pages = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    return (sum(size for name, size in pages if owners.get(name, name) in tables),
            sum(size for _, size in pages))


def ceiling(workdir, port):
    return [sys.executable, str(BENCH / "ceiling.py"), "--port", str(port)]


class Postgres:
    """A throwaway cluster in the run's temporary folder. initdb and postgres refuse root,
    so as root it runs as the 'postgres' user. Restarted for every server run so that each
    starts with cold shared buffers and no leftover backends."""

    def __init__(self, workdir):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        bindir = os.environ.get("BENCH_PG_BIN") or (str(Path(found[-1]).parent) if found else None)
        if bindir is None and shutil.which("initdb"):
            bindir = str(Path(shutil.which("initdb")).parent)
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries: install postgresql or set BENCH_PG_BIN")
        self.bin = Path(bindir)
        self.root = Path(workdir) / "postgresql"
        self.data = self.root / "data"
        self.root.mkdir()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.prefix = []
        if os.getuid() == 0:
            self.user = "postgres"
            owner = pwd.getpwnam(self.user)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", self.user, "--"]
        self.port = None
        self.databases = 0
        self.run("initdb", "-D", self.data, "--auth=trust", "-U", self.user, "--encoding=UTF8",
                 "--locale=C")

    def run(self, tool, *args):
        argv = self.prefix + [str(self.bin / tool)] + [str(a) for a in args]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise StartFailed(f"PostgreSQL {tool} failed: {done.stderr.strip()[-300:]}")

    def version(self):
        out = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True,
                             text=True)
        return out.stdout.strip()

    def start(self):
        """Starts the cluster on a free port and returns a fresh database in it."""
        self.port = free_port()
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.run("pg_ctl", "start", "-w", "-D", self.data, "-l", self.root / "log", "-o", options)
        self.databases += 1
        name = f"bench{self.databases}"
        self.run("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", self.user,
                 "--encoding=UTF8", "--lc-collate=C", "--lc-ctype=C", "--template=template0", name)
        return {"user": self.user, "host": "127.0.0.1", "port": self.port, "name": name,
                "url": f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"}

    def table_bytes(self, database, tables):
        """(bytes of `tables` with their indexes and TOAST, bytes of the whole database)."""
        names = ", ".join(f"'{table}'" for table in tables)
        sql = (f"SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0), pg_database_size(current_database()) "
               f"FROM pg_class c WHERE c.relkind = 'r' AND c.relname IN ({names})")
        argv = self.prefix + [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                              "-d", database, "-At", "-F", " ", "-c", sql]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root, check=True)
        tables_bytes, total = done.stdout.split()
        return int(tables_bytes), int(total)

    def pids(self):
        """The postmaster and all its backends and helpers."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return []
        return process_tree(postmaster)

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", self.data)
