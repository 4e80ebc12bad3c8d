"""User ID and server name grammar (appendices)."""

from __future__ import annotations

import pytest

from ranvier.events.identifiers import (InvalidIdentifier, check_new_localpart, is_valid_mxc_uri, is_valid_server_name,
                                       parse_user_id)


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


@pytest.mark.parametrize("localpart", ["name-\n", "name\n", "\nname", "na\nme"])
def test_a_newline_is_never_part_of_a_new_localpart(localpart):
    with pytest.raises(InvalidIdentifier):
        check_new_localpart(localpart, "localhost")


@pytest.mark.parametrize("name", ["localhost\n", "example.org:8448\n", "1.2.3.4\n", "[::1]\n"])
def test_a_trailing_newline_makes_a_server_name_invalid(name):
    assert not is_valid_server_name(name)
    with pytest.raises(InvalidIdentifier):
        parse_user_id(f"@name:{name}")


@pytest.mark.parametrize("uri", ["mxc://example.org/abcDEF123_-", "mxc://localhost:8008/x", "mxc://[::1]/media"])
def test_valid_mxc_uris(uri):
    assert is_valid_mxc_uri(uri)


@pytest.mark.parametrize("uri", ["", "mxc://", "mxc://example.org", "mxc://example.org/", "mxc:///media",
                                 "https://example.org/media", "mxc://example.org/a/b", "mxc://example.org/../etc",
                                 "mxc://bad host/media", "mxc://example.org/media\n", "MXC://example.org/media",
                                 "mxc://example.org/media id"])
def test_invalid_mxc_uris(uri):
    assert not is_valid_mxc_uri(uri)
