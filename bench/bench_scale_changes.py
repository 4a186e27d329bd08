"""`make bench-scale`: one API write and who heard of it — the hosts woken, the hosts whose
view changed, and when the last of them had applied it.  Nothing starts at import."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
from bench_scale_fleet import Events, Fleet, current_revision
from benchlib import percentile


def measure_change(url: str, token: str, events: Events, fleet: Fleet,
                   action: Callable[[], None], check_hosts: Callable[[set[str]], list[str]],
                   quiet: float, timeout: float, cpu: Callable[[], float]) -> dict[str, Any]:
    """Run ``action`` (one API write), wait until every woken host applied it and all is
    quiet, then compare the hosts woken with the hosts whose view changed.  ``cpu``: the
    servers' CPU seconds, measured until the change settled (the checks after it aside)."""
    before = current_revision(url, token)
    cpu_before, agents_before = cpu(), fleet.cpu_seconds()
    called = time.time()
    action()
    answered = time.time()
    after = current_revision(url, token)

    def woken() -> set[str]:
        return {h for h, t, r in events.woken if t >= called and r > before}

    def settled() -> bool:
        return all(any(a.revision >= after for a in events.applied[h]) for h in woken())

    deadline = time.monotonic() + timeout
    # every write here wakes at least the port's host, and the first watch answer may take
    # longer than ``quiet`` (it brings the view, built first): no quiet before it
    events.wait_for(lambda: bool(woken()), timeout)
    while time.monotonic() < deadline:
        events.wait_quiet(quiet, deadline - time.monotonic())
        if events.wait_for(settled, 0):
            break
    server_cpu_s = cpu() - cpu_before
    agents_cpu_s = fleet.cpu_seconds() - agents_before  # (their idle work in the quiet too)
    with events.cond:
        told = woken()
        changed = {h for h, applied in events.applied.items()
                   if any(a.changed and a.t >= called for a in applied)}
        done = {h: min(((a.t, a.received) for a in events.applied[h] if a.revision >= after),
                       default=None) for h in told | changed}
    not_told = check_hosts(told)
    checked = fleet.check(not_told, timeout)
    missed = {h for h, stale in checked.items() if stale}
    unknown = sum(1 for stale in checked.values() if stale is None)
    concerned = changed | missed
    finished = [t for h, t in done.items() if h in (concerned or told) and t is not None]
    last = max(finished, default=None)
    return {
        "revision": after, "api_s": answered - called, "server_cpu_s": server_cpu_s,
        "agents_cpu_s": agents_cpu_s,
        "woken": len(told),
        "changed": len(changed), "true_positives": len(told & changed),
        "false_positives": len(told - changed), "missed": len(missed | (changed - told)),
        "checked_not_woken": len(checked), "check_unknown": unknown,
        "not_applied": sum(1 for h in told if done.get(h) is None),
        "latency_s": last[0] - called if last else None,
        # when the last of them had its view from the server (the rest is its own reconcile,
        # and the simulated agents share this machine's cores)
        "received_s": max(r for _, r in finished) - called if finished else None,
        # how the hosts' views arrived over that time: half of them, nine in ten
        "received_p50_s": percentile([r - called for _, r in finished], 50),
        "received_p90_s": percentile([r - called for _, r in finished], 90),
    }


def port_changes(url: str, token: str, events: Events, fleet: Fleet, networks: list[str],
                 hosts: list[str], count: int, args: argparse.Namespace,
                 rng: random.Random, check_hosts: Callable[[set[str]], list[str]],
                 cpu: Callable[[], float]) -> list[dict[str, Any]]:
    """``count`` times: a port created on one of ``networks`` bound to one of ``hosts``,
    then deleted; each write measured (``kind`` create or delete)."""
    results = []
    with httpx.Client(base_url=url, headers={"X-Auth-Token": token}, timeout=120) as api:
        for _ in range(count):
            body = {"port": {"network_id": rng.choice(networks),
                             "binding:host_id": rng.choice(hosts),
                             "device_owner": "compute:nova", "port_security_enabled": False}}
            created: dict[str, str] = {}

            def create(body: dict = body, created: dict = created) -> None:
                response = api.post("/v2.0/ports", json=body)
                response.raise_for_status()
                created["id"] = response.json()["port"]["id"]

            def delete(created: dict = created) -> None:
                api.delete(f"/v2.0/ports/{created['id']}").raise_for_status()

            for kind, action in (("create", create), ("delete", delete)):
                result = measure_change(url, token, events, fleet, action, check_hosts,
                                        args.quiet, args.phase_timeout, cpu)
                results.append({"kind": kind, **result})
                print(f"  {kind}: {json.dumps(result)}", flush=True)
    return results


def change_summary(changes: list[dict[str, Any]]) -> dict[str, Any]:
    creates = [c for c in changes if c["kind"] == "create" and c["latency_s"] is not None]
    latencies = [c["latency_s"] for c in creates]
    received = [c["received_s"] for c in creates]
    return {"received_p50_s": percentile(received, 50),
            "received_p99_s": percentile(received, 99),
            "writes": len(changes), "creates_measured": len(latencies),
            "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99),
            "max_s": max(latencies, default=None),
            "woken_median": percentile([c["woken"] for c in changes], 50),
            "changed_median": percentile([c["changed"] for c in changes], 50),
            "api_s_p50": percentile([c["api_s"] for c in changes], 50),
            "server_cpu_s_p50": percentile([c["server_cpu_s"] for c in changes], 50),
            "agents_cpu_s_p50": percentile([c["agents_cpu_s"] for c in changes], 50)}


def notification(changes: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(c["true_positives"] for c in changes)
    fp = sum(c["false_positives"] for c in changes)
    fn = sum(c["missed"] for c in changes)
    return {"precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "true_positives": tp, "false_positives": fp, "missed": fn,
            "hosts_checked_not_woken": sum(c["checked_not_woken"] for c in changes),
            "check_unknown": sum(c["check_unknown"] for c in changes)}
