"""Apply a Plan through the drivers, in order, and count what was done.

Consecutive OVSDB commands go into one OVSDB transaction; each flow bundle is one atomic
OpenFlow bundle (consecutive bundles, one per bridge, are sent side by side: they touch
different switches' tables and each is all-or-nothing by itself); Linux commands run one
by one.  A failing command never stops the rest:
it is recorded, and commands that depend on a namespace or bridge whose creation failed
are skipped (the next reconcile retries all of it).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from dvr.agent.drivers.base import Drivers
from dvr.agent.reconcile.commands import (
    OVSDB_OPS,
    AddAddress,
    AddRule,
    AnnounceAddress,
    CreateNamespace,
    CreateVeth,
    CreateVethPair,
    DeleteAddress,
    DeleteBridge,
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
    ReplaceNatTable,
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
    DeleteBridge: "bridges_removed",
    CreateNamespace: "namespaces_created",
    DeleteNamespace: "namespaces_removed",
    CreateVeth: "links_created",
    CreateVethPair: "links_created",
    ReplaceNatTable: "nat_tables_set",
    AnnounceAddress: "addresses_announced",
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
    # milliseconds spent per kind of driver call ("ovsdb", "flows", "linux"), for the log
    timings: tuple[tuple[str, float], ...] = ()

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
        self.seconds: Counter[str] = Counter()

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

    def flows(self, bundles: Sequence[FlowBundle]) -> None:
        """Apply bundles of different bridges side by side; results are recorded in order."""
        runnable = [b for b in bundles if not self.blocked(b)]
        self.skipped += [b for b in bundles if self.blocked(b)]
        errors: dict[int, Exception] = {}

        def apply(index: int, bundle: FlowBundle) -> None:
            try:
                self.drivers.ovs.apply_flows(bundle)
            except Exception as error:
                errors[index] = error

        bridges = [b.bridge for b in runnable]
        if len(runnable) > 1 and len(set(bridges)) == len(bridges):
            threads = [threading.Thread(target=apply, args=(i, b), daemon=True)
                       for i, b in enumerate(runnable)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            for i, bundle in enumerate(runnable):
                apply(i, bundle)
        for i, bundle in enumerate(runnable):
            if i in errors:
                self.failed(bundle, errors[i])
                continue
            self.counts["flows_added"] += len(bundle.add)
            self.counts["flows_removed"] += len(bundle.delete)

    def linux(self, command: Op) -> None:
        if self.blocked(command) or (isinstance(command, CreateVethPair)
                                     and command.peer_namespace in self.broken_namespaces):
            self.skipped.append(command)
            return
        try:
            if isinstance(command, ReplaceNatTable):
                if self.drivers.nat is None:
                    raise RuntimeError("no NAT driver: cannot set a NAT table")
                self.drivers.nat.apply(command)
            else:
                self.drivers.linux.apply(command)  # type: ignore[arg-type]
        except Exception as error:
            self.failed(command, error)
            return
        self.counts[COUNT_KEYS[type(command)]] += 1


def execute_plan(plan: Plan, drivers: Drivers,
                 clock=time.perf_counter) -> ExecutionReport:
    run = _Run(drivers)
    batch: list[OvsdbOp] = []

    def timed(kind: str, call, *args) -> None:
        started = clock()
        call(*args)
        run.seconds[kind] += clock() - started

    bundles: list[FlowBundle] = []

    def flush() -> None:  # at most one of the two is pending
        if batch:
            timed("ovsdb", run.ovsdb, list(batch))
            batch.clear()
        if bundles:
            timed("flows", run.flows, list(bundles))
            bundles.clear()

    for command in plan:
        if isinstance(command, OVSDB_OPS):
            if bundles:
                flush()
            batch.append(command)
        elif isinstance(command, FlowBundle):
            if batch:
                flush()
            bundles.append(command)
        else:
            flush()
            timed("linux", run.linux, command)
    flush()
    counts = tuple(sorted((k, v) for k, v in run.counts.items() if v))
    timings = tuple(sorted((k, v * 1000) for k, v in run.seconds.items()))
    return ExecutionReport(counts, tuple(run.failures), tuple(run.skipped), timings)
