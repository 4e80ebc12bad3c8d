"""The commented config file written by `ranvier generate-config`.

Its values are the defaults of `ranvier.config`; a test keeps the two in step.
"""

TEMPLATE = """\
# ranvier configuration. Every option is optional: this file shows the defaults.
# docs/configuration.md describes each option.

# The name in user IDs (@alice:SERVER_NAME). It cannot be changed once users exist.
server_name: {server_name}

# The URL clients use to reach this server (served in /.well-known/matrix/client).
# Empty: derived from the first listener.
public_baseurl: ""

# Where the SQLite database, the signing key and media files live.
data_dir: ./ranvier-data

# Addresses to listen on; each serves the client API, and, with federation on, the
# server-server API. Other servers speak only HTTPS: give them a listener with tls: true
# (and the tls section below), e.g. {{bind: 0.0.0.0, port: 8448, tls: true}}.
# x_forwarded: true takes the client's address from the X-Forwarded-For header a reverse
# proxy sets; only for a listener nothing but the proxy can reach.
listeners:
  - bind: 127.0.0.1
    port: 8008
    tls: false
    x_forwarded: false

# The certificate and key (PEM) of listeners with tls: true; `ranvier generate-tls-cert`
# makes a self-signed pair, for tests only: other servers check certificates.
tls:
  certificate_path: ""
  private_key_path: ""

# Talking to other Matrix servers. docs/federation.md tells how to run ranvier federated.
federation:
  # Off: this server neither answers nor calls other servers; only local users take part.
  enabled: false
  # host[:port] where other servers should connect for this server name, served as
  # m.server at /.well-known/matrix/server (e.g. "matrix.example.org:443"). Empty: 404.
  well_known_server: ""
  # Check other servers' TLS certificates; turn off only to test on loopback.
  verify_certificates: true
  # Notary servers asked for another server's signing keys when it cannot be reached.
  trusted_key_servers: []
  # DNS servers ("IP" or "IP:port") asked for every name federation resolves: SRV records
  # of server names and addresses of hosts. Empty: the system's (/etc/resolv.conf).
  dns_servers: []

database:
  # sqlite:PATH or postgresql://USER:PASSWORD@HOST:PORT/DB. Empty: SQLite in data_dir.
  url: ""
  # Connections in the PostgreSQL pool (SQLite uses up to 4 readers and one writer).
  pool_size: 10
  # SQLite's synchronous pragma: FULL survives power loss, NORMAL survives crashes.
  sqlite_synchronous: FULL

registration:
  # closed: accounts only via `ranvier user add`; token: with a registration token
  # (`ranvier registration-token create`); open: anyone may register.
  mode: closed
  # Allow guest accounts (POST /register?kind=guest).
  guest_access: false
  # Lifetime of access tokens for clients that ask for refresh tokens.
  refreshable_access_token_lifetime_ms: 300000
  # Lifetime of tokens from POST /login/get_token.
  login_token_lifetime_ms: 120000
  min_password_length: 8

# Requests allowed per second and in a burst, per client address or account.
rate_limits:
  login: {{per_second: 0.5, burst: 10}}
  # Failed password attempts, per (account, address) and per address.
  failed_login: {{per_second: 0.1, burst: 5}}
  registration: {{per_second: 0.2, burst: 5}}
  message: {{per_second: 5.0, burst: 50}}
  join: {{per_second: 0.5, burst: 10}}

limits:
  # Largest JSON request body, in bytes (media uploads have their own limit).
  max_request_body_bytes: 1048576
  # Longest wait for a request's headers, from the connection or the previous response:
  # slow or idle connections are closed after it.
  request_header_timeout_ms: 30000
  # Longest wait for the next part of a request body (then 408).
  request_body_timeout_ms: 60000
  # Connections one client address may hold open (0: no cap). Behind a reverse proxy every
  # connection comes from the proxy: raise it above the proxy's, or set 0.
  max_connections_per_address: 1000
  # How long stopping (SIGTERM) waits for requests in flight; long polls answer at once.
  shutdown_grace_ms: 10000

logging:
  # debug, info, warning or error.
  level: info
  # One line per request (access tokens are never written).
  access_log: true

# Prometheus metrics on a listener of their own.
metrics:
  enabled: false
  bind: 127.0.0.1
  port: 9008
  # Also at /_synapse/metrics on the main listener (no authentication: keep it behind
  # your reverse proxy).
  main_listener: false

# argon2id cost of password hashes.
password_hashing:
  time_cost: 2
  memory_kib: 19456
  parallelism: 1

# The content repository. Files live in DATA_DIR/media, stored once per distinct content.
media:
  # Largest upload, in bytes (50 MiB).
  max_upload_bytes: 52428800
  # Total bytes one user may upload; 0: no quota.
  user_quota_bytes: 0
  # Media uploaded from this UTC date on is served only by the authenticated
  # /_matrix/client/v1/media endpoints; older media stays reachable through the
  # deprecated /_matrix/media/v3/download and /thumbnail. Empty: never frozen.
  unauthenticated_freeze_date: "2024-09-01"
  # How long an mxc:// URI from POST /_matrix/media/v1/create waits for its content (24 h).
  unused_upload_lifetime_ms: 86400000
  # Created but not yet uploaded media IDs one user may hold at once.
  max_pending_uploads: 10
  # Images with more pixels per frame are not thumbnailed (413 M_TOO_LARGE).
  max_image_pixels: 33554432
  url_preview:
    # Fetch pages for GET /_matrix/client/v1/media/preview_url.
    enabled: false
    # Largest page or image fetched for a preview, in bytes.
    max_fetch_bytes: 2097152
    # Non-public CIDR ranges that may still be fetched (loopback, private and
    # link-local addresses are refused unless listed here).
    allowed_networks: []

# Requests this server makes to other servers (push gateways, other Matrix servers).
outbound:
  # Non-public CIDR ranges that may still be reached (loopback, private and
  # link-local addresses are refused unless listed here).
  allowed_networks: []
  # Wait after a failed delivery, doubled at each failure in a row up to the maximum.
  initial_backoff_ms: 1000
  max_backoff_ms: 3600000
  request_timeout_ms: 30000

push:
  # http:// URL prefixes push gateways may have; every other gateway must be https.
  http_gateway_urls: []
  # How long a notification is retried before it is dropped (24 h).
  give_up_after_ms: 86400000

# Served at /.well-known/matrix/support so users know whom to ask. Nothing set: 404.
support:
  # Each contact has a role (m.role.admin, m.role.security, or a namespaced role) and a
  # matrix_id or an email_address, e.g.
  #   - {{role: m.role.admin, matrix_id: "@admin:example.org", email_address: admin@example.org}}
  contacts: []
  # A page with help for this server's users (http:// or https://).
  support_page: ""

# TURN servers for voice and video calls, handed out by GET /voip/turnServer with
# time-limited credentials from a secret shared with the TURN server (coturn:
# use-auth-secret and static-auth-secret). No uris or no secret: the endpoint answers {{}}.
turn:
  # e.g. ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]
  uris: []
  shared_secret: ""
  # How long a credential stays valid (24 h).
  credential_lifetime_ms: 86400000
"""


def render_config(server_name: str = "localhost") -> str:
    return TEMPLATE.format(server_name=server_name)
