"""The user-interactive authentication API (sessions, flows, stages, completed).

An endpoint says which flows it accepts; `authenticate` either returns the results of
the completed stages or raises `InteractiveAuthRequired` with the spec's 401 body.
"""

from __future__ import annotations

import secrets
from typing import Any, Awaitable, Callable

import orjson

from ranvier.errors import InteractiveAuthRequired, MatrixError
from ranvier.users.store import UserStore
from ranvier.users.tokens import now_ms

SESSION_LIFETIME_MS = 30 * 60 * 1000

#: A stage checks the client's auth dict for the user the session belongs to and returns
#: what it proved (kept with the session), or raises MatrixError to refuse.
StageCheck = Callable[[dict[str, Any], "str | None"], Awaitable[Any]]


class InteractiveAuth:
    def __init__(self, store: UserStore) -> None:
        self.store = store
        self.stages: dict[str, StageCheck] = {}

    def register_stage(self, stage: str, check: StageCheck) -> None:
        self.stages[stage] = check

    async def authenticate(
        self,
        auth: Any,
        *,
        flows: list[list[str]],
        operation: str,
        user_id: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Advance the session by the stage in `auth`; return {stage: result} once a flow is done."""
        if auth is not None and not isinstance(auth, dict):
            raise MatrixError("M_BAD_JSON", "auth must be an object")
        session_id = auth.get("session") if auth else None
        if session_id is not None and not isinstance(session_id, str):
            raise MatrixError("M_BAD_JSON", "auth.session must be a string")
        stage = auth.get("type") if auth else None
        if stage is not None and not isinstance(stage, str):
            raise MatrixError("M_BAD_JSON", "auth.type must be a string")
        if session_id:
            completed = await self._load_session(session_id, operation, user_id)
        else:
            session_id = secrets.token_urlsafe(24)
            await self.store.create_uia_session(session_id, user_id, operation, now_ms())
            completed = {}

        def challenge(**error: Any) -> InteractiveAuthRequired:
            body: dict[str, Any] = {
                "flows": [{"stages": flow} for flow in flows],
                "params": params or {},
                "session": session_id,
            }
            if completed:
                body["completed"] = list(completed)
            body.update(error)
            return InteractiveAuthRequired(body)

        if stage is not None and stage not in completed:
            if stage not in _next_stages(flows, completed) or stage not in self.stages:
                raise challenge(errcode="M_FORBIDDEN", error=f"Authentication stage {stage!r} is not expected now")
            try:
                completed[stage] = await self.stages[stage](auth, user_id)
            except MatrixError as exc:
                raise challenge(errcode=exc.errcode, error=exc.message) from None
            await self.store.set_uia_completed(session_id, orjson.dumps(completed).decode())
        if any(all(s in completed for s in flow) for flow in flows):
            await self.store.delete_uia_session(session_id, older_than=now_ms() - SESSION_LIFETIME_MS)
            return completed
        raise challenge()

    async def _load_session(self, session_id: str, operation: str, user_id: str | None) -> dict[str, Any]:
        row = await self.store.get_uia_session(session_id)
        if row is None or row[3] < now_ms() - SESSION_LIFETIME_MS:
            raise MatrixError("M_UNKNOWN", "Unknown or expired authentication session")
        owner, session_operation, completed_json, _ = row
        if session_operation != operation or owner != user_id:
            raise MatrixError("M_FORBIDDEN", "This authentication session belongs to another request")
        return orjson.loads(completed_json)


def _next_stages(flows: list[list[str]], completed: dict[str, Any]) -> set[str]:
    """Stages that continue some flow, which must be followed in order."""
    allowed = set()
    for flow in flows:
        for stage in flow:
            if stage not in completed:
                allowed.add(stage)
                break
    return allowed
