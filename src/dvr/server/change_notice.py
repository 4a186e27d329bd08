"""What one server process tells the others after a write commits (pure): the revision, the
hosts it concerns, the subjects of its change rows and the shared parts of host views it may
have changed (``ChangedParts``), as a PostgreSQL NOTIFY payload.

A payload is limited to 8000 bytes; when the hosts do not fit, the notice leaves them out
(and the subjects) and the receivers read both from the change rows (exact either way,
never "wake everyone"); subjects that do not fit beside the hosts are left out, and the
receivers' woken watches read their changes from the database; when the changed parts do
not fit either, the notice leaves them out too and the receivers read every part of that
revision again, as for any revision whose write they do not know.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from dvr.server.services.notify import ChangedParts, Subject

CHANNEL = "dvr_changes"
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL's limit is 8000, minus room for the channel


@dataclass(frozen=True)
class ChangeNotice:
    revision: int
    hosts: frozenset[str] | None  # None: too many to send; read them from the change rows
    changed: ChangedParts | None = None  # None: not sent; every part of it is read again
    # each host's change rows' (kind, id), in order; None: not sent (read when needed)
    subjects: tuple[Subject, ...] | None = None


def encode_notice(revision: int, hosts: Collection[str], changed: ChangedParts | None = None,
                  subjects: Collection[Subject] = ()) -> str:
    """The payload for ``revision`` concerning ``hosts``, with ``subjects`` and changing
    ``changed``: each of them when it fits (the hosts first, then the parts)."""
    parts = None if changed is None else _parts_to_json(changed)
    named = sorted(hosts)
    listed = [list(s) for s in subjects] or None
    for candidate in ({"h": named, "s": listed, "p": parts}, {"h": named, "p": parts},
                      {"p": parts}, {}):
        fields = {"r": revision, **{k: v for k, v in candidate.items() if v is not None}}
        payload = json.dumps(fields, separators=(",", ":"))
        if len(payload.encode()) <= MAX_PAYLOAD_BYTES:
            return payload
    raise AssertionError("a revision alone always fits")


def _parts_to_json(changed: ChangedParts) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "n": sorted(changed.networks), "r": sorted(changed.routers),
        "m": sorted(changed.member_sets), "f": changed.firewall, "h": changed.host_macs,
    }
    if changed.own_rows is not None:
        parts["o"] = sorted(changed.own_rows)
    return parts


def _strings(value: Any) -> frozenset[str] | None:
    """A JSON list of strings as a set; None when ``value`` is not one."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return None


def _parts_from_json(data: Any) -> ChangedParts | None:
    """The changed parts of a payload; None when absent or not well formed (read all)."""
    if not isinstance(data, dict) or not isinstance(data.get("f"), bool):
        return None
    networks, routers, members = (_strings(data.get(key)) for key in ("n", "r", "m"))
    own = _strings(data["o"]) if "o" in data else None
    if networks is None or routers is None or members is None or ("o" in data and own is None):
        return None
    host_macs = data.get("h", True)  # a sender that does not say: they may have changed
    if not isinstance(host_macs, bool):
        return None
    return ChangedParts(networks, routers, members, data["f"], own, host_macs)


def encode_credential_notice(host: str) -> str:
    """The payload telling the other processes that ``host``'s credential was rotated or
    revoked (``known_credentials``): no revision, so no change notice mistakes it."""
    return json.dumps({"c": host}, separators=(",", ":"))


def decode_credential_notice(payload: str) -> str | None:
    """The host of a credential notice; None when ``payload`` is not one."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"c"} or not isinstance(data["c"], str):
        return None
    return data["c"]


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
    changed = _parts_from_json(data.get("p"))
    if hosts is None:
        return ChangeNotice(revision, None, changed)
    named = _strings(hosts)
    if named is None:
        return None
    return ChangeNotice(revision, named, changed, _subjects(data.get("s")))


def _subjects(value: Any) -> tuple[Subject, ...] | None:
    """A JSON list of [kind, id] pairs; None when absent or not well formed."""
    if not isinstance(value, list) or not value:
        return None
    pairs = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2
                and all(isinstance(part, str) for part in item)):
            return None
        pairs.append((item[0], item[1]))
    return tuple(pairs)
