"""docs/api-coverage.md lists exactly the routes the server registers, each with the rules
its handler's docstring states."""

from __future__ import annotations

import inspect
import re

import pytest
from aiohttp.test_utils import make_mocked_request

from ranvier.api_coverage import DOC_PATH, rendered
from ranvier.server import route_tables
from ranvier.web.routing import CLIENT_PREFIX


def test_every_route_handler_states_its_route_and_rules():
    undocumented = []
    for table in route_tables():
        for route in table.entries:
            doc = inspect.getdoc(route.handler) or ""
            if route.method not in doc:
                undocumented.append(f"{route.method} {route.path} ({route.handler.__module__}.{route.handler.__name__})")
    assert not undocumented, "handlers whose docstring does not name their route: " + ", ".join(undocumented)


def test_the_page_is_what_the_route_tables_say():
    current = DOC_PATH.read_text()
    assert current == rendered(current, route_tables()), "run `python -m ranvier.api_coverage`"


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_the_server_registers_exactly_the_listed_routes(homeserver):
    """Every handler the server routes to is listed, and every listed path reaches its handler."""
    app = homeserver.app
    registered = {(route.method, route.handler) for route in app.router.routes() if route.method != "HEAD"}
    listed = set()
    for table in route_tables():
        for route in table.entries:
            listed.add((route.method, route.handler))
            for version in route.versions or (None,):
                path = route.path if version is None else f"{CLIENT_PREFIX}/{version}{route.path}"
                concrete = re.sub(r"\{[^}]+\}", "x", path)
                match = await app.router.resolve(make_mocked_request(route.method, concrete, app=app))
                assert match.handler is route.handler, f"{route.method} {concrete}"
    assert registered == listed
