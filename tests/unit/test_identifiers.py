"""User ID and server name grammar (appendices)."""

from __future__ import annotations

import pytest

from ranvier.events.identifiers import InvalidIdentifier, check_new_localpart, is_valid_server_name, parse_user_id


@pytest.mark.parametrize("name", ["matrix.org", "matrix.org:8888", "1.2.3.4", "1.2.3.4:1234", "[1234:5678::abcd]",
                                  "[1234:5678::abcd]:5678", "localhost", "a-b.example"])
def test_valid_server_names(name):
    assert is_valid_server_name(name)


@pytest.mark.parametrize("name", ["", "has space", "under_score.org", "1.2.3.256", "[not:ipv6]", "host:0", "host:70000",
                                  "host:", "[::1", "x" * 256])
def test_invalid_server_names(name):
    assert not is_valid_server_name(name)


def test_historical_localparts_parse_but_new_ones_follow_the_strict_grammar():
    assert parse_user_id("@Old.User!:example.org") == ("Old.User!", "example.org")
    with pytest.raises(InvalidIdentifier):
        check_new_localpart("Old.User!", "example.org")
    assert check_new_localpart("new.user_1=/+-", "example.org") == "@new.user_1=/+-:example.org"


@pytest.mark.parametrize("bad", ["alice:example.org", "@alice", "@alice:", "@a\x00b:example.org", "@" + "a" * 250 + ":example.org"])
def test_malformed_user_ids(bad):
    with pytest.raises(InvalidIdentifier):
        parse_user_id(bad)


def test_new_user_id_fits_255_bytes():
    server = "example.org"
    longest = "a" * (255 - len(server) - 2)
    assert check_new_localpart(longest, server)
    with pytest.raises(InvalidIdentifier):
        check_new_localpart(longest + "a", server)
