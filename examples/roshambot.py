"""Roshambot: rock-paper-scissors over direct messages.

In any room the bot is in, ``!challenge <someone>`` starts a match: the bot
opens a direct room with each player and asks for their move there, so neither
sees the other's; when both have answered, it announces the winner in the room
where the challenge was made. ``!play <move>`` plays a quick round against the bot.

    python examples/roshambot.py --homeserver http://127.0.0.1:8008 --user roshambot
    (the password comes from the ROSHAMBOT_PASSWORD variable, or is asked for)
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import random
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from granolin import AutoJoiner, Client, ServerDirectory, TextMessage

Move = Literal["rock", "paper", "scissors"]
BEATS = {"rock": "scissors", "paper": "rock", "scissors": "paper"}


def outcome(first: str, second: str) -> int:
    """0 for a draw, 1 when the first move wins, 2 when the second does."""
    if first == second:
        return 0
    return 1 if BEATS[first] == second else 2


class Roshambot(AutoJoiner, ServerDirectory, Client):
    """Keeps its matches in the hardcopy, so a restart does not forget a game in progress."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.matches: dict[str, dict[str, Any]] = {}
        """match ID -> {"room": where it was called, "moves": {player: move or None}}"""
        super().__init__(*args, **kwargs)
        self.command("!challenge", help="Challenge someone to rock-paper-scissors")(self.challenge)
        self.command("!play", help="Play one round against the bot")(self.play)
        self.on(TextMessage)(self.take_move)

    def hardcopy_state(self) -> dict[str, Any]:
        return {**super().hardcopy_state(), "matches": self.matches}

    def restore_hardcopy_state(self, state: Mapping[str, Any]) -> None:
        super().restore_hardcopy_state(state)
        self.matches = dict(state.get("matches") or {})

    def name(self, user_id: str) -> str:
        for room in self.rooms.values():
            if room["members"].get(user_id):
                return str(room["members"][user_id])
        return user_id

    async def challenge(self, event: TextMessage, opponent: str) -> None:
        assert event.room_id is not None and event.sender is not None
        found = await self.find_contact(opponent)
        if found is None or found in (event.sender, self.user_id):
            await self.reply(event, f"I do not know who {opponent} is.", notice=True)
            return
        match_id = uuid.uuid4().hex
        self.matches[match_id] = {"room": event.room_id, "moves": {event.sender: None, found: None}}
        for player, rival in ((event.sender, found), (found, event.sender)):
            direct = await self.ensure_direct_room(player)
            await self.send_notice(direct, "Roshambo against {}! Answer here: rock, paper or scissors.", self.name(rival))
        await self.send_notice(event.room_id, "{} challenges {}: moves by direct message.", self.name(event.sender), self.name(found))

    async def take_move(self, event: TextMessage) -> None:
        move = event.body.strip().lower()
        if move not in BEATS or event.sender is None:
            return
        for match_id, match in list(self.matches.items()):
            moves = match["moves"]
            if moves.get(event.sender, "") is None and event.room_id in self.direct.get(event.sender, []):
                moves[event.sender] = move
                # Decided before any await: both players' handlers may run at once, and only one may close the match.
                complete = all(moves.values())
                if complete:
                    del self.matches[match_id]
                await self.send_notice(event.room_id, "Got it: {}.", move)
                if complete:
                    await self.announce(match["room"], moves)
                return

    async def announce(self, room_id: str, moves: Mapping[str, str]) -> None:
        (first, first_move), (second, second_move) = moves.items()
        result = outcome(first_move, second_move)
        verdict = "It's a draw!" if result == 0 else f"{self.name(first if result == 1 else second)} wins!"
        await self.send_notice(room_id, "{} played {}, {} played {}. {}", self.name(first), first_move, self.name(second), second_move, verdict)

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
