"""Config: defaults with no file, the generated template, one clear line per wrong value."""

from __future__ import annotations

import pytest
import yaml

from ranvier.config import Config, ConfigError, load_config
from ranvier.config_template import render_config


def test_defaults_need_no_file():
    config = load_config(None)
    assert config.server_name == "localhost"
    assert config.listeners[0].bind == "127.0.0.1" and config.listeners[0].port == 8008
    assert config.registration.mode == "closed"
    assert config.database_url.startswith("sqlite:") and config.database_url.endswith("homeserver.db")
    assert config.base_url == "http://127.0.0.1:8008"


def test_generated_template_holds_exactly_the_defaults():
    assert Config.from_dict(yaml.safe_load(render_config())) == Config()


def test_overrides_apply_on_top_of_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server_name: example.org\nregistration: {mode: token}\n")
    config = load_config(str(path), {"registration.mode": "open", "database.url": "postgresql://u@h/db"})
    assert config.server_name == "example.org"
    assert config.registration.mode == "open"
    assert config.database_url == "postgresql://u@h/db"


@pytest.mark.parametrize("data, message", [
    ({"server_name": "bad name"}, "server_name"),
    ({"nonsense": 1}, "nonsense: unknown option"),
    ({"registration": {"mode": "maybe"}}, "registration.mode: must be one of closed, token, open"),
    ({"registration": {"guest_access": "yes"}}, "registration.guest_access: must be true or false"),
    ({"rate_limits": {"message": {"burst": 0}}}, "rate_limits.message"),
    ({"rate_limits": {"join": {"per_second": "x"}}}, "rate_limits.join.per_second: must be a number"),
    ({"listeners": "everywhere"}, "listeners: must be a list"),
    ({"listeners": [{"port": True}]}, "listeners[0].port: must be a whole number"),
    ({"limits": {"max_request_body_bytes": 10}}, "limits.max_request_body_bytes"),
    ({"database": {"url": "oracle://"}}, "database.url"),
    ({"public_baseurl": "matrix.example.org"}, "public_baseurl"),
    ({"logging": {"level": "loud"}}, "logging.level"),
    ({"support": {"contacts": [{"role": "m.role.admin"}]}}, "support.contacts[0]: needs a matrix_id or an email_address"),
    ({"support": {"contacts": [{"matrix_id": "admin"}]}}, "support.contacts[0].matrix_id"),
    ({"support": {"contacts": [{"role": "", "email_address": "a@example.org"}]}}, "support.contacts[0].role"),
    ({"support": {"support_page": "example.org/help"}}, "support.support_page"),
    ({"turn": {"uris": ["stun:example.org"]}}, "turn.uris[0]: must start with turn: or turns:"),
    ({"turn": {"credential_lifetime_ms": 0}}, "turn.credential_lifetime_ms"),
    ({"federation": {"dns_servers": "127.0.0.1"}}, "federation.dns_servers: must be a list"),
    ({"federation": {"dns_servers": ["dns.example.org"]}}, "federation.dns_servers[0]: 'dns.example.org' is not IP"),
    ({"federation": {"dns_servers": ["10.0.0.1", "10.0.0.2:0"]}}, "federation.dns_servers[1]"),
    ({"federation": {"dns_servers": ["10.0.0.1:70000"]}}, "federation.dns_servers[0]"),
    ({"federation": {"dns_servers": ["10.0.0.1:"]}}, "federation.dns_servers[0]"),
    ({"federation": {"dns_servers": ["[::1]53"]}}, "federation.dns_servers[0]"),
    ({"federation": {"dns_servers": ["[::1]:"]}}, "federation.dns_servers[0]"),
    ({"federation": {"dns_servers": ["[::1"]}}, "federation.dns_servers[0]"),
])
def test_wrong_values_name_the_option(data, message):
    with pytest.raises(ConfigError) as raised:
        Config.from_dict(data)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_dns_servers_are_ip_addresses_with_an_optional_port():
    config = Config.from_dict({"federation": {"dns_servers": ["10.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353",
                                                              "[2001:db8::53]"]}})
    assert config.federation.nameservers == [("10.0.0.1", 53), ("127.0.0.1", 5353), ("::1", 53), ("::1", 5353),
                                             ("2001:db8::53", 53)]


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file"):
        load_config(str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("server_name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(broken))
