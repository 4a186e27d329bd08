"""`make bench-scale HOSTS=N`: the control plane with N simulated hosts (issue 14).

The real dvr-server (K processes on one database with ``--servers K``: PostgreSQL only),
a real database (SQLite or a private PostgreSQL cluster with its durable defaults), the
scale scenario of bench/bench_server.py's ``populate()`` (N hosts, 10 of them `dvr_snat`,
distributed routers each on two tenant networks, VM ports, floating IPs) plus network
``span`` with a VM port on every host.  Each host is the real agent loop
(bench/bench_scale_agents.py), many per worker process, split round-robin over the servers,
authenticated as a real fleet's agents are, each with its own host credential (minted
before the clock starts; ``--credentials admin``: all with the admin token, as before
2026-12-04 19:00, which skips the servers' credential lookups),
with the real ``HostDataplane`` on the fake drivers (``--agents full``, the default up to
300 hosts) or with a dataplane that takes each view as applied (``--agents loop``, the
default above: the control plane alone, the simulated hosts' own computes no longer
starving the machine's cores).  Measured, in this order:

1. sync_all_s: every agent started at once, until each has applied its first view (from
   the moment the worker processes, their interpreters started and modules imported, start
   their agents together; the workers' own start is ``workers_started_s``);
2. idle_server_cpu: the servers' CPU (cores) while all are attached and nothing changes;
3. fanout_small / fanout_big: a port created (then deleted) on a tenant network (~12 hosts)
   or on ``span`` (every host); from the API call until the last host whose view changed has
   applied it (p50/p99 over the creations); notification precision and recall over every
   change: hosts woken vs hosts whose view changed (a woken host's agent says whether its
   view's contents changed; hosts not woken are asked whether the server's view differs
   from the one they hold: all of them up to --check-all hosts, else a sample);
4. restart_resync_s: every server stopped and started again, until every agent is in sync
   again (from the stop): it applied a view, or its watch, failed by the restart, caught up
   at once with nothing missed (the server's change log says its view is current);
5. a final check that every agent (or a sample) holds the server's view; every timeout,
   5xx and connection error of the agents' requests, by phase;
6. with the agents stopped: what a real host's reconcile adds to each latency figure, the
   full ``HostDataplane`` on a sample of hosts' views (bench/bench_scale_compute.py).

    .venv/bin/python bench/bench_scale.py --hosts 100
    .venv/bin/python bench/bench_scale.py --hosts 300 --backend postgresql --servers 2
    .venv/bin/python bench/bench_scale.py --hosts 1000 --agents loop
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scale_changes import change_summary, notification, port_changes  # noqa: E402
from bench_scale_compute import host_compute, with_host_compute  # noqa: E402
from bench_scale_fleet import Applied, Events, Fleet, ServerProcess  # noqa: E402
from bench_scale_report import run_keys, section  # noqa: E402
from benchlib import load_average, machine, percentile  # noqa: E402

from dvr.agent.config import AgentConfig  # noqa: E402

BACKENDS = ("sqlite", "postgresql")
AGENTS = ("auto", "full", "loop")
FULL_AGENTS_UP_TO = 300  # hosts: above, the simulated hosts' computes would starve 2 cores
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"
TARGETS = {  # results.json key (without the _N suffix) -> (comparison, target)
    "sync_all_s": ("<", 30), "restart_resync_s": ("<", 30),
    "fanout_small_p99_s": ("<", 0.5), "fanout_big_p99_s": ("<", 2),
    "notify_precision": ("=", 1.0), "notify_recall": ("=", 1.0),
    "idle_server_cpu": ("<", 0.2), "timeouts": ("=", 0), "errors_5xx": ("=", 0),
}


def scenario_size(hosts: int) -> dict[str, int]:
    """populate()'s sizes for N hosts: the issue's cloud (500 routers, 5,000 VM ports,
    1,000 floating IPs) from 100 hosts on, a proportionally smaller one below."""
    routers = min(500, 5 * hosts)
    return {"hosts": hosts, "snat_hosts": max(1, min(10, hosts // 10)), "routers": routers,
            "ports": 10 * routers, "fips": 2 * routers}


def files_needed(hosts: int, servers: int) -> int:
    """Open files one server process needs: two sockets per agent it serves (the watch's
    long poll and the loop's requests), and some to spare (database, logs, the API)."""
    return 2 * math.ceil(hosts / servers) + 256


def agent_kind(requested: str, hosts: int) -> str:
    """``--agents``: full or loop as asked; ``auto``: full up to ``FULL_AGENTS_UP_TO`` hosts,
    loop above."""
    if requested != "auto":
        return requested
    return "full" if hosts <= FULL_AGENTS_UP_TO else "loop"


# -- the database -------------------------------------------------------------------------
def database_url(backend: str, workdir: Path, stack: contextlib.ExitStack) -> str:
    """A fresh, empty database; a PostgreSQL cluster is stopped when ``stack`` closes."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'scale.db'}"
    sys.path.insert(0, str(HERE.parent / "tests"))
    import pg  # tests/pg.py: a private cluster
    import sqlalchemy as sa

    reason = pg.unavailable_reason()
    if reason:
        raise RuntimeError(f"PostgreSQL: {reason}")
    cluster = pg.start_cluster(durable=True)
    stack.callback(cluster.stop)
    admin = sa.create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE scale")
    admin.dispose()
    return cluster.url("scale")


def prepare(db_url: str, hosts: int) -> tuple[dict[str, int], list[tuple[str, str, str]],
                                                 dict[str, Any]]:
    """populate() plus ``span``; the revision moved past 0 (which a view request reads as
    "holds no view"); the hosts (name, mode, tunnel IP) and the networks the changes use."""
    from bench_server import populate
    from sqlalchemy import text

    from dvr.db.session import Database

    scale = populate(db_url, **scenario_size(hosts), span_network=True)
    database = Database.from_url(db_url)
    with database.write() as conn:
        conn.execute(text("UPDATE server_state SET revision = revision + 1 WHERE id = 1"))
    with database.read() as conn:
        rows = [tuple(r) for r in conn.execute(text(
            "SELECT host, agent_mode, tunnel_ip FROM dvr_hosts ORDER BY host"))]
        networks = dict(conn.execute(text("SELECT name, id FROM networks")).all())
    database.dispose()
    return scale, rows, networks


# -- phases --------------------------------------------------------------------------------
def first_applied_after(events: Events, hosts: list[str], since: float,
                        caught_up: bool = False) -> dict[str, Applied]:
    """Each host's first view applied at or after ``since``; with ``caught_up``, a watch
    that caught up with nothing missed (after a failed one) counts as being in sync too."""
    def seen(host: str) -> list[Applied]:
        return [a for a in events.applied[host] + (events.caught_up[host] if caught_up else [])
                if a.t >= since]

    with events.cond:
        return {h: min(seen(h), key=lambda a: a.t) for h in hosts if seen(h)}


def resync_figures(first: dict[str, Applied], since: float, complete: bool) -> dict[str, Any]:
    """Until the last host applied its view (None unless ``complete``), when the last had
    received it, and the median host."""
    return {"seconds": max(a.t for a in first.values()) - since if complete else None,
            "received_s": max(a.received for a in first.values()) - since if complete else None,
            "p50_s": percentile([a.t - since for a in first.values()], 50)}


def all_applied_after(events: Events, hosts: list[str], since: float, timeout: float,
                      caught_up: bool = False) -> bool:
    def in_sync(host: str) -> bool:
        return any(a.t >= since for a in events.applied[host]) or (
            caught_up and any(a.t >= since for a in events.caught_up[host]))

    return events.wait_for(lambda: all(in_sync(h) for h in hosts), timeout)


# the loop's log line; a dataplane with no timings of its own (``--agents loop``) puts the
# whole reconcile's ``ms=`` right after ``fetch_ms=``
RECONCILE_LINE = re.compile(
    r" reconcile host=\S+ .*view=([\w-]+) .*fetch_ms=([\d.]+) (?:.* )?ms=([\d.]+)")


def reconcile_timings(logs: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """From the agents' log lines: per view kind (full, delta), how many reconciles and the
    median / p99 of their fetch and of the whole reconcile (ms)."""
    by_kind: dict[str, tuple[list[float], list[float]]] = {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            found = RECONCILE_LINE.search(line)
            if found:
                fetch, whole = by_kind.setdefault(found[1], ([], []))
                fetch.append(float(found[2]))
                whole.append(float(found[3]))
    return {kind: {"n": len(whole), "fetch_ms_p50": percentile(fetch, 50),
                   "fetch_ms_p99": percentile(fetch, 99), "ms_p50": percentile(whole, 50),
                   "ms_p99": percentile(whole, 99)}
            for kind, (fetch, whole) in by_kind.items()}


def servers_cpu(servers: list[ServerProcess]) -> float:
    return sum(s.cpu_seconds() for s in servers)


def errors_by_phase(events: Events, phases: list[tuple[str, float]]) -> dict[str, dict]:
    """The agents' failed requests by kind (and status), in the phase (name, start) they
    fell in."""
    counts: dict[str, dict[str, int]] = {}
    with events.cond:
        errors = list(events.errors)
    for error in errors:
        phase = next((name for name, start in reversed(phases) if error["t"] >= start),
                     phases[0][0])
        kinds = counts.setdefault(phase, {})
        label = error["kind"] + (f" {error['status']}" if error["status"] else "")
        if error.get("request"):
            label += f" ({error['request']})"
        kinds[label] = kinds.get(label, 0) + 1
    return counts


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Every phase; the report (what results.json keeps of it, plus ``changes``)."""
    rng = random.Random(args.seed)
    n = args.hosts
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
        "commit": commit(), "machine": machine(), "hosts": n, "backend": args.backend,
        "servers": args.servers, "agents_kind": agent_kind(args.agents, n), "load": {}}
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="dvr-bench-scale-"))
        if not args.keep_workdir:
            stack.callback(shutil.rmtree, workdir, True)
        report["load"]["start"] = load_average()
        started = time.monotonic()
        db_url = database_url(args.backend, workdir, stack)
        scale, host_rows, networks = prepare(db_url, n)
        print(f"workdir: {workdir}", flush=True)
        report["scenario"] = {**scale, "span_network_hosts": len(host_rows),
                              "populate_s": time.monotonic() - started}
        print(f"scenario: {json.dumps(report['scenario'])}", flush=True)
        servers = [ServerProcess(db_url, workdir) for _ in range(args.servers)]
        for server in servers:
            stack.callback(server.stop)
            server.start()
        token = (workdir / "admin-token").read_text().strip()
        url = servers[0].url
        specs = [{"host": host, "mode": mode, "local_ip": ip,
                  "server": servers[i % len(servers)].url}
                 for i, (host, mode, ip) in enumerate(host_rows)]
        report["credentials"] = args.credentials
        if args.credentials == "host":
            mint_credentials(url, token, specs)
        hosts = [s["host"] for s in specs]
        processes = args.agent_processes or max(2, min(8, math.ceil(n / 125)))

        # 1. every agent at once
        report["load"]["sync_all"] = load_average()
        spawned = time.time()
        fleet = Fleet(specs, processes, workdir / "admin-token", workdir,
                      args.heartbeat_interval, report["agents_kind"])
        stack.callback(fleet.stop)
        events = fleet.events
        cpu = servers_cpu(servers)
        t0 = fleet.start(args.phase_timeout)
        agents_cpu = fleet.cpu_seconds()
        phases = [("sync_all", t0)]
        synced = all_applied_after(events, hosts, 0, args.phase_timeout)
        first = first_applied_after(events, hosts, 0)
        report["sync_all"] = {
            "agent_processes": processes, "workers_started_s": t0 - spawned,
            "synced": len(first), "of": n,
            **resync_figures(first, t0, synced), "server_cpu_s": servers_cpu(servers) - cpu,
            "agents_cpu_s": fleet.cpu_seconds() - agents_cpu}
        print(f"sync_all: {json.dumps(report['sync_all'])}", flush=True)
        events.wait_quiet(args.quiet * 2, args.phase_timeout)

        # 2. idle
        report["load"]["idle"] = load_average()
        phases.append(("idle", time.time()))
        with events.cond:
            applied_before = sum(len(v) for v in events.applied.values())
        cpu, agents_cpu, t = servers_cpu(servers), fleet.cpu_seconds(), time.monotonic()
        time.sleep(args.idle_seconds)
        elapsed = time.monotonic() - t
        with events.cond:
            applied_during = sum(len(v) for v in events.applied.values()) - applied_before
        report["idle"] = {"seconds": elapsed,
                          "server_cores": (servers_cpu(servers) - cpu) / elapsed,
                          "agent_processes_cores": (fleet.cpu_seconds() - agents_cpu) / elapsed,
                          "reconciles": applied_during,
                          "server_rss_mb": [s.rss_mb() for s in servers]}
        print(f"idle: {json.dumps(report['idle'])}", flush=True)

        # 3. changes
        def check_hosts(told: set[str]) -> list[str]:
            others = [h for h in hosts if h not in told]
            return others if n <= args.check_all else rng.sample(
                others, min(len(others), args.check_sample))

        computes = [h for h, mode, _ in host_rows if mode == "dvr"]
        tenant = [i for name, i in networks.items() if name not in ("ext", "span")]
        report["load"]["fanout"] = load_average()
        phases.append(("fanout", time.time()))
        def cpu() -> float:
            return servers_cpu(servers)

        fanout_cpu = cpu()
        small = port_changes(url, token, events, fleet, tenant, computes, args.small_changes,
                             args, rng, check_hosts, cpu)
        big = port_changes(url, token, events, fleet, [networks["span"]], computes,
                           args.big_changes, args, rng, check_hosts, cpu)
        report["fanout_small"] = change_summary(small)
        report["fanout_big"] = change_summary(big)
        report["fanout_server_cpu_s"] = cpu() - fanout_cpu  # the checks included
        report["notify"] = notification(small + big)
        report["changes"] = small + big

        # 4. restart
        report["load"]["restart"] = load_average()
        stopped = time.time()
        phases.append(("restart", stopped))
        for server in servers:
            server.stop()
        down = time.time()
        ready = [server.start() for server in servers]
        cpu = servers_cpu(servers)
        # in sync again: a view applied, or a watch that caught up with nothing missed
        resynced = all_applied_after(events, hosts, stopped, args.phase_timeout, caught_up=True)
        again = first_applied_after(events, hosts, stopped, caught_up=True)
        report["restart"] = {
            "stop_s": down - stopped, "down_s": max(ready) - stopped, "resynced": len(again),
            "of": n,
            **resync_figures(again, stopped, resynced),
            "server_cpu_s": servers_cpu(servers) - cpu}
        print(f"restart: {json.dumps(report['restart'])}", flush=True)
        events.wait_quiet(args.quiet * 2, args.phase_timeout)

        # 5. the end: every agent holds the server's view; what it all cost
        phases.append(("final", time.time()))
        final = hosts if n <= args.check_all else rng.sample(hosts, args.check_sample)
        checked = fleet.check(final, args.phase_timeout)
        report["final_check"] = {"checked": len(checked),
                                 "stale": sorted(h for h, s in checked.items() if s),
                                 "unknown": sum(1 for s in checked.values() if s is None),
                                 "why_unknown": events.check_failures[:5]}
        report["agents"] = fleet.usage()
        report["server_rss_mb"] = [s.rss_mb() for s in servers]
        report["errors"] = errors_by_phase(events, phases)
        with events.cond:
            report["error_samples"] = list({f"{e['kind']} {e['status']} {e.get('request')}":
                                            e["detail"]
                                            for e in events.errors}.items())
        fleet.stop()
        report["agent_reconciles"] = reconcile_timings(workdir.glob("agents-*.log"))

        # 6. what a real host's reconcile adds, the agents stopped
        started = time.monotonic()
        report["host_compute"] = host_compute(url, token, host_rows, computes,
                                              networks["span"], args.compute_sample, rng)
        report["host_compute"]["seconds"] = time.monotonic() - started
        report["with_host_compute"] = with_host_compute(run_keys(report),
                                                        report["host_compute"])
        print(f"host_compute: {json.dumps(report['host_compute'])}", flush=True)
        report["load"]["end"] = load_average()
    return report


def flat_keys(report: dict[str, Any]) -> dict[str, Any]:
    """The results.json keys of the issue, suffixed with the host count."""
    return {f"{key}_{report['hosts']}": value for key, value in run_keys(report).items()}


def commit() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(HERE.parent), *argv], text=True,
                              capture_output=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)"
                                                  if git("status", "--porcelain") else "")


def write_results(report: dict[str, Any], keys: dict[str, Any]) -> None:
    """Merge into results.json (every other key kept): the suffixed keys, the unsuffixed
    notification keys (this run's), and the run's figures under ``bench_scale``."""
    data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    data.update(keys)
    data["notify_precision"] = report["notify"]["precision"]
    data["notify_recall"] = report["notify"]["recall"]
    runs = data.setdefault("bench_scale", {})
    runs[str(report["hosts"])] = {k: v for k, v in report.items() if k != "changes"}
    tmp = RESULTS_JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(RESULTS_JSON)
    with RESULTS_MD.open("a") as out:
        out.write(section(report, keys, runs, TARGETS) + "\n")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=100, help="simulated hosts (default 100)")
    p.add_argument("--backend", choices=BACKENDS, default="sqlite")
    p.add_argument("--servers", type=int, default=1,
                   help="dvr-server processes on the one database (PostgreSQL for > 1)")
    p.add_argument("--agents", choices=AGENTS, default="auto",
                   help="the simulated hosts' dataplane: full (HostDataplane on the fake "
                        "drivers), loop (each view taken as applied: the control plane "
                        f"alone); auto (default): full up to {FULL_AGENTS_UP_TO} hosts")
    p.add_argument("--compute-sample", type=int, default=5,
                   help="hosts whose views a full HostDataplane reconciles at the end, to "
                        "measure what a real host adds (default 5)")
    p.add_argument("--agent-processes", type=int, default=0,
                   help="worker processes of simulated agents (default: one per 125 hosts, "
                        "2 to 8)")
    p.add_argument("--small-changes", type=int, default=10,
                   help="ports created then deleted on tenant networks (default 10)")
    p.add_argument("--big-changes", type=int, default=5,
                   help="ports created then deleted on the network of every host (default 5)")
    p.add_argument("--idle-seconds", type=float, default=60.0)
    p.add_argument("--heartbeat-interval", type=float, default=AgentConfig.heartbeat_interval,
                   help="the agents' heartbeat (default the agent's, "
                        f"{AgentConfig.heartbeat_interval:g} s)")
    p.add_argument("--quiet", type=float, default=1.0,
                   help="a change has settled after this long without agent activity")
    p.add_argument("--phase-timeout", type=float, default=600.0)
    p.add_argument("--check-all", type=int, default=100,
                   help="up to this many hosts, every host not woken is checked after each "
                        "change (default 100)")
    p.add_argument("--check-sample", type=int, default=50,
                   help="beyond --check-all: hosts checked after each change and at the end")
    p.add_argument("--credentials", choices=("host", "admin"), default="host",
                   help="each simulated agent authenticates with its own host credential "
                        "(default, as a real fleet's), or all with the admin token")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the database, server and agent logs (the path is printed)")
    p.add_argument("--update-results", action="store_true",
                   help="merge into bench/results.json and append a section to RESULTS.md")
    args = p.parse_args(argv)
    if args.servers > 1 and args.backend != "postgresql":
        p.error("--servers > 1 needs --backend postgresql (one SQLite file, one server)")
    if args.hosts < 2:
        p.error("--hosts must be at least 2")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds: servers, agents, database stop


def mint_credentials(url: str, admin_token: str, specs: list[dict[str, str]]) -> None:
    """A host credential for each host of ``specs`` (as ``token``), minted by the admin."""
    with httpx.Client(base_url=url, headers={"X-Auth-Token": admin_token}, timeout=60) as api:
        for spec in specs:
            answer = api.post(f"/dvr/v1/hosts/{spec['host']}/credential")
            answer.raise_for_status()
            spec["token"] = answer.json()["credential"]["token"]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < files_needed(args.hosts, args.servers):
        sys.exit(f"{args.hosts} hosts need {files_needed(args.hosts, args.servers)} open files "
                 f"per server, the hard limit is {hard}: raise it (ulimit -Hn)")
    signal.signal(signal.SIGTERM, _interrupt)
    command = os.environ.get("BENCH_COMMAND") or shlex.join(
        sys.argv if argv is None else ["bench/bench_scale.py", *argv])
    report = run(args, command)
    keys = flat_keys(report)
    print(json.dumps({k: v for k, v in report.items() if k != "changes"}, indent=1))
    print(json.dumps(keys, indent=1))
    if args.update_results:
        write_results(report, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
