"""The JSON half of the API's input boundary: request bodies in, response bodies out.

Every request body is decoded here before anything else looks at it, so what reaches the
attribute converters and the database is plain data that every backend can store and every
client can read back:

- valid UTF-8 JSON, nested at most ``MAX_DEPTH`` containers deep;
- strings (keys and values) that are valid Unicode: a lone surrogate (``"\\ud800"``, which
  JSON allows as an escape) could be stored in a JSON column but never rendered again, so
  one request would break every later list of that collection;
- numbers that are finite (no ``NaN``/``Infinity``, no ``1e400``) and integers that fit a
  signed 64-bit column.

Responses are rendered with non-ASCII characters escaped: whatever an older version stored,
a response can always be encoded.  The agents' views and watches, large and frequent, are
rendered by orjson, with the same fallback.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from starlette.responses import JSONResponse

from dvr.server.errors import NeutronError, http_bad_request
from dvr.server.serialize import to_jsonable

MAX_DEPTH = 32
INT64_MAX = 2**63 - 1


class InvalidBody(ValueError):
    """The body is not JSON we accept; the message says why."""


def _reject_constant(name: str) -> Any:
    raise InvalidBody(f"{name} is not a valid JSON number here")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidBody(f"{text} is out of range")
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise InvalidBody(f"{text} is out of range")
    return value


def has_surrogate(text: str) -> bool:
    """True when ``text`` is not valid Unicode (a lone UTF-16 surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_plain_data(data: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise InvalidBody when ``data`` nests too deep or holds a string that is not Unicode.

    Iterative, so hostile nesting cannot exhaust the interpreter's stack.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if has_surrogate(value):
                raise InvalidBody("strings must be valid Unicode (no lone surrogates)")
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                raise InvalidBody(f"JSON nested deeper than {max_depth} levels")
            if isinstance(value, dict):
                stack.extend((key, depth + 1) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


def decode_json(raw: bytes) -> Any:
    """Decode a request body or raise Neutron's 400 ``HTTPBadRequest``."""
    if not raw.strip():
        raise http_bad_request("Resource body required")
    try:
        data = json.loads(
            raw,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
        check_plain_data(data)
    except RecursionError:
        raise http_bad_request(
            f"Body contains invalid data: JSON nested deeper than {MAX_DEPTH} levels"
        ) from None
    except InvalidBody as exc:
        raise http_bad_request(f"Body contains invalid data: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise http_bad_request("Body contains invalid data") from None
    return data


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: renders any stored string, even a lone surrogate."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class FastJSONResponse(SafeJSONResponse):
    """JSON rendered by orjson, which writes dataclasses (a HostView, a delta's objects) as
    objects of their fields without converting them first: a 1,000-host view in ~0.7 ms
    instead of ~6 ms, UTF-8 as it is.  Content orjson refuses (a lone surrogate in a stored
    string) is rendered as ``SafeJSONResponse`` does."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(to_jsonable(content))


def error_response(error: NeutronError) -> SafeJSONResponse:
    return SafeJSONResponse(error.body(), status_code=error.status, headers=error.headers())
