"""Pure rules of profiles and account data: profile keys and values, ignored-user lists."""

from __future__ import annotations

import pytest

from ranvier.errors import MatrixError
from ranvier.users.account_data import check_ignored_user_list
from ranvier.users.profiles import check_key, check_value


@pytest.mark.parametrize("key", ["displayname", "avatar_url", "m.tz", "org.example.field", "a.b_c.d1"])
def test_valid_profile_keys(key):
    check_key(key)


@pytest.mark.parametrize("key, errcode", [
    ("Displayname", "M_INVALID_PARAM"), ("custom", "M_INVALID_PARAM"), ("org..x", "M_INVALID_PARAM"),
    ("m.tz ", "M_INVALID_PARAM"), ("org.example." + "x" * 244, "M_KEY_TOO_LARGE"),
])
def test_invalid_profile_keys(key, errcode):
    with pytest.raises(MatrixError) as caught:
        check_key(key)
    assert caught.value.errcode == errcode


def test_profile_values():
    assert check_value("displayname", "") is None
    assert check_value("avatar_url", "") is None
    assert check_value("avatar_url", "mxc://a/b") == "mxc://a/b"
    assert check_value("org.example.any", {"x": [1]}) == {"x": [1]}
    assert check_value("m.tz", "Europe/Paris") == "Europe/Paris"
    for key, value, errcode in (("displayname", 3, "M_BAD_JSON"), ("m.tz", [], "M_BAD_JSON"),
                                ("avatar_url", "https://a/b", "M_INVALID_PARAM")):
        with pytest.raises(MatrixError) as caught:
            check_value(key, value)
        assert caught.value.errcode == errcode


def test_ignored_user_list_rules():
    check_ignored_user_list("@me:hs", {"ignored_users": {"@you:hs": {}}})
    for content in ({"ignored_users": []}, {"ignored_users": {"@you:hs": 1}}, {"ignored_users": {"you": {}}},
                    {"ignored_users": {"@me:hs": {}}}):
        with pytest.raises(MatrixError):
            check_ignored_user_list("@me:hs", content)
