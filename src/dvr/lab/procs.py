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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class ProcessError(RuntimeError):
    pass


def poll_until(check: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Call ``check`` every ``interval`` seconds until it holds (True) or ``timeout`` seconds
    have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


@dataclass(frozen=True)
class ProcessRef:
    """A process we started: its PID and start time (guards against PID reuse)."""

    pid: int
    start_time: int

    def as_dict(self) -> dict[str, int]:
        return {"pid": self.pid, "start_time": self.start_time}

    @staticmethod
    def from_dict(d: dict[str, int] | None) -> ProcessRef | None:
        return ProcessRef(d["pid"], d["start_time"]) if d else None


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on


def process_ref(pid: int) -> ProcessRef | None:
    fields = _stat(pid)
    return ProcessRef(pid, int(fields[19])) if fields else None


def is_alive(ref: ProcessRef) -> bool:
    """True while the process runs; a zombie (or a reused PID) counts as gone."""
    fields = _stat(ref.pid)
    return fields is not None and fields[0] not in ("Z", "X") and int(fields[19]) == (
        ref.start_time)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: PID 1 reaps it (slowly)


def stop_process(ref: ProcessRef | None, timeout: float = 5.0) -> None:
    """SIGTERM, wait (bounded), SIGKILL, wait (bounded).  Gone or zombie = stopped."""
    if ref is None:
        return

    def gone() -> bool:
        _reap(ref.pid)
        return not is_alive(ref)

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        if not is_alive(ref):
            break
        try:
            os.kill(ref.pid, sig)
        except ProcessLookupError:
            break
        poll_until(gone, wait, 0.02)
    _reap(ref.pid)
    if is_alive(ref):
        raise ProcessError(f"process {ref.pid} survived SIGKILL")


def start_daemon(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> ProcessRef:
    """Start argv detached from our session, output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
    ref = process_ref(proc.pid)
    if ref is None:
        raise ProcessError(f"{argv[0]} exited at once; see {log_path}")
    return ref
