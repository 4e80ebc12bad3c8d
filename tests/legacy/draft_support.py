"""Talking to the draft API (/matrix/client/api/v1) in tests."""

from __future__ import annotations

PREFIX = "/matrix/client/api/v1"


class DraftApi:
    """The draft's requests: paths under PREFIX, the access token as a query parameter."""

    def __init__(self, api) -> None:
        self.api = api

    async def request(self, method: str, path: str, body=None, *, token: str | None = None,
                      params: dict | None = None, data: bytes | None = None) -> tuple[int, object]:
        params = dict(params or {})
        if token is not None:
            params["access_token"] = token
        return await self.api.request(method, PREFIX + path, body, data=data, params=params)

    async def get(self, path, **kw):
        return await self.request("GET", path, **kw)

    async def post(self, path, body=None, **kw):
        return await self.request("POST", path, body, **kw)

    async def put(self, path, body=None, **kw):
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path, **kw):
        return await self.request("DELETE", path, **kw)

    async def register(self, user_id: str | None = None, password: str | None = None) -> tuple[str, str]:
        """(user_id, access_token) of a new account; the server picks the ID when none is given."""
        body = {} if user_id is None else {"user_id": user_id}
        if password is not None:
            body["password"] = password
        status, result = await self.post("/register", body)
        assert status == 200, result
        return result["user_id"], result["access_token"]

    async def ok(self, method: str, path: str, body=None, *, token: str, params: dict | None = None):
        """A request that must succeed; returns its body."""
        status, result = await self.request(method, path, body, token=token, params=params)
        assert status == 200, (method, path, status, result)
        return result
