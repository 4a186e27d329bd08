"""Which running lab a server URL names (so `dvr trace --verify` finds the lab's switches)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dvr.lab.lab import lab_serving
from dvr.lab.procs import process_ref
from dvr.lab.state import LabPaths, LabRecord, url_reaches_lab

SOCKET = Path("/var/lib/dvr-lab/dvr/server.sock")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9696", True),
        ("http://localhost:9696/", True),
        ("http://[::1]:9696", True),
        ("http://127.0.0.1:9697", False),
        ("http://192.0.2.10:9696", False),  # not loopback: not this machine's lab
        ("http://127.0.0.1", False),  # port 80
        ("http://127.0.0.1:notaport", False),
        ("unix:/var/lib/dvr-lab/dvr/server.sock", True),
        ("unix:/var/lib/dvr-lab/other/server.sock", False),
    ],
)
def test_url_reaches_lab(url, expected):
    assert url_reaches_lab(url, 9696, SOCKET) is expected


def write_record(base: Path, name: str, api_port: int, server: dict | None, complete=True):
    paths = LabPaths.for_lab(name, base)
    paths.save(LabRecord(name=name, api_port=api_port, computes=2, server=server,
                         complete=complete))


@pytest.fixture
def alive() -> dict:
    """A process reference that is alive for the whole test: this test process."""
    ref = process_ref(os.getpid())
    assert ref is not None
    return ref.as_dict()


def test_lab_serving_picks_the_running_lab_on_that_port(tmp_path, alive):
    write_record(tmp_path, "one", 9696, alive)
    write_record(tmp_path, "two", 9797, alive)
    assert lab_serving("http://127.0.0.1:9797", tmp_path).name == "two"
    found = lab_serving("http://127.0.0.1:9696", tmp_path)
    assert (found.name, found.api_port) == ("one", 9696)
    assert lab_serving(f"unix:{tmp_path / 'two' / 'server.sock'}", tmp_path).name == "two"
    assert lab_serving("http://127.0.0.1:9898", tmp_path) is None


def test_lab_serving_ignores_labs_that_are_not_up(tmp_path, alive):
    dead = dict(alive, start_time=alive["start_time"] + 1)  # a reused PID is not our server
    write_record(tmp_path, "crashed", 9696, dead)
    write_record(tmp_path, "halfway", 9696, alive, complete=False)
    write_record(tmp_path, "never", 9696, None)
    (tmp_path / "Not-A-Lab").mkdir()
    (tmp_path / "Not-A-Lab" / "lab.json").write_text("{}")
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "lab.json").write_text("{not json")
    assert lab_serving("http://127.0.0.1:9696", tmp_path) is None


def test_lab_serving_with_no_lab_directory(tmp_path):
    assert lab_serving("http://127.0.0.1:9696", tmp_path / "missing") is None
