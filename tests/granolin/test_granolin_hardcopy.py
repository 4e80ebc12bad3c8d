"""The hardcopy: atomic saves, automatic load, mixin state through super()."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from granolin import Room, Client, GranolinError, HomeserverError, ServerDirectory


class Counter(Client):
    """A bot with state of its own, saved with the client's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.count = 0
        super().__init__(*args, **kwargs)

    def hardcopy_state(self) -> dict[str, Any]:
        return {**super().hardcopy_state(), "count": self.count}

    def restore_hardcopy_state(self, state: Mapping[str, Any]) -> None:
        super().restore_hardcopy_state(state)
        self.count = state.get("count", 0)


class CountingDirectory(Counter, ServerDirectory):
    """Two layers of state on top of the client's."""


def test_round_trip_and_automatic_load(tmp_path: Path) -> None:
    path = tmp_path / "bot.json"
    bot = CountingDirectory("https://hs.example.org", hardcopy=path)
    bot.user_id, bot.access_token, bot.device_id = "@bot:example.org", "token", "DEV"
    bot.next_batch = "s42"
    bot.count = 7
    bot.rooms["!r:x"] = Room("!r:x")
    bot.rooms["!r:x"].apply("m.room.name", "", {"name": "Lobby"})
    bot.rooms["!r:x"].apply("m.room.member", "@a:x", {"membership": "join", "displayname": "A"})
    bot.direct = {"@a:x": ["!r:x"]}
    bot.save_state()

    again = CountingDirectory("https://hs.example.org", hardcopy=path)
    assert (again.user_id, again.access_token, again.device_id, again.next_batch) == ("@bot:example.org", "token", "DEV", "s42")
    assert again.logged_in and again.count == 7
    assert again.rooms == bot.rooms and again.direct == bot.direct
    assert again.room_name("!r:x") == "Lobby" and again.room_members("!r:x") == {"@a:x": "A"}
    assert orjson.loads(path.read_bytes())["count"] == 7


def test_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "bot.json"
    Client("https://hs.example.org", hardcopy=path).save_state()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bot.json"
    bot = Counter("https://hs.example.org", hardcopy=path)
    bot.count = 1
    bot.save_state()
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    bot.count = 2
    with pytest.raises(OSError):
        bot.save_state()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bot.json"]


def test_a_hardcopy_of_another_server_or_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.json"
    bot = Client("https://hs.example.org", hardcopy=path)
    bot.user_id = "@bot:example.org"
    bot.save_state()
    with pytest.raises(HomeserverError):
        Client("https://other.example.org", hardcopy=path)
    with pytest.raises(GranolinError):
        Client("https://hs.example.org", user_id="@someone:example.org", hardcopy=path)
    assert Client("https://hs.example.org", user_id="@bot:example.org", hardcopy=path).user_id == "@bot:example.org"


def test_explicit_paths_and_no_hardcopy(tmp_path: Path) -> None:
    bot = Counter("https://hs.example.org", hardcopy=None)
    bot.count = 3
    bot.save_state()  # no file: nothing to do
    assert list(tmp_path.iterdir()) == []
    bot.save_state(tmp_path / "elsewhere.json")
    other = Counter("https://hs.example.org", hardcopy=None)
    other.load_state(tmp_path / "elsewhere.json")
    assert other.count == 3
    with pytest.raises(GranolinError):
        other.load_state()


def test_transaction_ids_are_unique_even_without_a_hardcopy(tmp_path: Path) -> None:
    first = Client("https://hs.example.org", hardcopy=tmp_path / "a.json")
    ids = [first.new_txn_id() for _ in range(1000)]
    first.save_state()
    (tmp_path / "a.json").unlink()  # the hardcopy is lost
    restarted = Client("https://hs.example.org", hardcopy=tmp_path / "a.json")
    ids += [restarted.new_txn_id() for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert "1" not in ids
