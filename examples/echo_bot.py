"""Echo bot: joins the rooms it is invited to, repeats what people say there, prints every event.

Like the seed's shell echo bot, it prints each event it sees to the terminal,
one block of fields per event.

    python examples/echo_bot.py --homeserver http://127.0.0.1:8008 --user echo
    (the password comes from the ECHO_PASSWORD variable, or is asked for)
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from typing import TextIO

from granolin import AutoJoiner, Client, MessageLog, TextMessage


class EchoBot(AutoJoiner, MessageLog, Client):
    """A client that accepts every invitation and reports every event."""


def make_bot(homeserver: str, hardcopy: str | None = "echo.hardcopy.json", output: TextIO | None = sys.stdout) -> EchoBot:
    bot = EchoBot(homeserver, hardcopy=hardcopy)
    bot.message_output = output

    @bot.on(TextMessage)
    async def echo(event: TextMessage) -> None:
        # A notice, not a text: other bots do not answer notices, so two echo bots cannot loop.
        await bot.send_notice(event.room_id, event.body)

    @bot.command("!ping", help="Check that the bot is alive")
    async def ping(event: TextMessage) -> None:
        await bot.reply(event, "pong", notice=True)

    return bot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homeserver", default=os.environ.get("GRANOLIN_HOMESERVER", "http://127.0.0.1:8008"))
    parser.add_argument("--user", default="echo")
    parser.add_argument("--hardcopy", default="echo.hardcopy.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    bot = make_bot(args.homeserver, args.hardcopy)
    password = None if bot.logged_in else os.environ.get("ECHO_PASSWORD") or getpass.getpass(f"password of {args.user}: ")
    bot.run(user=args.user, password=password)


if __name__ == "__main__":
    main()
