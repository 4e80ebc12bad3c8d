"""Matrix errors: the one table of error codes and their HTTP status.

Services and the web layer raise `MatrixError` (services never import `web`); the web layer turns it into `{"errcode", "error"}` with the
status from this table, so every API answers the same way.
"""

from __future__ import annotations

from typing import Any

ERROR_STATUS: dict[str, int] = {
    "M_FORBIDDEN": 403,
    "M_UNKNOWN_TOKEN": 401,
    "M_MISSING_TOKEN": 401,
    "M_USER_LOCKED": 401,
    "M_USER_SUSPENDED": 403,
    "M_BAD_JSON": 400,
    "M_NOT_JSON": 400,
    "M_NOT_FOUND": 404,
    "M_LIMIT_EXCEEDED": 429,
    "M_UNRECOGNIZED": 404,
    "M_UNKNOWN": 400,
    "M_UNAUTHORIZED": 401,
    "M_USER_DEACTIVATED": 403,
    "M_USER_IN_USE": 400,
    "M_INVALID_USERNAME": 400,
    "M_ROOM_IN_USE": 400,
    "M_INVALID_ROOM_STATE": 400,
    "M_THREEPID_IN_USE": 400,
    "M_THREEPID_NOT_FOUND": 400,
    "M_THREEPID_AUTH_FAILED": 401,
    "M_THREEPID_DENIED": 403,
    "M_THREEPID_MEDIUM_NOT_SUPPORTED": 400,
    "M_SERVER_NOT_TRUSTED": 403,
    "M_UNSUPPORTED_ROOM_VERSION": 400,
    "M_INCOMPATIBLE_ROOM_VERSION": 400,
    "M_BAD_STATE": 403,
    "M_GUEST_ACCESS_FORBIDDEN": 403,
    "M_CAPTCHA_NEEDED": 401,
    "M_CAPTCHA_INVALID": 401,
    "M_MISSING_PARAM": 400,
    "M_INVALID_PARAM": 400,
    "M_TOO_LARGE": 413,
    "M_EXCLUSIVE": 400,
    "M_RESOURCE_LIMIT_EXCEEDED": 403,
    "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM": 403,
    "M_WEAK_PASSWORD": 400,
    "M_NOT_YET_UPLOADED": 504,
    "M_CANNOT_OVERWRITE_MEDIA": 409,
    "M_UNKNOWN_POS": 400,
    "M_UNABLE_TO_AUTHORISE_JOIN": 400,
    "M_UNABLE_TO_GRANT_JOIN": 502,
    "M_BAD_ALIAS": 400,
    "M_INVALID_SIGNATURE": 400,
    "M_WRONG_ROOM_KEYS_VERSION": 403,
    "M_UNKNOWN_DEVICE": 400,
    #: The application service ping's (POST /v1/appservice/{id}/ping).
    "M_URL_NOT_SET": 400,
    "M_BAD_STATUS": 502,
    "M_CONNECTION_FAILED": 502,
    "M_CONNECTION_TIMEOUT": 504,
    #: The 2014 draft's code for bad pagination values (legacy_api only).
    "M_BAD_PAGINATION": 400,
}


class MatrixError(Exception):
    """An error the client should see, with its Matrix errcode.

    `extra` fields (retry_after_ms, soft_logout, ...) are merged into the JSON body.
    """

    def __init__(self, errcode: str, message: str, *, status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(errcode, 400)
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}


def forbidden(message: str) -> MatrixError:
    return MatrixError("M_FORBIDDEN", message)


def not_found(message: str) -> MatrixError:
    return MatrixError("M_NOT_FOUND", message)


def no_identity_server(action: str) -> MatrixError:
    """The answer to anything that needs an identity server: none is configured here."""
    return MatrixError("M_SERVER_NOT_TRUSTED", f"{action} needs an identity server, and none is configured on this server")


class InteractiveAuthRequired(Exception):
    """A 401 of the user-interactive authentication API: flows, params, session, completed.

    Its body is not a plain error (it may carry no errcode at all), hence its own type.
    """

    status = 401

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", "Additional authentication is required"))
        self.body = body
