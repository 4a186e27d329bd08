"""Lab plumbing shared by the dataplane benchmarks: a lab of the benchmark's own, timed
output watchers, and the agent log.

``BenchLab`` brings a lab up under its own name (or reuses one it is told to keep), and
always takes it down at the end unless told to keep it.  ``LineWatcher`` runs a monitor
(``ovs-ofctl monitor``, ``ip monitor``, ``ping``) and stamps every output line on arrival;
it is stopped by its PID.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from dvr.lab.lab import Lab
from dvr.lab.state import HostRecord
from dvr.lab.vm import DEFAULT_PLUMBING, VmPlumbing
from dvr.model.hostview import DEFAULT_TUNNEL_LAYOUT


class VmRunner(Protocol):
    """Anything that runs a command in its VMs (a dvr BenchLab, the OVN lab)."""

    def vm_command(self, vm: str, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]: ...


class BenchLab:
    def __init__(self, name: str, api_port: int, keep: bool = False, computes: int = 2,
                 plumbing: VmPlumbing = DEFAULT_PLUMBING,
                 tunnel_layout: str = DEFAULT_TUNNEL_LAYOUT):
        self.lab = Lab(name, api_port, out=lambda m: print(f"  lab: {m}", flush=True))
        self.keep = keep
        self.computes = computes
        self.plumbing = plumbing
        self.tunnel_layout = tunnel_layout

    def __enter__(self) -> BenchLab:
        try:
            self.lab.up(self.computes, self.plumbing, self.tunnel_layout)
        except BaseException:
            if not self.keep:
                self.lab.down(quiet=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            self.lab.down()

    @property
    def record(self):
        return self.lab.record()

    def host(self, name: str) -> HostRecord:
        return self.record.hosts[name]

    def host_run(self, host: str, argv: Sequence[str], check: bool = True,
                 timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.lab.host_env(self.host(host)).run(argv, check=check, timeout=timeout)

    def host_command(self, host: str, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        env = self.lab.host_env(self.host(host))
        return env.command(argv), env.env()

    def vm_command(self, vm: str, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        return self.lab.target_command(vm, list(argv))

    def ovs_env(self, host: str) -> dict[str, str]:
        return self.lab.host_env(self.host(host)).env()

    def agent_log(self, host: str) -> Path:
        return Path(self.host(host).workdir) / "agent.log"


def run_in(bench: VmRunner, target: str, argv: Sequence[str], timeout: float = 60.0,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run argv in a lab VM, host or ``outside``."""
    command, env = bench.vm_command(target, argv)
    result = subprocess.run(command, env=env, text=True, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"[{target}] {' '.join(argv)}: {result.stderr or result.stdout}")
    return result


def iperf3(bench: VmRunner, client: str, server: str, server_ip: str, port: int,
           seconds: int) -> dict[str, float]:
    """One ``iperf3 -t seconds`` TCP run, data from ``client`` to ``server_ip`` (an
    ``iperf3 -s -1`` in ``server``): sent/received Gbit/s and the sender's retransmits."""
    command, env = bench.vm_command(server, ["iperf3", "-s", "-1", "-p", str(port)])
    daemon = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _attempt in range(20):  # until the server listens
            time.sleep(0.2)
            result = run_in(bench, client, ["iperf3", "-c", server_ip, "-p", str(port), "-t",
                                            str(seconds), "-J"],
                            timeout=seconds + 60, check=False)
            data = json.loads(result.stdout or "{}")
            if "end" in data and "sum_sent" in data["end"]:
                sent, received = data["end"]["sum_sent"], data["end"]["sum_received"]
                return {"sent_gbps": sent["bits_per_second"] / 1e9,
                        "received_gbps": received["bits_per_second"] / 1e9,
                        "retransmits": float(sent.get("retransmits", 0))}
            if "unable to connect" not in (data.get("error") or ""):
                raise RuntimeError(f"iperf3 {client} -> {server_ip}: "
                                   f"{data.get('error') or result}")
        raise RuntimeError(f"iperf3 server in {server} never answered")
    finally:
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=5)


class LineWatcher:
    """Run argv; keep (arrival time.time(), line) for every output line."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None):
        self.proc = subprocess.Popen(list(argv), env=dict(env) if env else None,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            with self._changed:
                self.lines.append((now, line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, match: Callable[[str], bool], after: float,
                 timeout: float) -> tuple[float, str] | None:
        """The first line (arrived at or after ``after``) that ``match``es, waiting up to
        ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for stamp, line in self.lines:
                    if stamp >= after and match(line):
                        return stamp, line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    return None
                self._changed.wait(min(remaining, 0.2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        self._thread.join(timeout=3)

    def __enter__(self) -> LineWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the agent's log -----------------------------------------------------------------------

_LOG_LINE = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO dvr\.agent reconcile (?P<rest>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class ReconcileLine:
    logged_at: float  # epoch seconds (ms resolution): the end of the reconcile
    fields: dict[str, str]

    def number(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.fields[key])
        except (KeyError, ValueError):
            return default

    @property
    def started_at(self) -> float:
        return self.logged_at - self.number("ms") / 1000


def reconcile_lines(log: Path, since: float) -> list[ReconcileLine]:
    """The agent's reconcile lines logged at or after ``since`` (epoch seconds)."""
    found = []
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    for raw in text.splitlines():
        m = _LOG_LINE.match(raw)
        if not m:
            continue
        stamp = datetime.strptime(m["stamp"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if stamp + 0.0005 < since:
            continue
        found.append(ReconcileLine(stamp, dict(_FIELD.findall(m["rest"]))))
    return found
