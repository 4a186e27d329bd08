"""Deltas on the real lab (issue 14): an agent stopped while changes concerning its host
happen converges, once back, from deltas alone (fetched or brought by its watch), and the
dataplane it programs works."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from dvr.lab.procs import ProcessRef

pytestmark = [pytest.mark.e2e, pytest.mark.root]

RECONCILE = re.compile(r" reconcile host=compute-2 revision=(\d+) trigger=\S+ view=([\w-]+) ")


def test_a_stopped_agent_converges_from_deltas_alone(lab3):
    log = Path(lab3.record.hosts["compute-2"].workdir) / "agent.log"
    agent = ProcessRef.from_dict(lab3.record.hosts["compute-2"].agent)
    lab3.wait_converged()
    with lab3.client() as c:
        held = next(h for h in c.hosts() if h["host"] == "compute-2")["applied_revision"]
    resumed_at = log.stat().st_size
    os.kill(agent.pid, signal.SIGSTOP)
    # while it is stopped: a VM on another host (compute-2's L2 entries and static ARP
    # change), and one on compute-2 itself (a new local port; vm_add waits for the port to
    # be up, which needs the agent: in a thread)
    local = threading.Thread(target=lab3.lab.vm_add, args=("orange-7", "orange", "compute-2"))
    try:
        lab3.lab.vm_add("blue-7", "blue", "compute-1")
        local.start()
        with lab3.client() as c:
            lab3.wait_for(lambda: bool(c.list("ports", name="orange-7")), "orange-7's port")
        time.sleep(1)  # and its plugging
    finally:
        os.kill(agent.pid, signal.SIGCONT)
    try:
        local.join(60)
        lab3.wait_converged()
        assert lab3.ping("orange-7", "blue-7").returncode == 0
        assert lab3.ping("blue-1", "orange-7").returncode == 0
        with log.open(errors="replace") as f:
            f.seek(resumed_at)
            passes = [(int(m[1]), m[2]) for m in RECONCILE.finditer(f.read())]
        with lab3.client() as c:
            revision = next(h for h in c.hosts() if h["host"] == "compute-2")["applied_revision"]
        assert revision > held
        # fetched, or brought by the watch answer (``view_since``), or (a VIF's pass) the
        # view held, still current: never a full view
        assert passes and {kind for _, kind in passes} <= {"delta", "pushed-delta", "held"}, \
            passes
        assert revision in {r for r, _ in passes}
    finally:
        if local.is_alive():
            local.join(60)
        for name in ("orange-7", "blue-7"):
            if name in lab3.record.vms:
                lab3.lab.vm_del(name)
        lab3.wait_converged()
