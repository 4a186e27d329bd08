"""Run the reconciler *inside* a lab host, with the real drivers, on a given DesiredState.

The Linux driver must run in the host's network and mount namespaces (its private
``/run/netns``), exactly as the agent does; so this module is both a tiny program
(``python -m dvr.lab.inhost reconcile|plan|observe --rundir DIR`` reading a DesiredState as
JSON on stdin and printing JSON) and the functions that start it through
``HostEnv.command``.  Used by the integration tests and handy for poking at a lab host.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from dvr.agent.desired.state import DesiredState, Flow
from dvr.agent.drivers.base import Drivers
from dvr.agent.drivers.linux import LinuxConfig, LinuxDriver
from dvr.agent.drivers.nft import NftDriver
from dvr.agent.drivers.ovs import OvsConfig, OvsDriver
from dvr.agent.reconcile.commands import Op
from dvr.agent.reconcile.observe import ObservedState, observe
from dvr.agent.reconcile.plan import Plan, plan_changes
from dvr.agent.reconcile.reconciler import reconcile
from dvr.lab.codec import decode, from_jsonable, to_jsonable
from dvr.lab.hostenv import HostEnv, HostEnvError


@dataclass(frozen=True)
class InHostResult:
    log_line: str
    counts: dict[str, int]
    failures: tuple[str, ...]
    plan: Plan


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvr.lab.inhost")
    parser.add_argument("action", choices=("reconcile", "plan", "observe"))
    parser.add_argument("--rundir", required=True, help="the host's OVS_RUNDIR")
    parser.add_argument("--netns-dir", default="/run/netns")
    args = parser.parse_args(argv)
    desired = decode(json.load(sys.stdin), DesiredState)
    ovs = OvsDriver(OvsConfig.for_rundir(args.rundir))
    drivers = Drivers(ovs=ovs, linux=LinuxDriver(LinuxConfig(Path(args.netns_dir))),
                      nat=NftDriver(Path(args.netns_dir)))
    try:
        if args.action == "observe":
            out = to_jsonable(observe(drivers, desired))
        elif args.action == "plan":
            out = to_jsonable(plan_changes(desired, observe(drivers, desired)))
        else:
            result = reconcile(desired, drivers)
            out = {
                "log_line": result.log_line(),
                "counts": result.report.as_dict(),
                "failures": [str(f) for f in result.report.failures],
                "plan": to_jsonable(result.plan),
            }
    finally:
        ovs.close()
    json.dump(out, sys.stdout)
    return 0


def _run(host: HostEnv, action: str, desired: DesiredState, timeout: float) -> object:
    argv = [sys.executable, "-m", "dvr.lab.inhost", action, "--rundir", str(host.rundir)]
    result = host.run(argv, input=json.dumps(to_jsonable(desired)), check=False,
                      timeout=timeout)
    if result.returncode != 0:
        raise HostEnvError(f"[{host.name}] inhost {action} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _plan(data: dict) -> Plan:
    return Plan(from_jsonable(data["commands"], tuple[Op, ...]),
                from_jsonable(data["deferred"], tuple[Flow, ...]))


def reconcile_in_host(host: HostEnv, desired: DesiredState,
                      timeout: float = 120.0) -> InHostResult:
    data = _run(host, "reconcile", desired, timeout)
    return InHostResult(data["log_line"], data["counts"], tuple(data["failures"]),
                        _plan(data["plan"]))


def plan_in_host(host: HostEnv, desired: DesiredState, timeout: float = 60.0) -> Plan:
    return _plan(_run(host, "plan", desired, timeout))


def observe_in_host(host: HostEnv, desired: DesiredState,
                    timeout: float = 60.0) -> ObservedState:
    return decode(_run(host, "observe", desired, timeout), ObservedState)


if __name__ == "__main__":
    sys.exit(_main())
