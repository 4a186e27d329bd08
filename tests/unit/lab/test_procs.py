"""dvr.lab.procs: bounded polling and stopping a process we started, by PID only."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dvr.lab.procs import ProcessRef, is_alive, poll_until, start_daemon, stop_process

IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_poll_until_returns_once_the_check_holds():
    answers = iter([False, False, True, False])
    calls: list[bool] = []

    def check() -> bool:
        calls.append(next(answers))
        return calls[-1]

    assert poll_until(check, timeout=30.0, interval=0.001)
    assert calls == [False, False, True]


def test_poll_until_gives_up_when_the_check_never_holds():
    assert not poll_until(lambda: False, timeout=0.01, interval=0.001)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ProcessRef]]:
    refs: list[ProcessRef] = []
    yield refs
    for ref in refs:  # a failed test must not leave its process behind
        if is_alive(ref):
            os.kill(ref.pid, signal.SIGKILL)


def test_stop_process_terminates_a_daemon(tmp_path: Path, started: list[ProcessRef]):
    ref = start_daemon([sys.executable, "-c", "import time; time.sleep(60)"],
                       tmp_path / "sleep.log")
    started.append(ref)
    assert is_alive(ref)
    stop_process(ref)
    assert not is_alive(ref)


def test_stop_process_kills_what_ignores_sigterm(tmp_path: Path, started: list[ProcessRef]):
    log = tmp_path / "stubborn.log"
    ref = start_daemon([sys.executable, "-c", IGNORES_SIGTERM], log)
    started.append(ref)
    assert poll_until(lambda: "ready" in log.read_text(), timeout=30.0, interval=0.01)
    stop_process(ref, timeout=0.1)
    assert not is_alive(ref)
