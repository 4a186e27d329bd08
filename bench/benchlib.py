"""Shared helpers of the lab/dataplane benchmarks: statistics, machine facts, lab handling.

Nothing here changes the system under test; it only reads /proc, runs `ps`/`uptime`-like
reads and starts/stops a lab by its own name (never someone else's).
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DVR = str(REPO / ".venv" / "bin" / "dvr")
LAB_ROOT = Path(os.environ.get("DVR_LAB_ROOT", "/var/lib/dvr-lab"))


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, median, min, max (and the spread max - min) of a series."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values),
            "max": max(values), "spread": max(values) - min(values)}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` 95: the value 95% of the values stay at or under);
    None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def fmt(stats: dict[str, float], unit: str = "", digits: int = 1) -> str:
    """``median (min–max, n=N)`` for a table cell."""
    if not stats.get("n"):
        return "—"
    f = f"{{:.{digits}f}}"
    return (f"{f.format(stats['median'])}{unit} ({f.format(stats['min'])}–"
            f"{f.format(stats['max'])}, n={stats['n']})")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def busiest_processes(limit: int = 6) -> list[str]:
    """The processes using the most CPU right now (``ps``'s lifetime average)."""
    out = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"],
                         text=True, capture_output=True, check=False).stdout
    return [" ".join(line.split()) for line in out.splitlines()[:limit]]


def other_labs(mine: str) -> list[str]:
    """Names of the other labs that currently exist on this machine (they share the CPUs)."""
    if not LAB_ROOT.is_dir():
        return []
    return sorted(p.name for p in LAB_ROOT.iterdir() if p.is_dir() and p.name != mine)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def ovs_version() -> str:
    if shutil.which("ovs-vsctl") is None:
        return "?"
    out = subprocess.run(["ovs-vsctl", "--version"], text=True, capture_output=True).stdout
    return out.splitlines()[0] if out else "?"


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "ovs": ovs_version(),
    }


def conditions(mine: str) -> dict[str, object]:
    """What else was running: load average, other labs, the busiest processes."""
    return {"loadavg": load_average(), "other_labs": other_labs(mine),
            "busiest": busiest_processes()}


def run_dvr(args: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DVR, *args], text=True, capture_output=True, timeout=timeout)


def lab_down(name: str, api_port: int) -> None:
    run_dvr(["lab", "down", "--name", name, "--api-port", str(api_port)])


def wait_for_quiet(threshold: float | None, longest: float = 600.0) -> str:
    """Wait (at most ``longest`` seconds) until the 1-minute load average is below
    ``threshold``; says what happened (the machine is shared: other sessions run tests)."""
    if threshold is None:
        return "not waited"
    started = time.monotonic()
    while time.monotonic() - started < longest:
        load = float(load_average().split()[0])
        if load < threshold:
            return f"load {load:.2f} < {threshold} after {time.monotonic() - started:.0f}s"
        time.sleep(5)
    return f"load still {load_average()} after {longest:.0f}s: measured anyway"
