"""`ranvier serve | generate-config | user ... | registration-token ... | backup | restore |
migrate-database`.

The admin commands open the database directly, so they work whether the server is
running or not; `backup` too; `restore` and `migrate-database` need it stopped.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import os
import re
import signal
import sys
from typing import Any

import click

from ranvier import __version__, memory
from ranvier.config import Config, ConfigError, load_config

_DURATION = re.compile(r"(\d+)([smhdw])")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _database_options(command):
    """The options every command needs to find the database."""
    command = click.option("--database", help="sqlite:PATH or postgresql://USER@HOST:PORT/DB")(command)
    command = click.option("--data-dir", type=click.Path(file_okay=False), help="Where the database, signing key and media live (default ./ranvier-data)")(command)
    command = click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file")(command)
    return command


def _load(config_path: str | None, **flags: Any) -> Config:
    """The config file (if any) with the command-line flags on top."""
    overrides = {
        "data_dir": flags.get("data_dir"),
        "database.url": flags.get("database"),
        "server_name": flags.get("server_name"),
        "registration.mode": "open" if flags.get("open_registration") else None,
    }
    try:
        config = load_config(config_path, {k: v for k, v in overrides.items() if v is not None})
        if flags.get("bind"):
            config.listeners[0].bind = flags["bind"]
        if flags.get("port") is not None:
            config.listeners[0].port = flags["port"]
        config.validate()
        return config
    except ConfigError as exc:
        raise click.ClickException(f"config error: {exc}") from None


@click.group()
@click.version_option(__version__, prog_name="ranvier")
def main() -> None:
    """ranvier, a Matrix homeserver."""


#: The collector's thresholds while serving (the default is 700, 10, 10).
_GC_THRESHOLDS = (50_000, 20, 10)


@main.command()
@_database_options
@click.option("--server-name", help="The server name in user IDs (default localhost)")
@click.option("--bind", help="Address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="Port to listen on (default 8008)")
@click.option("--open-registration", is_flag=True, help="Let anyone register (m.login.dummy)")
def serve(config_path, data_dir, database, server_name, bind, port, open_registration) -> None:
    """Run the homeserver."""
    # Start-up builds objects that live as long as the process: collecting while the
    # modules load finds little to free. The collector resumes once they are frozen.
    gc.disable()
    memory.limit_arenas()
    os.umask(0o077)  # what the server writes in its data directory is its owner's alone
    config = _load(config_path, data_dir=data_dir, database=database, server_name=server_name, bind=bind, port=port,
                   open_registration=open_registration)
    logging.basicConfig(level=config.logging.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        uvloop = None
    runner = uvloop.run if uvloop is not None else asyncio.run
    try:
        runner(_serve(config))
    except Exception as exc:  # a start-up failure gets one clear line, not a traceback
        raise click.ClickException(f"cannot start: {exc}") from None


async def _serve(config: Config) -> None:
    from ranvier.server import Homeserver

    hs = Homeserver(config)
    await hs.start()
    _print_banner(hs)
    # Modules, routes and start-up state live as long as the process: moving them out of
    # the collector's reach makes each full collection (a pause for every request) shorter.
    gc.freeze()
    # A large answer (an initial sync of a thousand rooms makes a few hundred thousand
    # objects) would trigger collections of the whole heap, the caches with it, several
    # times over at the default thresholds; these collect the young objects in bigger
    # batches and the whole heap about a hundred times less often.
    gc.set_threshold(*_GC_THRESHOLDS)
    gc.enable()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await hs.stop()


def _print_banner(hs) -> None:
    config = hs.config
    data_dir = os.path.abspath(config.data_dir)
    lines = [
        f"ranvier {__version__} serving {config.server_name} at {hs.base_url}",
        f"  data directory: {data_dir}",
        f"  database:       {_redact_url(config.database_url)}",
        f"  signing key:    {os.path.abspath(config.signing_key_path)}" + (" (new)" if hs.signing_key_created else ""),
        f"  registration:   {config.registration.mode}",
        f"  create a user:  ranvier user add NAME --admin --data-dir {data_dir}",
    ]
    if config.registration.mode == "open":
        lines.append("WARNING: open registration is on: anyone who can reach this server can create an account")
    click.echo("\n".join(lines), err=True)


def _redact_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _run_with_users(config: Config, work) -> Any:
    """Open the database, run `work(users)` and close it again."""

    async def run():
        from ranvier.private_files import prepare_data_dir
        from ranvier.server import open_storage
        from ranvier.users.service import UserService

        prepare_data_dir(config)
        db = await open_storage(config)
        try:
            return await work(UserService(db, config))
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise click.ClickException(message) from None


@main.command("generate-config")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="ranvier.yaml", show_default=True)
@click.option("--server-name", default="localhost", show_default=True)
def generate_config(output: str, server_name: str) -> None:
    """Write a commented config file with every option and its default."""
    from ranvier.config_template import render_config

    if os.path.exists(output):
        raise click.ClickException(f"{output} exists already; remove it or choose another --output")
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(render_config(server_name))
    click.echo(f"wrote {output}; start with: ranvier serve --config {output}")


@main.command("generate-tls-cert")
@click.option("--name", "names", multiple=True, required=True,
              help="Host name or IP address the certificate is for (repeat for several)")
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False), default="tls.crt", show_default=True)
@click.option("--key", "key_path", type=click.Path(dir_okay=False), default="tls.key", show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
def generate_tls_cert(names, cert_path: str, key_path: str, days: int) -> None:
    """Write a self-signed TLS certificate and key for a tls: true listener. Other servers
    accept it only with certificate checks off: for tests and trials, not production."""
    from ranvier.federation.certificates import write_self_signed_pair

    for path in (cert_path, key_path):
        if os.path.exists(path):
            raise click.ClickException(f"{path} exists already; remove it or choose another path")
    write_self_signed_pair(cert_path, key_path, list(names), days)
    click.echo(f"wrote {cert_path} and {key_path}; set tls.certificate_path and tls.private_key_path to them")


@main.group()
def user() -> None:
    """Manage accounts."""


@user.command("add")
@click.argument("name")
@_database_options
@click.option("--admin", is_flag=True, help="Make the account a server admin")
@click.option("--password-file", type=click.File("r"), help="Read the password from this file (- for stdin)")
def user_add(name, config_path, data_dir, database, admin, password_file) -> None:
    """Create an account NAME (a localpart such as alice)."""
    config = _load(config_path, data_dir=data_dir, database=database)
    if password_file is not None:
        password = password_file.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.ClickException("no terminal to ask for the password: use --password-file FILE (or - for stdin)")
    localpart = name[1:].split(":", 1)[0] if name.startswith("@") else name

    async def work(users):
        result = await users.register(localpart.lower(), password, admin=admin, inhibit_login=True)
        return result["user_id"]

    click.echo(f"created {_run_with_users(config, work)}" + (" (admin)" if admin else ""))


@user.command("list")
@_database_options
def user_list(config_path, data_dir, database) -> None:
    """List accounts."""
    config = _load(config_path, data_dir=data_dir, database=database)
    for account in _run_with_users(config, lambda users: users.store.list_accounts()):
        flags = [name for name, on in (("admin", account.is_admin), ("guest", account.is_guest),
                                       ("deactivated", account.deactivated), ("locked", account.locked),
                                       ("suspended", account.suspended)) if on]
        click.echo(account.user_id + (f"  ({', '.join(flags)})" if flags else ""))


@user.command("deactivate")
@click.argument("name")
@_database_options
def user_deactivate(name, config_path, data_dir, database) -> None:
    """Deactivate account NAME for good: its tokens stop working, it cannot log in, and
    the server makes it leave its rooms (within a minute, or at its next start)."""
    config = _load(config_path, data_dir=data_dir, database=database)

    async def work(users):
        user_id = users.user_id_from_login(name)
        if not await users.deactivate(user_id):
            raise click.ClickException(f"no such user: {user_id}")
        return user_id

    click.echo(f"deactivated {_run_with_users(config, work)}")


def _moderation_command(name: str, setter: str, on: bool, done: str, help_text: str):
    """`ranvier user lock|unlock|suspend|unsuspend NAME`: the admin API's moderation, from
    the command line (a running server applies it within seconds)."""

    @user.command(name, help=help_text)
    @click.argument("name")
    @_database_options
    def command(name, config_path, data_dir, database) -> None:
        config = _load(config_path, data_dir=data_dir, database=database)

        async def work(users):
            user_id = users.user_id_from_login(name)
            if not await getattr(users, setter)(user_id, on):
                raise click.ClickException(f"no such active user: {user_id}")
            return user_id

        click.echo(f"{done} {_run_with_users(config, work)}")

    return command


_moderation_command("lock", "set_locked", True, "locked",
                    "Lock account NAME: every request but logging out gets M_USER_LOCKED; its sessions are kept.")
_moderation_command("unlock", "set_locked", False, "unlocked", "Lift the lock of account NAME.")
_moderation_command("suspend", "set_suspended", True, "suspended",
                    "Suspend account NAME: it can read and leave, but not join, invite, send or change its profile.")
_moderation_command("unsuspend", "set_suspended", False, "unsuspended", "Lift the suspension of account NAME.")


@main.group("registration-token")
def registration_token() -> None:
    """Manage registration tokens (used when registration.mode is token or open)."""


@registration_token.command("create")
@_database_options
@click.option("--uses", type=click.IntRange(min=1), help="How many registrations it allows (default unlimited)")
@click.option("--expires", help="When it expires: a duration such as 7d, 12h, 30m, or an ISO date/time")
@click.option("--token", help="The token itself (default: random)")
def registration_token_create(config_path, data_dir, database, uses, expires, token) -> None:
    """Create a registration token."""
    config = _load(config_path, data_dir=data_dir, database=database)
    expiry_ts = parse_expiry(expires) if expires else None

    async def work(users):
        return await users.create_registration_token(token, uses, expiry_ts)

    created = _run_with_users(config, work)
    click.echo(created)
    if config.registration.mode == "closed":
        click.echo("note: registration.mode is closed; set it to token for this token to be usable", err=True)


@registration_token.command("list")
@_database_options
def registration_token_list(config_path, data_dir, database) -> None:
    """List the registration tokens: uses so far and allowed, and expiry."""
    config = _load(config_path, data_dir=data_dir, database=database)
    tokens = _run_with_users(config, lambda users: users.store.list_registration_tokens())
    now_ms = datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000
    for token, uses_allowed, completed, expiry_ts in tokens:
        uses = f"used {completed} of {uses_allowed if uses_allowed is not None else 'unlimited'}"
        if expiry_ts is None:
            expiry = "never expires"
        else:
            moment = datetime.datetime.fromtimestamp(expiry_ts / 1000, datetime.timezone.utc)
            expiry = ("expired " if expiry_ts <= now_ms else "expires ") + moment.isoformat(timespec="minutes")
        spent = "  (used up)" if uses_allowed is not None and completed >= uses_allowed else ""
        click.echo(f"{token}  {uses}, {expiry}{spent}")


def parse_expiry(text: str, now: datetime.datetime | None = None) -> int:
    """A duration (7d) or an ISO date/time, as a timestamp in milliseconds."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    match = _DURATION.fullmatch(text.strip())
    if match:
        moment = now + datetime.timedelta(seconds=int(match.group(1)) * _DURATION_SECONDS[match.group(2)])
    else:
        try:
            moment = datetime.datetime.fromisoformat(text.strip())
        except ValueError:
            raise click.BadParameter("use a duration such as 7d or an ISO date such as 2027-01-31", param_hint="--expires") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


@main.command("backup")
@click.argument("directory", type=click.Path(file_okay=False))
@_database_options
def backup_command(directory, config_path, data_dir, database) -> None:
    """Back up the database, media and signing key into DIRECTORY (new or empty), while the
    server runs or not: SQLite's online backup API, or pg_dump for PostgreSQL."""
    from ranvier.storage.backup import BackupError, backup

    config = _load(config_path, data_dir=data_dir, database=database)
    try:
        report = backup(config, directory, click.echo)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup complete in {directory} (database by {report.database_method})")


@main.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@_database_options
def restore_command(directory, config_path, data_dir, database) -> None:
    """Put a backup made by `ranvier backup` back in place. The server must be stopped:
    the database is replaced by the backup's."""
    from ranvier.storage.backup import BackupError, read_manifest, restore
    from ranvier.storage.datadir import DataDirInUse, DataDirLock

    config = _load(config_path, data_dir=data_dir, database=database)
    lock = DataDirLock(config.data_dir)
    try:
        read_manifest(directory)
        lock.acquire("restoring")
        manifest = restore(config, directory, click.echo)
    except (BackupError, DataDirInUse) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        lock.release()
    click.echo(f"restored the backup of {manifest['created']}; start the server")


@main.command("migrate-database")
@click.option("--to", "target", required=True, help="The new, empty PostgreSQL database: postgresql://USER@HOST:PORT/DB")
@_database_options
def migrate_database(target, config_path, data_dir, database) -> None:
    """Copy the server's SQLite database into an empty PostgreSQL database and check that
    every table has the same number of rows. Stop the server first; afterwards set
    database.url to the new database."""
    from ranvier.server import SCHEMAS
    from ranvier.storage.datadir import DataDirInUse, DataDirLock
    from ranvier.storage.transfer import TransferError, migrate

    config = _load(config_path, data_dir=data_dir, database=database)
    if not config.database_url.startswith("sqlite:"):
        raise click.ClickException("the configured database is not SQLite: there is nothing to migrate")
    if not target.startswith(("postgresql://", "postgres://")):
        raise click.ClickException("--to must be a postgresql:// URL")
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire("migrating its database")
        with click.progressbar(length=1, label="copying rows", show_pos=True, file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done)

            counts = asyncio.run(migrate(config.database_url[len("sqlite:"):], target, SCHEMAS, progress))
    except (TransferError, DataDirInUse, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        lock.release()
    for count in counts:
        click.echo(f"{count.table:32} {count.source:>10} rows, {count.target:>10} in PostgreSQL")
    click.echo(f"every table has the same number of rows ({sum(c.source for c in counts)} in all); "
               f"now set database.url to {_redact_url(target)} and start the server")
