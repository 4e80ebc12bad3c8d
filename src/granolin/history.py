"""Reading a room's history: pages of /messages, threads, members.

The iterators page lazily: they fetch the next page when the caller gets
there, and stop at the end of the history (or of the thread).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from .events import TimelineEvent, timeline_event
from .messaging import RoomActions
from .transport import CLIENT_V1, CLIENT_V3, quote_segment

Direction = Literal["b", "f"]


class History(RoomActions):
    """History reading, on top of the room actions."""

    async def _pages(self, path: str, params: dict[str, str], cursor: str, chunk: str = "chunk") -> AsyncIterator[list[dict[str, Any]]]:
        """Each page of a paginated endpoint until the server gives no next token."""
        while True:
            answer = await self.api("GET", path, params=params)
            events = [raw for raw in answer.get(chunk) or [] if isinstance(raw, dict)]
            if events:
                yield events
            following = answer.get(cursor)
            if not isinstance(following, str) or not events or following == params.get("from"):
                return
            params = {**params, "from": following}

    async def messages(
        self,
        room_id: str,
        *,
        direction: Direction = "b",
        start: str | None = None,
        page_size: int = 100,
        event_filter: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[TimelineEvent]:
        """The room's events, newest first (``direction="b"``) or oldest first (``"f"``).

        ``start`` is a pagination token (a sync's ``prev_batch``, or the
        ``end`` of an earlier page); without it the history is read from its
        newest (or, going forward, its oldest) end. ``event_filter`` is a
        RoomEventFilter (types, senders...).
        """
        params = {"dir": direction, "limit": str(page_size)}
        if start is not None:
            params["from"] = start
        if event_filter is not None:
            params["filter"] = json.dumps(dict(event_filter))
        async for page in self._pages(f"{CLIENT_V3}/rooms/{quote_segment(room_id)}/messages", params, "end"):
            for raw in page:
                yield timeline_event(raw, room_id)

    async def threads(self, room_id: str, *, include: Literal["all", "participated"] = "all", page_size: int = 50) -> AsyncIterator[TimelineEvent]:
        """The thread roots of a room, the most recently active first."""
        params = {"include": include, "limit": str(page_size)}
        async for page in self._pages(f"{CLIENT_V1}/rooms/{quote_segment(room_id)}/threads", params, "next_batch"):
            for raw in page:
                yield timeline_event(raw, room_id)

    async def thread(self, room_id: str, root_id: str, *, direction: Direction = "f", page_size: int = 100) -> AsyncIterator[TimelineEvent]:
        """The events of a thread (not its root), oldest first by default."""
        path = f"{CLIENT_V1}/rooms/{quote_segment(room_id)}/relations/{quote_segment(root_id)}/m.thread"
        async for page in self._pages(path, {"dir": direction, "limit": str(page_size)}, "next_batch"):
            for raw in page:
                yield timeline_event(raw, room_id)
