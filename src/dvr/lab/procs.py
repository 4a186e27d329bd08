"""Start and stop the lab's long-running processes, strictly by PID.

A process is recorded as (pid, start time): the start time (field 22 of /proc/PID/stat)
guards against signalling an unrelated process that reused the PID.  A zombie counts as
stopped (this machine's PID 1 reaps slowly).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_time: int

    def to_dict(self) -> dict[str, int]:
        return {"pid": self.pid, "start_time": self.start_time}

    @staticmethod
    def from_dict(d: dict[str, int] | None) -> ProcessRef | None:
        return ProcessRef(d["pid"], d["start_time"]) if d else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    return raw[raw.rindex(")") + 2:].split()


def process_start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_running(ref: ProcessRef) -> bool:
    fields = _stat_fields(ref.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == ref.start_time


def start_daemon(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> ProcessRef:
    """Start argv detached from our session, output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
    start = process_start_time(proc.pid)
    if start is None:
        raise RuntimeError(f"{argv[0]} exited at once; see {log_path}")
    return ProcessRef(proc.pid, start)


def stop_process(ref: ProcessRef | None, timeout: float = 5.0) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.  Missing processes are fine."""
    if ref is None or not is_running(ref):
        return
    os.kill(ref.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(ref):
            return
        time.sleep(0.05)
    if is_running(ref):
        os.kill(ref.pid, signal.SIGKILL)
