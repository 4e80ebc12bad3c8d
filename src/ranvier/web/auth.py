"""Who is calling: the access token from `Authorization: Bearer` or `?access_token=`, and
the account rules every endpoint shares (guests, locked and suspended accounts, UIA)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.requester import Requester
from ranvier.web.app import HOMESERVER
from ranvier.web.http import client_ip

if TYPE_CHECKING:
    from ranvier.appservice.registration import Registration
    from ranvier.users.uia import AuthSession

#: The registration and login type of an application service's users.
APPLICATION_SERVICE_LOGIN = "m.login.application_service"


def access_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError("M_MISSING_TOKEN", "Authorization header must be 'Bearer <token>'")
        return token.strip()
    return request.query.get("access_token")


def calling_service(request: web.Request, action: str) -> "Registration":
    """The application service whose as_token the request carries, for `action` (its
    login or registration of one of its users); M_MISSING_TOKEN or M_UNKNOWN_TOKEN otherwise."""
    token = access_token(request)
    if not token:
        raise MatrixError("M_MISSING_TOKEN", f"{action} as an application service needs its as_token")
    service = request.app[HOMESERVER].appservices.by_token(token)
    if service is None:
        raise MatrixError("M_UNKNOWN_TOKEN", "That is not an application service's token")
    return service


async def requester(request: web.Request, *, allow_guest: bool = False, allow_locked: bool = False) -> Requester:
    """Authenticate the request or raise M_MISSING_TOKEN / M_UNKNOWN_TOKEN. An application
    service's `as_token` acts as the user and device it names (`AppServices.requester`).

    Guests reach only the endpoints the guest access module lists (`allow_guest`); a
    locked account only the ones the spec leaves open to it (`allow_locked`: logging out),
    every other answer is 401 M_USER_LOCKED with `soft_logout`, tokens kept.
    """
    token = access_token(request)
    if not token:
        raise MatrixError("M_MISSING_TOKEN", "Missing access token")
    hs = request.app[HOMESERVER]
    service = hs.appservices.by_token(token) if hs.appservices else None
    if service is not None:  # acting as `user_id` (its sender by default), from `device_id` if given
        query = request.query
        return await hs.appservices.requester(service, query.get("user_id"),
                                              query.get("device_id", query.get("org.matrix.msc3202.device_id")))
    who = await hs.users.tokens.authenticate(token, client_ip(request), request.headers.get("User-Agent"))
    if who.locked and not allow_locked:
        raise MatrixError("M_USER_LOCKED", "This account has been locked", soft_logout=True)
    if who.is_guest and not allow_guest:
        raise MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest accounts cannot use this endpoint")
    return who


def service_timestamp(request: web.Request, who: Requester) -> int | None:
    """The `ts` an application service gives an event it sends (timestamp massaging, for
    bridged messages); None for anyone else's request or without `ts`."""
    value = request.query.get("ts")
    if who.app_service is None or value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 15:
        raise MatrixError("M_INVALID_PARAM", "ts must be a timestamp in milliseconds")
    return int(value)


def refuse_if_suspended(who: Requester, action: str) -> None:
    """403 M_USER_SUSPENDED for an action the account suspension rules forbid."""
    if who.suspended:
        raise MatrixError("M_USER_SUSPENDED", f"You cannot {action} while your account is suspended")


def uia_request(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """What a user-interactive auth session is bound to: the request's path parameters and
    its body without `auth`."""
    path = {name: value for name, value in request.match_info.items() if name != "api_version"}
    return {"path": path, "body": {name: value for name, value in body.items() if name != "auth"}}


async def user_interactive_auth(request: web.Request, body: dict[str, Any], who: Requester, *,
                                flows: list[list[str]], operation: str) -> AuthSession:
    """Re-authenticate `who` for this very request (see `uia_request`)."""
    return await request.app[HOMESERVER].users.uia.authenticate(
        body.get("auth"), flows=flows, operation=operation, user_id=who.user_id, request=uia_request(request, body)
    )
