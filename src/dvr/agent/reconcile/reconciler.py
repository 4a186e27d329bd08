"""One reconcile pass: observe -> plan (pure) -> execute, with timings for the log line.

The caller keeps ``result.plan.basis`` and hands it to the next pass: bridges observed
through a flow mirror are then planned from what changed since (``plan.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.base import Drivers
from dvr.agent.reconcile.executor import ExecutionReport, execute_plan
from dvr.agent.reconcile.observe import (
    DEFAULT_OWNERSHIP,
    ObservedState,
    Ownership,
    observe_timed,
)
from dvr.agent.reconcile.plan import FlowBasis, Plan, plan_changes


@dataclass(frozen=True)
class ReconcileResult:
    host: str
    revision: int
    observed: ObservedState
    plan: Plan
    report: ExecutionReport
    observe_ms: float
    plan_ms: float
    apply_ms: float
    observe_parts: dict[str, float] = field(default_factory=dict)  # part -> ms

    @property
    def total_ms(self) -> float:
        return self.observe_ms + self.plan_ms + self.apply_ms

    def timings(self) -> dict[str, float]:
        """Milliseconds per phase (``observe``/``plan``/``apply``), inside ``observe`` per
        part (``observe_switch``, ``observe_kernel``, ``observe_nat``) and inside ``apply``
        per kind of driver call (``apply_ovsdb``, ``apply_flows``, ``apply_linux``)."""
        phases = {"observe": self.observe_ms, "plan": self.plan_ms, "apply": self.apply_ms}
        phases.update({f"observe_{part}": ms for part, ms in self.observe_parts.items()})
        phases.update({f"apply_{kind}": ms for kind, ms in self.report.timings})
        return phases

    def log_line(self) -> str:
        """One structured line: what changed and how long it took."""
        return (
            f"reconcile host={self.host} revision={self.revision} commands={len(self.plan)} "
            f"{self.report.log_fields()} observe_ms={self.observe_ms:.1f} "
            f"plan_ms={self.plan_ms:.1f} apply_ms={self.apply_ms:.1f} "
            f"ms={self.total_ms:.1f} flow_plan={self.flow_planning()}"
        )

    def flow_planning(self) -> str:
        """How the bridges' flows were planned: "incremental" (every bridge from the
        previous basis), "full" (none), "mixed", or "dumped" (no flow mirror)."""
        kinds = {b.incremental for b in self.plan.basis.values()}
        if not kinds:
            return "dumped"
        if len(kinds) > 1:
            return "mixed"
        return "incremental" if kinds.pop() else "full"


def reconcile(
    desired: DesiredState,
    drivers: Drivers,
    ownership: Ownership = DEFAULT_OWNERSHIP,
    clock: Callable[[], float] = time.monotonic,
    basis: FlowBasis | None = None,
) -> ReconcileResult:
    """One pass; ``basis``: the previous pass's ``plan.basis`` (None: plan in full)."""
    started = clock()
    observed, observe_parts = observe_timed(drivers, desired, ownership)
    observed_at = clock()
    plan = plan_changes(desired, observed, ownership, basis)
    planned_at = clock()
    report = execute_plan(plan, drivers)
    done = clock()
    return ReconcileResult(
        host=desired.host,
        revision=desired.revision,
        observed=observed,
        plan=plan,
        report=report,
        observe_ms=(observed_at - started) * 1000,
        plan_ms=(planned_at - observed_at) * 1000,
        apply_ms=(done - planned_at) * 1000,
        observe_parts=observe_parts,
    )
