"""Third-party identifiers (e-mail addresses, phone numbers): /account/3pid and the
requestToken endpoints of registration, password reset and the account.

This server has no identity server and sends no e-mail or SMS, so an account has no
third-party identifier: the list is empty, and everything that would add, bind, verify
or use one answers with the spec's error for it, naming what is not configured (the
`m.3pid_changes` capability says false).
"""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError, no_identity_server
from ranvier.web.auth import requester
from ranvier.web.http import json_response, read_json
from ranvier.web.params import field
from ranvier.web.routing import Routes

routes = Routes()

_NO_VERIFICATION = "this server sends no e-mail or SMS and has no identity server to verify addresses"


@routes.get("/account/3pid")
async def list_threepids(request: web.Request) -> web.Response:
    """GET /account/3pid: the caller's third-party identifiers, always `[]` here."""
    await requester(request)
    return json_response({"threepids": []})


@routes.post("/account/3pid")
@routes.post("/account/3pid/bind")
async def bind_threepid(request: web.Request) -> web.Response:
    """POST /account/3pid (deprecated), POST /account/3pid/bind: binding through an
    identity server: 403 M_SERVER_NOT_TRUSTED, none is configured."""
    await requester(request)
    await read_json(request)
    raise no_identity_server("Binding a third-party identifier")


@routes.post("/account/3pid/unbind")
async def unbind_threepid(request: web.Request) -> web.Response:
    """POST /account/3pid/unbind: 403 M_SERVER_NOT_TRUSTED, no identity server is configured."""
    await requester(request)
    await read_json(request)
    raise no_identity_server("Unbinding a third-party identifier")


@routes.post("/account/3pid/add")
async def add_threepid(request: web.Request) -> web.Response:
    """POST /account/3pid/add: 400 M_THREEPID_MEDIUM_NOT_SUPPORTED, no medium can be
    verified here (no e-mail, SMS or identity server)."""
    await requester(request)
    await read_json(request)
    raise MatrixError("M_THREEPID_MEDIUM_NOT_SUPPORTED", f"No third-party identifier can be added: {_NO_VERIFICATION}")


@routes.post("/account/3pid/delete")
async def delete_threepid(request: web.Request) -> web.Response:
    """POST /account/3pid/delete: `medium` and `address` required; 400
    M_THREEPID_NOT_FOUND, the account has none."""
    await requester(request)
    body = await read_json(request)
    field(body, "medium", str, required=True)
    field(body, "address", str, required=True)
    raise MatrixError("M_THREEPID_NOT_FOUND", f"This account has no third-party identifiers: {_NO_VERIFICATION}")


@routes.post("/account/3pid/email/requestToken")
@routes.post("/account/3pid/msisdn/requestToken")
async def account_request_token(request: web.Request) -> web.Response:
    """POST /account/3pid/email/requestToken, POST /account/3pid/msisdn/requestToken: 400
    M_THREEPID_MEDIUM_NOT_SUPPORTED, nothing can be sent."""
    await read_json(request)
    raise MatrixError("M_THREEPID_MEDIUM_NOT_SUPPORTED", f"No validation token can be sent: {_NO_VERIFICATION}")


@routes.post("/register/email/requestToken")
@routes.post("/register/msisdn/requestToken")
@routes.post("/account/password/email/requestToken")
@routes.post("/account/password/msisdn/requestToken")
async def request_token(request: web.Request) -> web.Response:
    """POST /register/{email,msisdn}/requestToken, POST
    /account/password/{email,msisdn}/requestToken: 403 M_THREEPID_DENIED, no address can be
    used to register or reset a password here."""
    await read_json(request)
    raise MatrixError("M_THREEPID_DENIED", f"Third-party identifiers cannot be used: {_NO_VERIFICATION}")
