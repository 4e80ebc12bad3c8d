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

# Addresses to listen on for the client API.
listeners:
  - bind: 127.0.0.1
    port: 8008

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
  # Failed password attempts, per account and per address.
  failed_login: {{per_second: 0.1, burst: 5}}
  registration: {{per_second: 0.2, burst: 5}}
  message: {{per_second: 5.0, burst: 50}}
  join: {{per_second: 0.5, burst: 10}}

limits:
  # Largest JSON request body, in bytes (media uploads have their own limit).
  max_request_body_bytes: 1048576

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

# argon2id cost of password hashes.
password_hashing:
  time_cost: 2
  memory_kib: 19456
  parallelism: 1
"""


def render_config(server_name: str = "localhost") -> str:
    return TEMPLATE.format(server_name=server_name)
