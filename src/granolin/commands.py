"""Bot commands: ``!roll 2 20`` parsed against the handler's signature.

A command handler is called as ``handler(event, *arguments)``. Its parameters
after the event say what the command takes: the annotation converts the word
(``int``, ``float``, ``bool``, ``str``, a ``Literal[...]`` of choices, or any
callable taking a string), a default makes it optional, ``*args`` takes the
rest. The same signature produces the usage line shown by the help command and
in error answers, so the help never disagrees with the parser.
"""

from __future__ import annotations

import inspect
import shlex
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


class CommandError(ValueError):
    """The arguments do not fit the command; the message is meant for the user."""


def _to_bool(word: str) -> bool:
    lowered = word.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{word!r} is not yes or no")


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    convert: Callable[[str], Any]
    required: bool
    rest: bool
    choices: tuple[str, ...] | None

    def usage(self) -> str:
        shown = "|".join(self.choices) if self.choices else self.name
        if self.rest:
            return f"[{shown}...]"
        return f"<{shown}>" if self.required else f"[{shown}]"


def _parameter(parameter: inspect.Parameter, annotation: Any) -> _Parameter:
    choices: tuple[str, ...] | None = None
    if annotation is inspect.Parameter.empty or annotation is str or annotation is Any:
        convert: Callable[[str], Any] = str
    elif annotation is bool:
        convert = _to_bool
    elif get_origin(annotation) is Literal:
        choices = tuple(str(choice) for choice in get_args(annotation))

        def convert(word: str, allowed: tuple[str, ...] = choices) -> str:
            match = next((choice for choice in allowed if choice.lower() == word.lower()), None)
            if match is None:
                raise ValueError(f"{word!r} is not one of {', '.join(allowed)}")
            return match

    elif callable(annotation):
        convert = annotation
    else:
        raise TypeError(f"command parameter {parameter.name!r} has an annotation that cannot convert a word")
    return _Parameter(
        name=parameter.name,
        convert=convert,
        required=parameter.default is inspect.Parameter.empty and parameter.kind is not parameter.VAR_POSITIONAL,
        rest=parameter.kind is parameter.VAR_POSITIONAL,
        choices=choices,
    )


@dataclass(frozen=True, slots=True)
class Command:
    """One registered command."""

    name: str
    handler: Callable[..., Any]
    help: str
    parameters: tuple[_Parameter, ...]
    power_level: int | None = None
    """The power level a sender needs in the room to run it (None: anyone)."""
    concurrent: bool = False
    """Run at once, not after the handlers of the room's earlier events."""

    @classmethod
    def from_handler(
        cls, name: str, handler: Callable[..., Any], help: str = "", *, power_level: int | None = None, concurrent: bool = False,
    ) -> Command:
        """Build a command, reading its arguments from ``handler``'s signature."""
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"a command name is one word, not {name!r}")
        signature = inspect.signature(handler)
        hints = typing.get_type_hints(handler, include_extras=False)
        params = list(signature.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError(f"the handler of {name} must take the event as its first argument")
        parsed = []
        for parameter in params[1:]:
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.VAR_KEYWORD):
                raise TypeError(f"the handler of {name} takes words by position only, not {parameter.name!r}")
            parsed.append(_parameter(parameter, hints.get(parameter.name, parameter.annotation)))
        doc = help or inspect.getdoc(handler) or ""
        first_line = doc.strip().splitlines()[0] if doc.strip() else ""
        return cls(name, handler, first_line, tuple(parsed), power_level, concurrent)

    @property
    def usage(self) -> str:
        return " ".join([self.name, *(parameter.usage() for parameter in self.parameters)])

    def parse(self, text: str) -> list[Any]:
        """Convert the words after the command name into handler arguments."""
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        values: list[Any] = []
        for parameter in self.parameters:
            if parameter.rest:
                batch, words = words, []
            elif words:
                batch, words = words[:1], words[1:]
            elif parameter.required:
                raise CommandError(f"missing {parameter.name}. Usage: {self.usage}")
            else:
                break
            for word in batch:
                try:
                    values.append(parameter.convert(word))
                except (ValueError, TypeError) as exc:
                    raise CommandError(f"bad {parameter.name}: {exc}. Usage: {self.usage}") from None
        if words:
            raise CommandError(f"too many arguments. Usage: {self.usage}")
        return values


class CommandRegistry:
    """The commands of one bot, and the help text generated from them."""

    def __init__(self, help_command: str | None = "!help") -> None:
        self.help_command = help_command
        self._commands: dict[str, Command] = {}

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._commands

    @property
    def commands(self) -> Mapping[str, Command]:
        return self._commands

    def add(self, command: Command) -> None:
        key = command.name.lower()
        if key in self._commands:
            raise ValueError(f"command {command.name} is already registered")
        self._commands[key] = command

    def match(self, body: str) -> tuple[str, str] | None:
        """Split ``body`` into (command name, argument text) if it starts with a known command."""
        words = body.split(None, 1)
        if not words:
            return None
        key = words[0].lower()
        if key in self._commands or (self.help_command and key == self.help_command.lower() and self._commands):
            return key, words[1].strip() if len(words) > 1 else ""
        return None

    def get(self, name: str) -> Command | None:
        return self._commands.get(name.lower())

    def help_text(self) -> str:
        """One line per command: its usage, then what it does."""
        lines = []
        for command in self._commands.values():
            line = f"{command.usage} - {command.help}" if command.help else command.usage
            lines.append(line + (f" (power level {command.power_level})" if command.power_level is not None else ""))
        if self.help_command and self.help_command.lower() not in self._commands:
            lines.append(f"{self.help_command} - show this help")
        return "\n".join(lines)
