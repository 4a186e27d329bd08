"""Apply a Plan through the drivers, in order, and count what was done.

Consecutive OVSDB commands go into one OVSDB transaction; each flow bundle is one atomic
OpenFlow bundle; Linux commands run one by one.  A failing command never stops the rest:
it is recorded, and commands that depend on a namespace or bridge whose creation failed
are skipped (the next reconcile retries all of it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from dvr.agent.drivers.base import Drivers
from dvr.agent.drivers.ops import (
    OVSDB_OPS,
    AddAddress,
    AddRule,
    CreateNamespace,
    CreateVeth,
    DeleteAddress,
    DeleteLink,
    DeleteNamespace,
    DeleteNeighbor,
    DeletePort,
    DeleteRoute,
    DeleteRule,
    EnsureBridge,
    EnsurePort,
    FlowBundle,
    Op,
    OvsdbOp,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
    SetPortTag,
    SetSysctl,
    SetTxChecksumming,
)
from dvr.agent.reconcile.plan import Plan

COUNT_KEYS: dict[type, str] = {
    EnsureBridge: "bridges_ensured",
    EnsurePort: "ports_ensured",
    SetPortTag: "port_tags_set",
    DeletePort: "ports_removed",
    CreateNamespace: "namespaces_created",
    DeleteNamespace: "namespaces_removed",
    CreateVeth: "links_created",
    SetLink: "links_updated",
    DeleteLink: "links_removed",
    SetTxChecksumming: "tx_offload_set",
    SetSysctl: "sysctls_set",
    AddAddress: "addresses_added",
    DeleteAddress: "addresses_removed",
    ReplaceRoute: "routes_set",
    DeleteRoute: "routes_removed",
    AddRule: "rules_added",
    DeleteRule: "rules_removed",
    ReplaceNeighbor: "neighbors_set",
    DeleteNeighbor: "neighbors_removed",
}


@dataclass(frozen=True)
class CommandFailure:
    command: Op
    error: str

    def __str__(self) -> str:
        return f"{self.command!r}: {self.error}"


@dataclass(frozen=True)
class ExecutionReport:
    counts: tuple[tuple[str, int], ...]  # sorted by key; only non-zero counts
    failures: tuple[CommandFailure, ...] = ()
    skipped: tuple[Op, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures and not self.skipped

    def count(self, key: str) -> int:
        return dict(self.counts).get(key, 0)

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)

    def log_fields(self) -> str:
        """``key=value`` pairs for the one-line reconcile log."""
        fields = [f"{key}={value}" for key, value in self.counts]
        fields.append(f"failures={len(self.failures)}")
        if self.skipped:
            fields.append(f"skipped={len(self.skipped)}")
        return " ".join(fields)


def _namespace_of(command: Op) -> str | None:
    if isinstance(command, (CreateNamespace, DeleteNamespace)):
        return None
    return getattr(command, "namespace", None)


def _bridge_of(command: Op) -> str | None:
    if isinstance(command, EnsureBridge):
        return None
    return getattr(command, "bridge", None)


class _Run:
    def __init__(self, drivers: Drivers):
        self.drivers = drivers
        self.counts: Counter[str] = Counter()
        self.failures: list[CommandFailure] = []
        self.skipped: list[Op] = []
        self.broken_namespaces: set[str] = set()
        self.broken_bridges: set[str] = set()

    def blocked(self, command: Op) -> bool:
        return (_namespace_of(command) in self.broken_namespaces
                or _bridge_of(command) in self.broken_bridges)

    def failed(self, command: Op, error: Exception) -> None:
        self.failures.append(CommandFailure(command, f"{type(error).__name__}: {error}"))
        if isinstance(command, CreateNamespace):
            self.broken_namespaces.add(command.name)
        if isinstance(command, EnsureBridge):
            self.broken_bridges.add(command.name)

    def ovsdb(self, batch: Sequence[OvsdbOp]) -> None:
        runnable = [c for c in batch if not self.blocked(c)]
        self.skipped += [c for c in batch if self.blocked(c)]
        if not runnable:
            return
        try:
            self.drivers.ovs.transact(runnable)
        except Exception as error:  # the whole transaction failed: every command in it
            for command in runnable:
                self.failed(command, error)
            return
        for command in runnable:
            self.counts[COUNT_KEYS[type(command)]] += 1

    def flows(self, bundle: FlowBundle) -> None:
        if self.blocked(bundle):
            self.skipped.append(bundle)
            return
        try:
            self.drivers.ovs.apply_flows(bundle)
        except Exception as error:
            self.failed(bundle, error)
            return
        self.counts["flows_added"] += len(bundle.add)
        self.counts["flows_removed"] += len(bundle.delete)

    def linux(self, command: Op) -> None:
        if self.blocked(command):
            self.skipped.append(command)
            return
        try:
            self.drivers.linux.apply(command)  # type: ignore[arg-type]
        except Exception as error:
            self.failed(command, error)
            return
        self.counts[COUNT_KEYS[type(command)]] += 1


def execute_plan(plan: Plan, drivers: Drivers) -> ExecutionReport:
    run = _Run(drivers)
    batch: list[OvsdbOp] = []
    for command in plan:
        if isinstance(command, OVSDB_OPS):
            batch.append(command)
            continue
        if batch:
            run.ovsdb(batch)
            batch = []
        if isinstance(command, FlowBundle):
            run.flows(command)
        else:
            run.linux(command)
    if batch:
        run.ovsdb(batch)
    counts = tuple(sorted((k, v) for k, v in run.counts.items() if v))
    return ExecutionReport(counts, tuple(run.failures), tuple(run.skipped))
