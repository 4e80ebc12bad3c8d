"""Talking to the draft API (/matrix/client/api/v1) in tests."""

from __future__ import annotations

from tests.conftest import Api

PREFIX = "/matrix/client/api/v1"


class DraftApi(Api):
    """The draft's requests: paths under PREFIX, the access token as a query parameter."""

    def __init__(self, api: Api) -> None:
        super().__init__(api.session, api.base_url)

    async def request(self, method: str, path: str, body=None, *, token: str | None = None, data: bytes | None = None,
                      headers: dict | None = None, params: dict | None = None) -> tuple[int, object]:
        params = dict(params or {})
        if token is not None:
            params["access_token"] = token
        return await super().request(method, PREFIX + path, body, data=data, headers=headers, params=params)

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
