"""The bench/RESULTS.md section of `make bench-scale`: this run, then how each figure grows
over every host count measured so far (results.json's ``bench_scale``).  Pure."""

from __future__ import annotations

from typing import Any

CREDENTIALS = {"host": "a host credential each", "admin": "the admin token"}

FIGURES = (  # (key without the _N suffix, what it is)
    ("sync_all_s", "all agents started at once → all applied (s)"),
    ("restart_resync_s", "server restart → all in sync again (s)"),
    ("fanout_small_p99_s", "port on a tenant network → last host applied, p99 (s)"),
    ("fanout_big_p99_s", "port on the every-host network → last host applied, p99 (s)"),
    ("notify_precision", "notification precision"),
    ("notify_recall", "notification recall"),
    ("idle_server_cpu", "server CPU, attached and idle (cores)"),
    ("timeouts", "agent request timeouts"),
    ("errors_5xx", "5xx answers to agents"),
)


def shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def met(value: Any, target: tuple[str, float]) -> str:
    if value is None:
        return "not measured"
    comparison, bound = target
    ok = value < bound if comparison == "<" else value == bound
    return "met" if ok else "MISSED"


def failed(errors: dict[str, dict[str, int]], kind: str) -> int:
    """Failed requests of ``kind`` (timeout, 5xx, ...) over every phase."""
    return sum(count for kinds in errors.values() for label, count in kinds.items()
               if label.split()[0] == kind)


def run_keys(run: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run, by unsuffixed key."""
    errors = run.get("errors", {})
    return {
        "sync_all_s": run["sync_all"]["seconds"], "restart_resync_s": run["restart"]["seconds"],
        "fanout_small_p99_s": run["fanout_small"]["p99_s"],
        "fanout_big_p99_s": run["fanout_big"]["p99_s"],
        "notify_precision": run["notify"]["precision"], "notify_recall": run["notify"]["recall"],
        "idle_server_cpu": run["idle"]["server_cores"],
        "timeouts": failed(errors, "timeout"), "errors_5xx": failed(errors, "5xx"),
    }


MORE_ROWS = (  # (what, the figure of a stored run): the server's share, the simulation's
    ("simulated hosts' dataplane (full: computes on this machine; loop: taken as applied)",
     lambda r: r.get("agents_kind", "full")),
    ("+ a real host's reconcile: sync of all (s)",
     lambda r: r.get("with_host_compute", {}).get("sync_all_s")),
    ("+ a real host's reconcile: restart (s)",
     lambda r: r.get("with_host_compute", {}).get("restart_resync_s")),
    ("+ a real host's reconcile: tenant-network port, p99 (s)",
     lambda r: r.get("with_host_compute", {}).get("fanout_small_p99_s")),
    ("+ a real host's reconcile: every-host port, p99 (s)",
     lambda r: r.get("with_host_compute", {}).get("fanout_big_p99_s")),
    ("server CPU for the sync of all (s)", lambda r: r["sync_all"]["server_cpu_s"]),
    ("simulated agents: CPU for the sync of all (s)",
     lambda r: r["sync_all"].get("agents_cpu_s")),
    ("sync of all: the last host received its view (s)",
     lambda r: r["sync_all"].get("received_s")),
    ("server CPU for the resync after a restart (s)", lambda r: r["restart"]["server_cpu_s"]),
    ("every-host port: the last host received its view, p99 (s)",
     lambda r: r["fanout_big"].get("received_p99_s")),
    ("server memory at the end (MB)", lambda r: max(r["server_rss_mb"])),
    ("simulated agents: CPU over the run (s)", lambda r: r["agents"]["cpu_s"]),
    ("simulated agents: memory (MB)", lambda r: r["agents"]["rss_mb_total"]),
)


def growth_table(runs: dict[str, dict]) -> list[str]:
    """One row a figure, one column a host count (the newest run of each)."""
    counts = sorted(runs, key=int)
    figures = {c: run_keys(runs[c]) for c in counts}
    lines = ["| figure | " + " | ".join(f"{c} hosts" for c in counts) + " |",
             "|---|" + "---|" * len(counts)]
    for key, what in FIGURES:
        lines.append(f"| {what} | " + " | ".join(shown(figures[c][key]) for c in counts)
                     + " |")
    for what, figure in MORE_ROWS:
        lines.append(f"| {what} | " + " | ".join(shown(figure(runs[c])) for c in counts)
                     + " |")
    return lines


def per_write_cpu(changes: list[dict[str, Any]], big: dict[str, Any]) -> list[str]:
    """"server / agents" CPU seconds of each write that woke the every-host network's hosts
    (the last ``big["writes"]`` of the run's changes)."""
    writes = changes[-big["writes"]:] if big.get("writes") else []
    return [f"{shown(c['server_cpu_s'])} / {shown(c.get('agents_cpu_s'))} s" for c in writes]


def host_compute_lines(report: dict[str, Any], keys: dict[str, Any]) -> list[str]:
    """What a real host's reconcile adds: the sampled reconciles, and each latency figure
    without and with the slowest of them (with ``--agents full`` the figures include the
    simulated hosts' reconciles already, under the machine's contention)."""
    compute = report.get("host_compute")
    if not compute:
        return []
    n = report["hosts"]
    kind = report.get("agents_kind", "full")
    lines = [
        f"A real host's reconcile (the full `HostDataplane` on the fake drivers, CPU ms, "
        f"{compute['sampled']} hosts' views fetched from the server, the agents stopped): "
        + "; ".join(f"{what} p50 {shown(compute[f'{k}_ms_p50'])} / max "
                    f"{shown(compute[f'{k}_ms_max'])}"
                    for k, what in (("first_sync", "first view"),
                                    ("resync", "same view again"),
                                    ("change", "after one port on one of its networks")))
        + ".  A real host does it on its own CPU, in parallel with every other host: it adds "
        "once to each latency figure"
        + (" (the figures above include the simulated hosts' own reconciles, on this "
           "machine's 2 cores)." if kind == "full" else "."), "",
        "| figure | control plane (this run) | + the slowest sampled reconcile |",
        "|---|---|---|"]
    for key, with_it in report["with_host_compute"].items():
        lines.append(f"| `{key}_{n}` | {shown(keys[f'{key}_{n}'])} | {shown(with_it)} |")
    return [*lines, ""]


def section(report: dict[str, Any], keys: dict[str, Any], runs: dict[str, dict],
            targets: dict[str, tuple[str, float]]) -> str:
    m, n = report["machine"], report["hosts"]
    load = report["load"]
    lines = [
        "", f"## `make bench-scale` with {n} hosts on {report['date']}", "",
        f"Command: `{report['command']}` (commit {report['commit']}).",
        f"Machine: {m['cpus']} CPUs, {m['memory_gb']} GB, {m['cpu']}, Linux {m['kernel']}, "
        f"Python {m['python']}.  Backend {report['backend']}, {report['servers']} server "
        f"process(es), {report['sync_all']['agent_processes']} agent processes, simulated "
        f"hosts' dataplane `{report.get('agents_kind', 'full')}` (`--agents`), agents "
        f"authenticated with {CREDENTIALS[report.get('credentials', 'admin')]} "
        "(`--credentials`).",
        "Load average (1/5/15 min) at each phase: " + "; ".join(
            f"{phase} {value}" for phase, value in load.items()) + ".",
        f"Scenario: {report['scenario']}.", "",
        "| figure | target | this run |", "|---|---|---|"]
    for key, what in FIGURES:
        value = keys[f"{key}_{n}"]
        comparison, bound = targets[key]
        lines.append(f"| `{key}_{n}`: {what} | {comparison} {bound} | {shown(value)} "
                     f"({met(value, targets[key])}) |")
    small, big = report["fanout_small"], report["fanout_big"]
    lines += [
        "",
        f"Fan-out, p50 / p99 / writes: tenant network {shown(small['p50_s'])} / "
        f"{shown(small['p99_s'])} s / {small['writes']} (median {small['woken_median']} "
        f"hosts woken); every-host network {shown(big['p50_s'])} / {shown(big['p99_s'])} s "
        f"/ {big['writes']} (median {big['woken_median']} woken); until the last host "
        f"had received its view (the rest is its simulated reconcile"
        f"{', none with the loop agents' if report.get('agents_kind') == 'loop' else ''}): "
        f"{shown(small.get('received_p99_s'))} / {shown(big.get('received_p99_s'))} s (p99), "
        f"sync of all {shown(report['sync_all'].get('received_s'))} s (timed once the "
        f"{report['sync_all']['agent_processes']} agent processes had started, which took "
        f"{shown(report['sync_all'].get('workers_started_s'))} s), restart "
        f"{shown(report['restart'].get('received_s'))} s.  Notification: "
        f"{report['notify']}.  Server CPU: {shown(report['sync_all']['server_cpu_s'])} s for "
        f"the sync of all, {shown(report['fanout_server_cpu_s'])} s for all the writes "
        f"(each every-host write, server / simulated agents: "
        f"{', '.join(per_write_cpu(report.get('changes', []), big))}), "
        f"{shown(report['restart']['server_cpu_s'])} s for the resync after the restart "
        f"(down {shown(report['restart']['down_s'])} s); server memory "
        f"{[round(x) for x in report['server_rss_mb']]} MB.  Simulated agents: "
        f"{shown(report['agents']['cpu_s'])} CPU s, {round(report['agents']['rss_mb_total'])} "
        f"MB in all.  Failed agent requests by phase: {report['errors'] or 'none'}.  Final "
        f"check: {report['final_check']['checked']} hosts, stale "
        f"{len(report['final_check']['stale'])}.  The agents' reconciles (from their log, "
        f"ms, under the machine's contention): {report.get('agent_reconciles')}.", "",
        *host_compute_lines(report, keys)]
    if len(runs) > 1:
        lines += ["How each figure grows (the newest run at each host count):", "",
                  *growth_table(runs), ""]
    return "\n".join(lines)
