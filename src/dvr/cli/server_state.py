"""A host's rebuilt desired state, asked of a running server (the I/O half of
``dvr.hoststate``, which stays pure).  Used by ``dvr flows`` and ``dvr trace``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dvr.client import ServerClient, ServerError
from dvr.hoststate import RebuiltHost, rebuild_host


def fetch_host_state(client: ServerClient, host: str,
                     bridge_mappings: Mapping[str, str] | None = None) -> RebuiltHost:
    """``rebuild_host`` over what the server gives for ``host``.

    An agent that never reported (``reported`` false, or no VIFs from a server too old to
    say), a host the server does not know (404) and a server without the endpoint (405)
    all count as no report; a host whose agent reported no VIFs has none.
    ``bridge_mappings`` stand in for the agent's when its report has none (the caller
    knows them, e.g. from a lab).
    """
    view = client.host_view(host)
    try:
        report: dict[str, Any] = client.agent_state(host) or {}
    except ServerError as exc:
        if exc.status not in (404, 405):
            raise
        report = {}
    if not report.get("bridge_mappings") and bridge_mappings:
        report = {**report, "bridge_mappings": dict(bridge_mappings)}
    reported = report.get("reported", bool(report.get("vifs")))
    return rebuild_host(view, {**report, "vifs": report.get("vifs") if reported else None})
