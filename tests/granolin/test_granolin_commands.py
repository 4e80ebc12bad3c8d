"""Command parsing and the generated help."""

from __future__ import annotations

from typing import Literal

import pytest

from granolin import Command, CommandError, CommandRegistry


async def roll(event: object, sides: int = 6, count: int = 1) -> None:
    """Roll dice."""


def play(event: object, move: Literal["rock", "paper", "scissors"], loud: bool = False) -> None:
    """(no docstring help: the registry takes the help given at registration)"""


def say(event: object, *words: str) -> None:
    """Say the words."""


def test_parses_by_signature() -> None:
    command = Command.from_handler("!roll", roll)
    assert command.parse("") == []
    assert command.parse("20") == [20]
    assert command.parse(" 20   3 ") == [20, 3]
    assert command.usage == "!roll [sides] [count]"
    assert command.help == "Roll dice."


def test_literal_choices_and_bool() -> None:
    command = Command.from_handler("!play", play, help="Play a round")
    assert command.parse("ROCK") == ["rock"]
    assert command.parse("paper yes") == ["paper", True]
    assert command.usage == "!play <rock|paper|scissors> [loud]"
    with pytest.raises(CommandError, match="not one of rock, paper, scissors"):
        command.parse("lizard")
    with pytest.raises(CommandError, match="missing move"):
        command.parse("")


def test_rest_and_quotes() -> None:
    command = Command.from_handler("!say", say)
    assert command.parse('hello "big world"') == ["hello", "big world"]
    assert command.parse('unbalanced "quote') == ["unbalanced", '"quote']
    assert command.usage == "!say [words...]"
    assert command.help == "Say the words."


def test_errors_carry_the_usage() -> None:
    command = Command.from_handler("!roll", roll)
    with pytest.raises(CommandError, match=r"bad sides.*Usage: !roll \[sides\] \[count\]"):
        command.parse("six")
    with pytest.raises(CommandError, match="too many arguments"):
        command.parse("1 2 3")


def test_bad_handlers_are_refused() -> None:
    with pytest.raises(TypeError):
        Command.from_handler("!x", lambda: None)
    with pytest.raises(TypeError):
        Command.from_handler("!x", lambda event, *, kw: None)
    with pytest.raises(ValueError):
        Command.from_handler("two words", roll)


def test_registry_matching_and_help() -> None:
    registry = CommandRegistry("!help")
    assert registry.match("!help") is None  # no commands, no help
    registry.add(Command.from_handler("!roll", roll))
    registry.add(Command.from_handler("!play", play, help="Play a round"))
    assert registry.match("!Roll 20 2") == ("!roll", "20 2")
    assert registry.match("!roll\n20") == ("!roll", "20")
    assert registry.match("!rolling") is None
    assert registry.match("   ") is None
    assert registry.match("!help") == ("!help", "")
    assert registry.help_text() == (
        "!roll [sides] [count] - Roll dice.\n"
        "!play <rock|paper|scissors> [loud] - Play a round\n"
        "!help - show this help"
    )
    with pytest.raises(ValueError):
        registry.add(Command.from_handler("!ROLL", roll))
