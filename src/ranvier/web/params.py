"""Typed access to JSON body fields and query parameters.

A missing required field is M_MISSING_PARAM, a field of the wrong JSON type M_BAD_JSON,
a query parameter that does not parse M_INVALID_PARAM: one rule for every endpoint.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web

from ranvier.errors import MatrixError

T = TypeVar("T")
_MISSING = object()

_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object", list: "an array"}


def field(body: dict[str, Any], name: str, kind: type[T], *, required: bool = False, default: Any = None) -> T | Any:
    """Read `body[name]` checking its JSON type; null counts as absent."""
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise MatrixError("M_MISSING_PARAM", f"Missing required field: {name}")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MatrixError("M_BAD_JSON", f"Field {name} must be {_TYPE_NAMES.get(kind, kind.__name__)}")
    return value


def query_str(request: web.Request, name: str, *, required: bool = False, default: str | None = None) -> str | None:
    value = request.query.get(name)
    if value is None:
        if required:
            raise MatrixError("M_MISSING_PARAM", f"Missing required query parameter: {name}")
        return default
    return value


def query_int(request: web.Request, name: str, default: int, *, minimum: int = 0, maximum: int = 2**31) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", f"Query parameter {name} must be an integer") from None
    if not minimum <= number <= maximum:
        raise MatrixError("M_INVALID_PARAM", f"Query parameter {name} must be between {minimum} and {maximum}")
    return number


def query_bool(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise MatrixError("M_INVALID_PARAM", f"Query parameter {name} must be true or false")
