"""`dvr lab down` leaves nothing behind: after a full run, after a crash half-way, twice."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvr.lab.lab import Lab
from tests.e2e.conftest import free_port, lab_prerequisites_missing

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(autouse=True)
def _needs_root():
    reason = lab_prerequisites_missing()
    if reason:
        pytest.skip(reason)


def dvr(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvr.cli.main", *argv], text=True,
                          capture_output=True, timeout=timeout)


def leftovers(lab: Lab) -> list[str]:
    found = []
    netns = subprocess.run(["ip", "netns", "list"], text=True, capture_output=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines()
              if line.startswith(f"dvrlab-{lab.name}-")]
    marker = str(lab.paths.root).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in text and state != "Z":
            argv = text.replace(b"\0", b" ")[:120]
            found.append(f"process {cmdline.parent.name}: {argv!r}")
    if lab.paths.root.exists():
        found.append(f"directory {lab.paths.root}")
    return found


def test_up_then_down_leaves_nothing():
    lab = Lab(name="cycle", api_port=free_port(), out=lambda m: None)
    try:
        lab.up(computes=1)
        assert lab.ping("blue-1", "orange-1") == 0
    finally:
        result = dvr("lab", "down", "--name", "cycle")
    assert result.returncode == 0, result.stderr
    assert leftovers(lab) == []
    again = dvr("lab", "down", "--name", "cycle")
    assert again.returncode == 0 and "not up" in again.stdout


def test_down_after_a_crash_half_way_through_up_leaves_nothing():
    lab = Lab(name="crash", api_port=free_port(), out=lambda m: None)
    up = subprocess.Popen([sys.executable, "-m", "dvr.cli.main", "lab", "up", "--name", "crash",
                           "--api-port", str(lab.api_port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until hosts exist: crash in the middle
            record = lab.paths.load()
            if record is not None and len(record.hosts) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("dvr lab up never got as far as building hosts")
    finally:
        up.kill()
        up.wait(timeout=10)
    assert leftovers(lab), "the crash left nothing to clean up: the test did not crash mid-way"
    result = dvr("lab", "down", "--name", "crash")
    assert result.returncode == 0, result.stderr
    assert leftovers(lab) == []
