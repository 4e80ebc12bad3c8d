"""Exceptions raised by granolin.

Messages name the endpoint, the HTTP status and the Matrix error code, never a
request body: a body can hold a password or a token.
"""

from __future__ import annotations

from typing import Any


class GranolinError(Exception):
    """Base class of every error granolin raises on purpose."""


class HomeserverError(GranolinError, ValueError):
    """The homeserver address is malformed or could not be discovered."""


class MatrixError(GranolinError):
    """The homeserver answered with an error (a non-2xx status)."""

    def __init__(
        self,
        status: int,
        errcode: str | None,
        error: str | None,
        *,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        self.status = status
        self.errcode = errcode
        self.error = error
        self.method = method
        self.path = path
        self.body = body or {}
        self.retry_after_ms = retry_after_ms
        detail = f": {error}" if error else ""
        super().__init__(f"{method} {path} failed with {status} {errcode or 'no errcode'}{detail}")

    @property
    def soft_logout(self) -> bool:
        """True when the server allows logging in again while keeping local state."""
        return bool(self.body.get("soft_logout"))

    @property
    def unrecognized(self) -> bool:
        """True when the server does not serve this endpoint at all."""
        return self.status in (404, 405) and self.errcode in (None, "M_UNRECOGNIZED")


class LoginError(MatrixError):
    """Logging in failed; the message names the user, never the password."""


class UnknownTokenError(MatrixError):
    """The access token is not (or no longer) valid: the bot must log in again."""


class RateLimitedError(MatrixError):
    """The server asked us to slow down (429 M_LIMIT_EXCEEDED)."""


class AttachmentError(GranolinError, ValueError):
    """An encrypted attachment that cannot be decrypted: a malformed ``file`` object, or a ciphertext whose hash does not match."""
