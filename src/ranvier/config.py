"""Typed settings with defaults that work with no file at all.

The YAML file, if any, is read into these dataclasses; each value is checked against the
field's type and a wrong value raises `ConfigError` with one line naming the option.
Every option is documented, with its default, in docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ranvier.events.identifiers import is_valid_server_name, is_valid_user_id


class ConfigError(ValueError):
    """A wrong setting; the message names the option."""


@dataclass
class Listener:
    bind: str = "127.0.0.1"
    port: int = 8008
    #: Serve HTTPS with the certificate of the `tls` section (other servers only speak HTTPS).
    tls: bool = False
    #: Behind a reverse proxy: take the client's address from the last entry of the
    #: `X-Forwarded-For` header the proxy sets (rate limits per address, devices' last seen
    #: address). Only for a listener that nothing but the proxy can reach.
    x_forwarded: bool = False


@dataclass
class TlsConfig:
    """The certificate of listeners with `tls: true` (PEM files; `ranvier generate-tls-cert`
    makes a self-signed pair for tests)."""

    certificate_path: str = ""
    private_key_path: str = ""


@dataclass
class FederationConfig:
    """Talking to other Matrix servers (the server-server API)."""

    #: Off: this server neither answers nor calls other servers; only local users take part.
    enabled: bool = False
    #: `host[:port]` served as `m.server` at /.well-known/matrix/server, where other servers
    #: should connect for this server name; empty: that document is not served (404).
    well_known_server: str = ""
    #: Check the TLS certificates of other servers; turn off only to test on loopback.
    verify_certificates: bool = True
    #: Notary servers asked for another server's keys when that server cannot be reached.
    trusted_key_servers: list[str] = field(default_factory=list)
    #: DNS servers (`IP` or `IP:port`, `[IPv6]:port`) asked for every name federation
    #: resolves (SRV records of server names, addresses of hosts); empty: the system's
    #: resolver configuration (/etc/resolv.conf).
    dns_servers: list[str] = field(default_factory=list)

    @property
    def nameservers(self) -> list[tuple[str, int]]:
        """`dns_servers` as (address, port) pairs; ValueError for an entry that is not one."""
        return [_address_and_port(entry, default_port=53) for entry in self.dns_servers]


@dataclass
class DatabaseConfig:
    #: `sqlite:PATH` or `postgresql://USER@HOST:PORT/DB`; empty means SQLite in data_dir.
    url: str = ""
    pool_size: int = 10
    #: SQLite's `synchronous` pragma; FULL makes each acknowledged write survive power loss.
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"


@dataclass
class RegistrationConfig:
    #: closed: only `ranvier user add`; token: with a registration token; open: anyone.
    mode: Literal["closed", "token", "open"] = "closed"
    guest_access: bool = False
    #: Lifetime of access tokens issued with a refresh token.
    refreshable_access_token_lifetime_ms: int = 5 * 60 * 1000
    login_token_lifetime_ms: int = 2 * 60 * 1000
    min_password_length: int = 8


@dataclass
class RateLimit:
    per_second: float = 1.0
    burst: int = 10


def _limit(per_second: float, burst: int):
    return field(default_factory=lambda: RateLimit(per_second, burst))


@dataclass
class RateLimitsConfig:
    login: RateLimit = _limit(0.5, 10)
    #: Failed password attempts, counted per (account, address) and per address.
    failed_login: RateLimit = _limit(0.1, 5)
    registration: RateLimit = _limit(0.2, 5)
    message: RateLimit = _limit(5.0, 50)
    join: RateLimit = _limit(0.5, 10)


@dataclass
class LimitsConfig:
    max_request_body_bytes: int = 1024 * 1024
    #: Longest wait for a request's headers, from the connection or the previous response
    #: (so also how long an idle kept-alive connection stays open).
    request_header_timeout_ms: int = 30_000
    #: Longest wait for the next part of a request body (408 after it).
    request_body_timeout_ms: int = 60_000
    #: Connections one client address may hold open; 0: no cap.
    max_connections_per_address: int = 1000
    #: How long stopping waits for requests in flight (long polls are answered at once).
    shutdown_grace_ms: int = 10_000


@dataclass
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True


@dataclass
class MetricsConfig:
    #: Serve /metrics on a listener of its own (bind, port).
    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = 9008
    #: Also serve them at /_synapse/metrics on the main listener (unauthenticated).
    main_listener: bool = False


@dataclass
class PasswordHashingConfig:
    #: argon2id cost; the defaults follow common guidance for interactive logins.
    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


@dataclass
class UrlPreviewConfig:
    enabled: bool = False
    #: Largest page or image fetched for a preview.
    max_fetch_bytes: int = 2 * 1024 * 1024
    #: CIDR ranges that may be fetched although they are not public (loopback, private, ...).
    allowed_networks: list[str] = field(default_factory=list)


@dataclass
class MediaConfig:
    max_upload_bytes: int = 50 * 1024 * 1024
    #: Total bytes one user may upload; 0: no quota.
    user_quota_bytes: int = 0
    #: Media uploaded from this UTC date (YYYY-MM-DD or ISO datetime) on is served only by
    #: the authenticated endpoints; empty: the deprecated endpoints serve all media.
    unauthenticated_freeze_date: str = "2024-09-01"
    #: How long an mxc:// URI from /create may wait for its content.
    unused_upload_lifetime_ms: int = 24 * 60 * 60 * 1000
    #: Created but not yet uploaded media IDs one user may hold at once.
    max_pending_uploads: int = 10
    #: Images with more pixels (per frame) are not thumbnailed.
    max_image_pixels: int = 32 * 1024 * 1024
    url_preview: UrlPreviewConfig = field(default_factory=UrlPreviewConfig)

    @property
    def freeze_ts(self) -> int | None:
        """The freeze date in milliseconds since the epoch, None when never frozen."""
        if not self.unauthenticated_freeze_date:
            return None
        moment = datetime.datetime.fromisoformat(self.unauthenticated_freeze_date)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return int(moment.timestamp() * 1000)


@dataclass
class OutboundConfig:
    """Requests this server makes to other servers (push gateways, other Matrix servers)."""

    #: CIDR ranges that may be reached although they are not public (loopback, private, ...).
    allowed_networks: list[str] = field(default_factory=list)
    #: Wait after a failed delivery, doubled at each failure in a row up to the maximum.
    initial_backoff_ms: int = 1000
    max_backoff_ms: int = 60 * 60 * 1000
    request_timeout_ms: int = 30 * 1000


@dataclass
class PushConfig:
    #: http:// URL prefixes push gateways may have; every other gateway must be https.
    http_gateway_urls: list[str] = field(default_factory=list)
    #: How long a notification is retried before it is dropped.
    give_up_after_ms: int = 24 * 60 * 60 * 1000


@dataclass
class SupportContact:
    #: m.role.admin, m.role.security, or a namespaced role of your own.
    role: str = "m.role.admin"
    matrix_id: str = ""
    email_address: str = ""


@dataclass
class SupportConfig:
    """What GET /.well-known/matrix/support tells; nothing configured: 404."""

    contacts: list[SupportContact] = field(default_factory=list)
    support_page: str = ""


@dataclass
class TurnConfig:
    """TURN REST credentials for GET /voip/turnServer (coturn's `use-auth-secret`)."""

    #: turn: or turns: URIs handed to clients; none: the endpoint answers `{}`.
    uris: list[str] = field(default_factory=list)
    #: coturn's `static-auth-secret`; empty: the endpoint answers `{}`.
    shared_secret: str = ""
    #: How long a credential stays valid.
    credential_lifetime_ms: int = 24 * 60 * 60 * 1000


@dataclass
class AppServicesConfig:
    #: Registration files (YAML) of the application services (bridges, bots) this server
    #: talks to, as Synapse's `app_service_config_files`.
    registration_files: list[str] = field(default_factory=list)


@dataclass
class Config:
    server_name: str = "localhost"
    #: The URL clients use to reach this server; derived from the first listener when empty.
    public_baseurl: str = ""
    data_dir: str = "./ranvier-data"
    listeners: list[Listener] = field(default_factory=lambda: [Listener()])
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    password_hashing: PasswordHashingConfig = field(default_factory=PasswordHashingConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    push: PushConfig = field(default_factory=PushConfig)
    support: SupportConfig = field(default_factory=SupportConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    app_services: AppServicesConfig = field(default_factory=AppServicesConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Config":
        config = _build(cls, data or {}, "")
        config.validate()
        return config

    def validate(self) -> None:
        if not is_valid_server_name(self.server_name):
            raise ConfigError(f"server_name: {self.server_name!r} is not a valid server name")
        if not self.listeners:
            raise ConfigError("listeners: at least one listener is needed")
        for index, listener in enumerate(self.listeners):
            if not 0 <= listener.port < 65536:
                raise ConfigError(f"listeners[{index}].port: must be between 0 and 65535")
        url = self.database.url
        if url and not url.startswith(("sqlite:", "postgresql://", "postgres://")):
            raise ConfigError("database.url: must be sqlite:PATH or postgresql://USER@HOST:PORT/DB")
        if self.database.pool_size < 1:
            raise ConfigError("database.pool_size: must be at least 1")
        if self.limits.max_request_body_bytes < 1024:
            raise ConfigError("limits.max_request_body_bytes: must be at least 1024")
        for name in ("request_header_timeout_ms", "request_body_timeout_ms"):
            if getattr(self.limits, name) < 100:
                raise ConfigError(f"limits.{name}: must be at least 100")
        for name in ("max_connections_per_address", "shutdown_grace_ms"):
            if getattr(self.limits, name) < 0:
                raise ConfigError(f"limits.{name}: must not be negative")
        for name in ("login", "failed_login", "registration", "message", "join"):
            limit: RateLimit = getattr(self.rate_limits, name)
            if limit.per_second <= 0 or limit.burst < 1:
                raise ConfigError(f"rate_limits.{name}: per_second must be > 0 and burst >= 1")
        if self.public_baseurl and not self.public_baseurl.startswith(("http://", "https://")):
            raise ConfigError("public_baseurl: must start with http:// or https://")
        self._validate_media()
        self._validate_outbound()
        self._validate_support_and_turn()
        self._validate_federation()

    def _validate_federation(self) -> None:
        if any(listener.tls for listener in self.listeners) and not (
                self.tls.certificate_path and self.tls.private_key_path):
            raise ConfigError("tls: a listener with tls: true needs tls.certificate_path and tls.private_key_path")
        well_known = self.federation.well_known_server
        if well_known and not is_valid_server_name(well_known):
            raise ConfigError(f"federation.well_known_server: {well_known!r} is not host[:port]")
        for index, notary in enumerate(self.federation.trusted_key_servers):
            if not is_valid_server_name(notary):
                raise ConfigError(f"federation.trusted_key_servers[{index}]: {notary!r} is not a server name")
        for index, entry in enumerate(self.federation.dns_servers):
            try:
                _address_and_port(entry, default_port=53)
            except ValueError:
                raise ConfigError(f"federation.dns_servers[{index}]: {entry!r} is not IP or IP:port") from None

    def _validate_outbound(self) -> None:
        outbound = self.outbound
        _check_networks(outbound.allowed_networks, "outbound.allowed_networks")
        for name in ("initial_backoff_ms", "max_backoff_ms", "request_timeout_ms"):
            if getattr(outbound, name) < 1:
                raise ConfigError(f"outbound.{name}: must be at least 1")
        if outbound.max_backoff_ms < outbound.initial_backoff_ms:
            raise ConfigError("outbound.max_backoff_ms: must not be below outbound.initial_backoff_ms")
        if self.push.give_up_after_ms < 1:
            raise ConfigError("push.give_up_after_ms: must be at least 1")
        for index, prefix in enumerate(self.push.http_gateway_urls):
            if not prefix.startswith("http://"):
                raise ConfigError(f"push.http_gateway_urls[{index}]: must start with http://")

    def _validate_support_and_turn(self) -> None:
        for index, contact in enumerate(self.support.contacts):
            option = f"support.contacts[{index}]"
            if not contact.role:
                raise ConfigError(f"{option}.role: must not be empty")
            if not contact.matrix_id and not contact.email_address:
                raise ConfigError(f"{option}: needs a matrix_id or an email_address")
            if contact.matrix_id and not is_valid_user_id(contact.matrix_id):
                raise ConfigError(f"{option}.matrix_id: {contact.matrix_id!r} is not a user ID")
        if self.support.support_page and not self.support.support_page.startswith(("http://", "https://")):
            raise ConfigError("support.support_page: must start with http:// or https://")
        for index, uri in enumerate(self.turn.uris):
            if not uri.startswith(("turn:", "turns:")):
                raise ConfigError(f"turn.uris[{index}]: must start with turn: or turns:")
        if self.turn.credential_lifetime_ms < 1000:
            raise ConfigError("turn.credential_lifetime_ms: must be at least 1000")

    def _validate_media(self) -> None:
        media = self.media
        if media.max_upload_bytes < 1:
            raise ConfigError("media.max_upload_bytes: must be at least 1")
        for name in ("user_quota_bytes", "unused_upload_lifetime_ms", "max_pending_uploads"):
            if getattr(media, name) < 0:
                raise ConfigError(f"media.{name}: must not be negative")
        if media.max_image_pixels < 1:
            raise ConfigError("media.max_image_pixels: must be at least 1")
        try:
            media.freeze_ts
        except ValueError:
            raise ConfigError("media.unauthenticated_freeze_date: must be a date like 2024-09-01") from None
        if media.url_preview.max_fetch_bytes < 1024:
            raise ConfigError("media.url_preview.max_fetch_bytes: must be at least 1024")
        _check_networks(media.url_preview.allowed_networks, "media.url_preview.allowed_networks")

    @property
    def database_url(self) -> str:
        return self.database.url or "sqlite:" + os.path.join(self.data_dir, "homeserver.db")

    @property
    def signing_key_path(self) -> str:
        return os.path.join(self.data_dir, "signing.key")

    @property
    def media_dir(self) -> str:
        return os.path.join(self.data_dir, "media")

    @property
    def base_url(self) -> str:
        if self.public_baseurl:
            return self.public_baseurl.rstrip("/")
        listener = self.listeners[0]
        host = "127.0.0.1" if listener.bind in ("0.0.0.0", "::", "") else listener.bind
        return f"http://{host}:{listener.port}"


def _address_and_port(text: str, *, default_port: int) -> tuple[str, int]:
    """`IP`, `IPv4:port` or `[IPv6]:port` as (address, port); ValueError for anything else."""
    address, port = text, str(default_port)
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(text)
        if rest:
            port = rest[1:]
    elif text.count(":") == 1:
        address, port = text.split(":")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(text)
    return str(ipaddress.ip_address(address)), int(port)


def _check_networks(networks: list[str], option: str) -> None:
    for index, network in enumerate(networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"{option}[{index}]: {network!r} is not a CIDR range") from None


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read the YAML file (if any), apply command-line overrides, validate."""
    data: dict[str, Any] = {}
    if path:
        import yaml

        try:
            with open(path, encoding="utf-8") as handle:
                loaded = yaml.safe_load(handle)
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc.__class__.__name__})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: must be a mapping of options")
        data = loaded or {}
    for dotted, value in (overrides or {}).items():
        target = data
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return Config.from_dict(data)


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, checking each value against its field type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown option")
    values = {}
    for name in names:
        if name in data:
            values[name] = _convert(hints[name], data[name], prefix + name)
    return cls(**values)


def _convert(hint: Any, value: Any, option: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, option + ".")
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{option}: must be one of {', '.join(map(str, allowed))}, not {value!r}")
        return value
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{option}: must be a list")
        return [_convert(item_type, item, f"{option}[{i}]") for i, item in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{option}: must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{option}: must be a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{option}: must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{option}: must be a string")
        return value
    raise ConfigError(f"{option}: unsupported option type")
