"""Roshambot: rock-paper-scissors over direct messages.

In any room the bot is in, "I challenge NAME to roshambo" (or
``!challenge NAME``) starts a match: the bot opens a direct room with each
player and asks for their move there, so neither sees the other's. Each player
answers Rock, Paper, Scissors or Cancel; when both have moved, the bot
announces the winner in the room where the challenge was made, and a Cancel
calls the match off. A player is in one match at a time. ``!play <move>``
plays a quick round against the bot.

    python examples/roshambot.py --homeserver http://127.0.0.1:8008 --user roshambot
    (the password comes from the ROSHAMBOT_PASSWORD variable, or is asked for)
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from granolin import AutoJoiner, Client, ServerDirectory, TextMessage, readable_username

Move = Literal["rock", "paper", "scissors"]
BEATS = {"rock": "scissors", "paper": "rock", "scissors": "paper"}
CHALLENGE = re.compile(r"\bi challenge (\S+) to roshambo\b", re.IGNORECASE)
MOVE = re.compile(r"rock|paper|scissors|cancel", re.IGNORECASE)


def outcome(first: str, second: str) -> int:
    """0 for a draw, 1 when the first move wins, 2 when the second does."""
    if first == second:
        return 0
    return 1 if BEATS[first] == second else 2


def challenged_name(text: str) -> str | None:
    """The NAME of "I challenge NAME to roshambo", if the text says so."""
    found = CHALLENGE.search(text)
    return found.group(1) if found else None


class Roshambot(AutoJoiner, ServerDirectory, Client):
    """Keeps its matches in the hardcopy, so a restart does not forget a game in progress."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.matches: dict[str, dict[str, Any]] = {}
        """match ID -> {"room": where it was called, "moves": {challenger: move or None, challenged: move or None}}"""
        super().__init__(*args, **kwargs)
        self.command("!challenge", help="Challenge someone to rock-paper-scissors")(self.challenge)
        self.command("!play", help="Play one round against the bot")(self.play)
        self.on(TextMessage)(self.read_message)

    def hardcopy_state(self) -> dict[str, Any]:
        return {**super().hardcopy_state(), "matches": self.matches}

    def restore_hardcopy_state(self, state: Mapping[str, Any]) -> None:
        super().restore_hardcopy_state(state)
        self.matches = dict(state.get("matches") or {})

    def match_of(self, player: str) -> str | None:
        return next((match_id for match_id, match in self.matches.items() if player in match["moves"]), None)

    async def read_message(self, event: TextMessage) -> None:
        """The seed's plain-language challenge, or a move in a direct room."""
        name = challenged_name(event.body)
        if name is not None and not event.body.startswith("!"):
            await self.challenge(event, name)
        elif event.sender is not None and event.room_id in self.direct.get(event.sender, []):
            move = MOVE.search(event.body)
            if move is not None:
                await self.take_move(event, move.group(0).lower())

    async def challenge(self, event: TextMessage, opponent: str) -> None:
        assert event.room_id is not None and event.sender is not None
        found = await self.find_contact(opponent, like=True)
        if found is None or found in (event.sender, self.user_id):
            await self.reply(event, f"I do not know who {opponent} is.", notice=True)
            return
        for player in (event.sender, found):
            if self.match_of(player) is not None:
                await self.send_notice(event.room_id, "Sorry, {} is already in a match.", readable_username(player))
                return
        # Recorded before any await, so a second challenge cannot slip in meanwhile.
        self.matches[uuid.uuid4().hex] = {"room": event.room_id, "moves": {event.sender: None, found: None}}
        challenger_room = await self.ensure_direct_room(event.sender)
        challenged_room = await self.ensure_direct_room(found)
        await self.send_notice(challenger_room, "You have challenged {} to roshambo. Reply with Rock, Paper, Scissors or Cancel.",
                               readable_username(found))
        await self.send_notice(challenged_room, "{} has challenged you to roshambo. Reply with Rock, Paper, Scissors, or Cancel.",
                               readable_username(event.sender))
        await self.send_notice(event.room_id, "{} challenges {}: moves by direct message.",
                               readable_username(event.sender), readable_username(found))

    async def take_move(self, event: TextMessage, move: str) -> None:
        assert event.sender is not None and event.room_id is not None
        match_id = self.match_of(event.sender)
        if match_id is None or self.matches[match_id]["moves"][event.sender] is not None:
            return
        match = self.matches[match_id]
        moves = match["moves"]
        moves[event.sender] = move
        # Decided before any await: both players' rooms are handled side by side, and only one may close the match.
        over = move == "cancel" or all(moves.values())
        if over:
            del self.matches[match_id]
        if move != "cancel":
            await self.send_notice(event.room_id, "Got it: {}.", move)
        if over:
            await self.announce(match["room"], moves, cancelled_by=event.sender if move == "cancel" else None)

    async def announce(self, room_id: str, moves: Mapping[str, str | None], cancelled_by: str | None = None) -> None:
        (first, first_move), (second, second_move) = moves.items()
        if cancelled_by is not None:
            await self.send_notice(room_id, "The match between {} and {} was canceled by {}.",
                                   readable_username(first), readable_username(second), readable_username(cancelled_by))
            return
        assert first_move is not None and second_move is not None
        result = outcome(first_move, second_move)
        if result == 0:
            await self.send_notice(room_id, "It's a draw! Both {} and {} picked {}.", readable_username(first), readable_username(second), first_move)
            return
        (winner, win), (loser, lose) = ((first, first_move), (second, second_move))[:: 1 if result == 1 else -1]
        await self.send_notice(room_id, "{}'s {} beats {}'s {}! {} is the winner!", readable_username(winner), win,
                               readable_username(loser), lose, readable_username(winner))

    async def play(self, event: TextMessage, move: Move) -> None:
        mine = random.choice(list(BEATS))
        verdict = ("A draw.", "You win!", "I win!")[outcome(move, mine)]
        await self.reply(event, "I played {}. {}", mine, verdict, notice=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homeserver", default=os.environ.get("GRANOLIN_HOMESERVER", "http://127.0.0.1:8008"))
    parser.add_argument("--user", default="roshambot")
    parser.add_argument("--hardcopy", default="roshambot.hardcopy.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    bot = Roshambot(args.homeserver, hardcopy=args.hardcopy)
    password = None if bot.logged_in else os.environ.get("ROSHAMBOT_PASSWORD") or getpass.getpass(f"password of {args.user}: ")
    bot.run(user=args.user, password=password)


if __name__ == "__main__":
    main()
