"""Heartbeats in the database: what one heartbeat body says (validated), the write of the
heartbeats whose reports changed (together, in a few statements), and the batched flush of
the ones kept in memory (``dvr.server.liveness``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from dvr.db.tables import agents, dvr_hosts, ports
from dvr.model.hostview import LAYOUT_CHOICES, OWNER_ROUTER_INTERFACE_DISTRIBUTED
from dvr.server.errors import NeutronError, NotFoundError, invalid_input
from dvr.server.liveness import (
    AgentReport,
    Heartbeat,
    UnflushedHeartbeat,
    freeze_dataplane,
    thaw_dataplane,
)
from dvr.server.services import ports as port_service
from dvr.server.services.common import in_ids
from dvr.server.services.routers import schedule_pending
from dvr.server.services.scheduler import alive_since
from dvr.server.tx import ReadTx, WriteTx


# -- reading a heartbeat body (pure) ------------------------------------------------------------
def parse_heartbeat(host: str, body: dict[str, Any], now: datetime) -> Heartbeat:
    applied = body.get("applied_revision")
    if applied is not None and (
        isinstance(applied, bool) or not isinstance(applied, int) or not 0 <= applied < 2**62
    ):
        raise invalid_input("applied_revision must be a non-negative integer")
    report = AgentReport(
        ports_up=frozenset(_id_list(body, "ports_up")),
        ports_down=frozenset(_id_list(body, "ports_down")),
        dataplane=freeze_dataplane(_dataplane_report(body)),
    )
    return Heartbeat(host=host, seen_at=now, applied_revision=applied, report=report)


def _id_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_input(f"{key} must be a list of port ids")
    return value


def _dataplane_report(body: dict[str, Any]) -> dict[str, Any] | None:
    """The dataplane facts an agent reports (None: this heartbeat reports none)."""
    if "vifs" not in body and "local_vlans" not in body:
        return None
    vifs = body.get("vifs") or {}
    vlans = body.get("local_vlans") or {}
    if not isinstance(vifs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in vifs.items()
    ):
        raise invalid_input("vifs must map port ids to OVS port names")
    if not isinstance(vlans, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 < v < 4095
        for k, v in vlans.items()
    ):
        raise invalid_input("local_vlans must map network ids to VLAN ids 1-4094")
    report: dict[str, Any] = {"vifs": vifs, "local_vlans": vlans}
    mappings = body.get("bridge_mappings")
    if mappings is not None:
        if not isinstance(mappings, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in mappings.items()
        ):
            raise invalid_input("bridge_mappings must map physical networks to bridge names")
        report["bridge_mappings"] = mappings
    for name, (choices, _default) in LAYOUT_CHOICES.items():
        value = body.get(name)
        if value is not None:
            if value not in choices:
                raise invalid_input(f"{name} must be one of {', '.join(choices)}")
            report[name] = value
    return report


# -- the database ---------------------------------------------------------------------------------
def require_host(tx: ReadTx, host: str) -> Any:
    row = tx.conn.execute(select(dvr_hosts).where(dvr_hosts.c.host == host)).first()
    if row is None:
        raise _not_registered(host)
    return row


def write_heartbeats(
    tx: WriteTx, beats: list[Heartbeat]
) -> list[tuple[dict[str, Any], int] | NeutronError]:
    """Write ``beats`` (liveness, applied revision, the dataplane report, port status) in
    this one transaction, as if one after the other, in a few statements whatever their
    number.  Each gets its answer and the applied revision stored, in order; a beat of a
    host that is not registered gets its 404 in its place and writes nothing."""
    known = _registered(tx, {beat.host for beat in beats})
    since = alive_since(tx.now, tx.config.agent_down_time)
    hosts: dict[str, dict[str, Any]] = {}  # host -> its row's values after its last beat
    came_alive = False
    applied_revisions: list[int | None] = []
    for beat in beats:
        row = known.get(beat.host)
        if row is None:
            applied_revisions.append(None)
            continue
        stored = hosts.get(beat.host)
        seen, applied_before = (row.heartbeat_at, row.applied_revision) if stored is None \
            else (stored["heartbeat_at"], stored["applied_revision"])
        was_alive = tx.liveness.last_seen(beat.host, seen) >= since
        came_alive |= not was_alive and row.agent_mode in ("dvr_snat", "legacy")
        applied = beat.applied_revision
        if applied is None:
            applied = tx.liveness.newest_applied(beat.host, applied_before, seen)
        values = hosts.setdefault(beat.host, {"agent_report": None})
        values.update(heartbeat_at=beat.seen_at, applied_revision=applied)
        if beat.report.dataplane is not None:
            values["agent_report"] = thaw_dataplane(beat.report.dataplane)
        applied_revisions.append(applied)
    if hosts:
        _store_liveness(tx, hosts)
        bind_waiting_ports(tx, sorted(hosts))
    bound = _bound_ports(tx, beats, known)
    statuses: dict[str, str] = {}  # port id -> the status its last beat reported
    results: list[tuple[dict[str, Any], int] | NeutronError] = []
    for beat, applied in zip(beats, applied_revisions, strict=True):
        if applied is None:
            results.append(_not_registered(beat.host))
            continue
        up = [p for p in sorted(beat.report.ports_up) if bound.get(p) == beat.host]
        down = [p for p in sorted(beat.report.ports_down) if bound.get(p) == beat.host]
        statuses.update(dict.fromkeys(up, "ACTIVE"))
        statuses.update(dict.fromkeys(down, "DOWN"))
        results.append(({"host": beat.host, "alive": True, "ports_up": up, "ports_down": down},
                         applied))
    for status in ("ACTIVE", "DOWN"):
        port_service.set_bound_status(tx, [p for p, s in statuses.items() if s == status],
                                      status)
    if came_alive:
        schedule_pending(tx)
    return results


def _registered(tx: WriteTx, hosts: set[str]) -> dict[str, Any]:
    query = select(dvr_hosts).where(in_ids(tx.conn, dvr_hosts.c.host, sorted(hosts)))
    return {row.host: row for row in tx.conn.execute(query)}


def _not_registered(host: str) -> NotFoundError:
    return NotFoundError(
        f"Agent with host={host} could not be found: register it first (POST /dvr/v1/agents).",
        type_name="AgentNotFoundByTypeHost",
    )


def _store_liveness(tx: WriteTx, hosts: dict[str, dict[str, Any]]) -> None:
    """Each host's heartbeat time and applied revision (and its report, when it sent one)."""
    for with_report in (False, True):
        rows = [{"h": host, "t": v["heartbeat_at"], "r": v["applied_revision"],
                 "a": v["agent_report"]}
                for host, v in sorted(hosts.items())
                if with_report == (v["agent_report"] is not None)]
        if not rows:
            continue
        values: dict[str, Any] = {"heartbeat_at": bindparam("t"),
                                  "applied_revision": bindparam("r")}
        if with_report:
            values["agent_report"] = bindparam("a")
        tx.conn.execute(update(dvr_hosts).where(dvr_hosts.c.host == bindparam("h"))
                        .values(**values), rows)
    tx.conn.execute(
        update(agents).where(agents.c.host == bindparam("h"))
        .values(heartbeat_timestamp=bindparam("t")),
        [{"h": host, "t": v["heartbeat_at"]} for host, v in sorted(hosts.items())],
    )


def _bound_ports(tx: WriteTx, beats: list[Heartbeat], known: dict[str, Any]) -> dict[str, str]:
    """The host each port the beats of registered hosts name is bound to."""
    named = sorted({p for b in beats if b.host in known
                    for p in b.report.ports_up | b.report.ports_down})
    if not named:
        return {}
    query = select(ports.c.id, ports.c.host).where(in_ids(tx.conn, ports.c.id, named))
    return {row.id: row.host for row in tx.conn.execute(query)}


def bind_waiting_ports(tx: WriteTx, hosts: list[str]) -> None:
    """A live agent binds the ports waiting on its host (vif_type "ovs")."""
    tx.conn.execute(
        update(ports)
        .where(
            in_ids(tx.conn, ports.c.host, hosts),
            ports.c.vif_type.in_(("unbound", "binding_failed")),
            ports.c.device_owner != OWNER_ROUTER_INTERFACE_DISTRIBUTED,
        )
        .values(vif_type="ovs")
    )


def flush_heartbeats(tx: WriteTx, beats: list[UnflushedHeartbeat]) -> set[str]:
    """Write the heartbeats kept in memory in one transaction of a few statements: liveness
    and applied revision (never moving a host's heartbeat back: another server process may
    have written a newer one), waiting ports bound, and the port status each agent claims
    re-asserted (a port moved away and back meanwhile was reset to DOWN).  Returns the hosts
    no longer registered."""
    hosts = [b.host for b in beats]
    query = select(dvr_hosts.c.host).where(in_ids(tx.conn, dvr_hosts.c.host, hosts))
    known = {row[0] for row in tx.conn.execute(query)}
    live = [b for b in beats if b.host in known]
    if not live:
        return set(hosts) - known
    tx.conn.execute(
        update(dvr_hosts)
        .where(dvr_hosts.c.host == bindparam("h"), dvr_hosts.c.heartbeat_at <= bindparam("t"))
        .values(heartbeat_at=bindparam("t"), applied_revision=bindparam("r")),
        [{"h": b.host, "t": b.seen_at, "r": b.applied_revision} for b in live],
    )
    tx.conn.execute(
        update(agents)
        .where(agents.c.host == bindparam("h"), agents.c.heartbeat_timestamp < bindparam("t"))
        .values(heartbeat_timestamp=bindparam("t")),
        [{"h": b.host, "t": b.seen_at} for b in live],
    )
    bind_waiting_ports(tx, sorted(known))
    claims = [
        {"p": port, "h": b.host, "s": status} for b in live for port, status in b.claims.items()
    ]
    if claims:
        tx.conn.execute(
            update(ports)
            .where(
                ports.c.id == bindparam("p"),
                ports.c.host == bindparam("h"),
                ports.c.status != bindparam("s"),
            )
            .values(
                status=bindparam("s"),
                updated_at=tx.now,
                revision_number=ports.c.revision_number + 1,
            ),
            claims,
        )
    return set(hosts) - known
