"""Numbers and revisions in a request's query string, checked: bad input is a
Neutron-shaped 400 wherever it is read (a route, or a middleware before it)."""

from __future__ import annotations

import math
import re

from starlette.requests import HTTPConnection

from dvr.server.errors import http_bad_request


def number_param(request: HTTPConnection, key: str, default: float) -> float:
    """A finite, non-negative number from the query string (``default`` when absent)."""
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
    except ValueError:
        raise http_bad_request(
            f"Invalid input for {key}. Reason: '{raw}' is not a number."
        ) from None
    if value < 0:
        raise http_bad_request(f"Invalid input for {key}. Reason: must not be negative.")
    return value


def revision_param(request: HTTPConnection, key: str) -> int | None:
    """A revision from the query string (None when absent): at most 18 ASCII digits."""
    raw = request.query_params.get(key)
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", raw):
        raise http_bad_request(f"Invalid input for {key}. Reason: '{raw}' is not a revision.")
    return int(raw)
