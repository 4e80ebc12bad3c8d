"""The user-interactive authentication API (sessions, flows, stages, completed).

An endpoint says which flows it accepts; `authenticate` either returns the session with
its completed stages or raises `InteractiveAuthRequired` with the spec's 401 body.

A session is bound to what started it: the operation, the user, and the request (its path
parameters and body without `auth`), kept as a keyed hash (the body may hold a new
password, which must not be guessable from the database alone), so a session begun to
delete one device cannot delete another. It lives until it expires, so a client that retries once its
flow is complete (the operation failed, or the answer was lost) goes on to the
operation instead of an unknown session: the spec's "completed stages cannot be retried".
A registration session records the account it created, so a retry answers with that
account and never creates a second one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from ranvier.errors import InteractiveAuthRequired, MatrixError
from ranvier.users.store import UserStore
from ranvier.users.tokens import now_ms

SESSION_LIFETIME_MS = 30 * 60 * 1000

#: A stage checks the client's auth dict for the user the session belongs to and returns
#: what it proved (kept with the session), or raises MatrixError to refuse.
StageCheck = Callable[[dict[str, Any], "str | None"], Awaitable[Any]]


class AuthenticationRefused(MatrixError):
    """A stage refusal that trying again cannot mend (authenticating as another account):
    answered as this plain error, not as a 401 asking for another attempt."""


@dataclass(frozen=True)
class AuthSession:
    """A session whose flow is complete: its ID, what each stage proved, and the account a
    registration session has created already (None until then)."""

    session_id: str
    completed: dict[str, Any]
    registered_user_id: str | None


class InteractiveAuth:
    def __init__(self, store: UserStore, request_key_secret: bytes = b"") -> None:
        self.store = store
        self.stages: dict[str, StageCheck] = {}
        self._request_key_secret = request_key_secret

    def register_stage(self, stage: str, check: StageCheck) -> None:
        self.stages[stage] = check

    async def authenticate(
        self,
        auth: Any,
        *,
        flows: list[list[str]],
        operation: str,
        user_id: str | None = None,
        request: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> AuthSession:
        """Advance the session by the stage in `auth`; return it once a flow is done.

        `request` is what the session is bound to besides operation and user (None: the
        operation alone, as for registration, whose body may change between attempts).
        """
        if auth is not None and not isinstance(auth, dict):
            raise MatrixError("M_BAD_JSON", "auth must be an object")
        session_id = auth.get("session") if auth else None
        if session_id is not None and not isinstance(session_id, str):
            raise MatrixError("M_BAD_JSON", "auth.session must be a string")
        stage = auth.get("type") if auth else None
        if stage is not None and not isinstance(stage, str):
            raise MatrixError("M_BAD_JSON", "auth.type must be a string")
        registered = None
        now = now_ms()
        request_key = self._request_key(request)
        if session_id:
            completed, registered = await self._load_session(session_id, operation, user_id, request_key)
        else:
            session_id = secrets.token_urlsafe(24)
            await self.store.create_uia_session(session_id, user_id, operation, request_key, now,
                                                expired_before=now - SESSION_LIFETIME_MS)
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
            except AuthenticationRefused:
                raise
            except MatrixError as exc:
                raise challenge(errcode=exc.errcode, error=exc.message) from None
            await self.store.set_uia_completed(session_id, orjson.dumps(completed).decode())
        if any(all(s in completed for s in flow) for flow in flows):
            return AuthSession(session_id, completed, registered)
        raise challenge()

    async def _load_session(self, session_id: str, operation: str, user_id: str | None,
                            request_key: str) -> tuple[dict[str, Any], str | None]:
        row = await self.store.get_uia_session(session_id)
        if row is None or row[4] < now_ms() - SESSION_LIFETIME_MS:
            raise MatrixError("M_UNKNOWN", "Unknown or expired authentication session")
        owner, session_operation, session_request_key, completed_json, _, registered = row
        if session_operation != operation or owner != user_id:
            raise MatrixError("M_FORBIDDEN", "This authentication session belongs to another request")
        if session_request_key != request_key:
            raise MatrixError("M_FORBIDDEN", "This authentication session was started for a different request; "
                                             "start a new one for this request")
        return orjson.loads(completed_json), registered


    def _request_key(self, request: dict[str, Any] | None) -> str:
        if request is None:
            return ""
        canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
        return hmac.new(self._request_key_secret, canonical, hashlib.sha256).hexdigest()


def _next_stages(flows: list[list[str]], completed: dict[str, Any]) -> set[str]:
    """Stages that continue some flow, which must be followed in order."""
    allowed = set()
    for flow in flows:
        for stage in flow:
            if stage not in completed:
                allowed.add(stage)
                break
    return allowed
