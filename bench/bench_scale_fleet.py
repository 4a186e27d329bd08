"""The moving parts of `make bench-scale`: dvr-server processes on fixed ports (so they can
be restarted where the agents look for them), and the worker processes of simulated agents
(bench/bench_scale_agents.py) with the events they report.  Nothing starts at import."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dvr.agent.config import AgentConfig

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
PROBE_HOST = "scale-probe"  # a host name no agent uses: reading the revision touches nothing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _more_files() -> None:
    """In a child: as many open files as the hard limit allows (a socket per agent)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- dvr-server ---------------------------------------------------------------------------
@dataclass
class ServerProcess:
    """One dvr-server on 127.0.0.1:``port`` (``stop`` then ``start`` keeps the port); the
    first to start writes the admin token to ``<state_dir>/admin-token``, the others read it."""

    db_url: str
    state_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until it answers; the time it answered (``time.time()``)."""
        log = open(self.state_dir / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dvr.server.main", "--db", self.db_url, "--listen",
             f"127.0.0.1:{self.port}", "--state-dir", str(self.state_dir),
             "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_more_files)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return time.time()
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"dvr-server on port {self.port} did not start "
                           f"(see {self.state_dir}/server-{self.port}.log)")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid) if self.process else 0.0

    def rss_mb(self) -> float:
        return process_rss_mb(self.process.pid) if self.process else 0.0


def current_revision(url: str, token: str) -> int:
    """The server's revision, read with a watch that answers at once (``since`` past it)."""
    response = httpx.get(f"{url}/dvr/v1/hosts/{PROBE_HOST}/watch",
                         params={"since": 10**17, "timeout": 0},
                         headers={"X-Auth-Token": token}, timeout=30)
    response.raise_for_status()
    return int(response.json()["revision"])


# -- what the agents reported -------------------------------------------------------------
@dataclass(frozen=True)
class Applied:
    t: float  # reconciled
    received: float  # fetched: the reconcile began
    revision: int
    changed: bool
    first: bool


@dataclass
class Events:
    """Every event of the workers, by kind, behind one condition variable."""

    applied: dict[str, list[Applied]] = field(default_factory=lambda: defaultdict(list))
    woken: list[tuple[str, float, int]] = field(default_factory=list)  # host, t, revision
    # watches that caught up with nothing missed after a failed one (as Applied: unchanged)
    caught_up: dict[str, list[Applied]] = field(default_factory=lambda: defaultdict(list))
    errors: list[dict[str, Any]] = field(default_factory=list)
    checked: dict[str, bool | None] = field(default_factory=dict)
    check_failures: list[str] = field(default_factory=list)  # why a check said nothing
    usage: list[dict[str, float]] = field(default_factory=list)
    ready: int = 0  # workers started and waiting for ``start``
    last_t: float = 0.0  # when the newest applied/woken event came
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, event: dict[str, Any]) -> None:
        with self.cond:
            kind = event["event"]
            if kind == "applied":
                self.applied[event["host"]].append(
                    Applied(event["t"], event["received"], event["revision"], event["changed"],
                            event["first"]))
                self.last_t = time.time()
            elif kind == "woken":
                self.woken.append((event["host"], event["t"], event["revision"]))
                self.last_t = time.time()
            elif kind == "caught_up":
                self.caught_up[event["host"]].append(
                    Applied(event["t"], event["t"], event["revision"], False, False))
                self.last_t = time.time()
            elif kind == "error":
                self.errors.append(event)
            elif kind == "checked":
                self.checked[event["host"]] = event["stale"]
                if event.get("detail"):
                    self.check_failures.append(f"{event['host']}: {event['detail']}")
            elif kind == "usage":
                self.usage.append(event)
            elif kind == "ready":
                self.ready += 1
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` (called under the lock) holds; False on timeout."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_quiet(self, quiet: float, timeout: float) -> bool:
        """Wait until no agent was woken or applied anything for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cond:
                idle = time.time() - self.last_t
            if idle >= quiet:
                return True
            time.sleep(min(quiet - idle, 0.2))
        return False


# -- the workers --------------------------------------------------------------------------
class Fleet:
    """``processes`` workers sharing the hosts, each host's dataplane of ``kind`` (full or
    loop: bench/bench_scale_agents.py); each host talks to the server given in its spec
    (round-robin over the servers: ``specs``)."""

    def __init__(self, specs: list[dict[str, str]], processes: int, token_file: Path,
                 log_dir: Path, heartbeat_interval: float = AgentConfig.heartbeat_interval,
                 kind: str = "full") -> None:
        self.events = Events()
        self.workers: list[subprocess.Popen] = []
        self._readers: list[threading.Thread] = []
        self.hosts = [s["host"] for s in specs]
        self.worker_of: dict[str, int] = {}
        for w in range(processes):
            mine = specs[w::processes]
            if not mine:
                continue
            worker = subprocess.Popen(
                [sys.executable, str(HERE / "bench_scale_agents.py"), "--token-file",
                 str(token_file), "--log", str(log_dir / f"agents-{w}.log"),
                 "--heartbeat-interval", str(heartbeat_interval), "--agents", kind],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                preexec_fn=_more_files)
            worker.stdin.write(json.dumps(mine) + "\n")
            worker.stdin.flush()
            for spec in mine:
                self.worker_of[spec["host"]] = len(self.workers)
            reader = threading.Thread(target=self._read, args=(worker,), daemon=True)
            reader.start()
            self.workers.append(worker)
            self._readers.append(reader)

    def start(self, timeout: float) -> float:
        """Wait until every worker has started (its interpreter and imports: on a real
        fleet each host pays that on its own cores), then start every agent at once;
        the time they were started (``time.time()``).  ``RuntimeError`` if a worker is not
        ready within ``timeout``."""
        if not self.events.wait_for(lambda: self.events.ready == len(self.workers), timeout):
            raise RuntimeError(f"{len(self.workers) - self.events.ready} agent worker(s) did "
                               f"not start within {timeout:.0f} s")
        started = time.time()
        for worker in range(len(self.workers)):
            self._command(worker, "start")
        return started

    def _read(self, worker: subprocess.Popen) -> None:
        for line in worker.stdout:
            self.events.add(json.loads(line))

    def _command(self, worker: int, line: str) -> None:
        self.workers[worker].stdin.write(line + "\n")
        self.workers[worker].stdin.flush()

    def check(self, hosts: list[str], timeout: float) -> dict[str, bool | None]:
        """Ask each host's agent whether the server's view differs from what it holds."""
        with self.events.cond:
            for host in hosts:
                self.events.checked.pop(host, None)
        by_worker: dict[int, list[str]] = defaultdict(list)
        for host in hosts:
            by_worker[self.worker_of[host]].append(host)
        for worker, names in by_worker.items():
            self._command(worker, "check " + " ".join(names))
        self.events.wait_for(lambda: all(h in self.events.checked for h in hosts), timeout)
        with self.events.cond:
            return {h: self.events.checked.get(h) for h in hosts}

    def usage(self, timeout: float = 30.0) -> dict[str, float]:
        """The workers' CPU seconds and memory, added up."""
        with self.events.cond:
            self.events.usage.clear()
        for worker in range(len(self.workers)):
            self._command(worker, "usage")
        self.events.wait_for(lambda: len(self.events.usage) == len(self.workers), timeout)
        with self.events.cond:
            got = list(self.events.usage)
        rss = [process_rss_mb(w.pid) for w in self.workers if w.poll() is None]
        return {"processes": len(self.workers),
                "cpu_s": sum(u["cpu_s"] for u in got),
                "rss_mb_total": sum(rss), "rss_mb_max": max(rss, default=0.0)}

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(w.pid) for w in self.workers if w.poll() is None)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.stdin.closed:  # stopped before
                continue
            try:
                worker.stdin.write("stop\n")
                worker.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        for worker in self.workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
