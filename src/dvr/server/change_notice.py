"""What one server process tells the others after a write commits (pure): the revision and
the hosts it concerns, as a PostgreSQL NOTIFY payload.

A payload is limited to 8000 bytes; when the hosts do not fit, the notice carries only the
revision and the receivers read the hosts from the change rows (exact either way, never
"wake everyone").
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

CHANNEL = "dvr_changes"
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL's limit is 8000, minus room for the channel


@dataclass(frozen=True)
class ChangeNotice:
    revision: int
    hosts: frozenset[str] | None  # None: too many to send; read them from the change rows


def encode_notice(revision: int, hosts: Collection[str]) -> str:
    """The payload for ``revision`` concerning ``hosts``: the hosts when they fit."""
    payload = json.dumps({"r": revision, "h": sorted(hosts)}, separators=(",", ":"))
    if len(payload.encode()) <= MAX_PAYLOAD_BYTES:
        return payload
    return json.dumps({"r": revision}, separators=(",", ":"))


def decode_notice(payload: str) -> ChangeNotice | None:
    """The notice in ``payload``; None when it is not one (another sender on the channel)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    revision, hosts = data.get("r"), data.get("h")
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        return None
    if hosts is None:
        return ChangeNotice(revision, None)
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        return None
    return ChangeNotice(revision, frozenset(hosts))
