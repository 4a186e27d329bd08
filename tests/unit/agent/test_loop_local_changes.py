"""The loop follows local changes a dataplane announces, instead of waiting for its poll,
and does not reconcile again for a VIF the last reconcile already programmed."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from dvr.agent.config import AgentConfig
from dvr.agent.loop import AgentLoop, ApplyOutcome, WakeSignal
from dvr.client import ViewAnswer, WatchResult
from dvr.model.hostview import HostView


def view(revision: int) -> HostView:
    return HostView(host="h", revision=revision, agent_mode="dvr", host_mac="fa:16:3f:00:00:01",
                    tunnel_ip="198.18.0.1", ports=(), networks=(), routers=(),
                    peer_host_macs=())


class QuietClient:
    """A server that never reports a change."""

    def __init__(self) -> None:
        self.heartbeats = 0

    def register_agent(self, host, mode, ip, datapath, zone="nova"):
        pass

    def host_mac(self, host):
        return "fa:16:3f:00:00:01"

    def fetch_view(self, host, since):
        return ViewAnswer(view(1), 0)

    def heartbeat(self, *args):
        self.heartbeats += 1

    def watch(self, host, since, timeout, view_since=None):
        time.sleep(min(timeout, 0.05))
        return WatchResult(revision=since, changes=(), resync=False)


class AnnouncingDataplane:
    """VIFs appear when the test says so; ``on_local_change`` subscribers are told."""

    def __init__(self, plugged_during_reconcile: frozenset[str] = frozenset()):
        self.vifs: frozenset[str] = frozenset()
        self.callbacks = []
        self.reconciles: list[frozenset[str]] = []
        self.plugged_during_reconcile = plugged_during_reconcile

    def on_local_change(self, callback) -> None:
        self.callbacks.append(callback)

    def plug(self, *iface_ids: str) -> None:
        self.vifs = self.vifs | frozenset(iface_ids)
        for callback in self.callbacks:
            callback()

    def plugged_vifs(self) -> frozenset[str]:
        return self.vifs

    def reconcile(self, v: HostView) -> ApplyOutcome:
        if self.plugged_during_reconcile and not self.reconciles:
            self.vifs = self.vifs | self.plugged_during_reconcile  # plugged meanwhile...
        self.reconciles.append(self.vifs)  # ...and seen by this very reconcile
        return ApplyOutcome(counts={}, errors=(), ports_up=(), plugged=self.vifs)


def config(**overrides) -> AgentConfig:
    values = dict(host="h", server="http://127.0.0.1:1", local_poll_interval=3600,
                  heartbeat_interval=3600, watch_timeout=0.05,
                  max_backoff=0.02)
    values.update(overrides)
    return AgentConfig(**values)


def run_loop(loop: AgentLoop, until, seconds: float = 5.0) -> bool:
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    deadline = time.monotonic() + seconds
    done = False
    while time.monotonic() < deadline and not done:
        done = until()
        time.sleep(0.01)
    stop.set()
    loop.wake.nudge()
    runner.join(5)
    return done


def test_a_nudge_ends_the_wait_but_is_not_a_poke():
    wake = WakeSignal()
    wake.nudge()
    assert wake.wait(5) is False and wake.poked_at is None
    wake.poke(4)
    wake.poke(5)
    assert wake.wait(5) is True and wake.poked_at is not None
    assert wake.latest_revision == 5
    assert wake.wait(0) is False


def test_an_announced_vif_is_reconciled_without_waiting_for_the_poll():
    dataplane = AnnouncingDataplane()
    loop = AgentLoop(config(), QuietClient(), dataplane)

    def plugged_then_reconciled() -> bool:
        if len(dataplane.reconciles) == 1 and not dataplane.vifs:
            dataplane.plug("port-1")
        return frozenset({"port-1"}) in dataplane.reconciles

    # the poll interval is an hour: only the announcement can explain the second reconcile
    assert run_loop(loop, plugged_then_reconciled)


def test_a_vif_the_reconcile_already_saw_causes_no_second_reconcile():
    dataplane = AnnouncingDataplane(plugged_during_reconcile=frozenset({"port-1"}))
    loop = AgentLoop(config(local_poll_interval=0.01), QuietClient(), dataplane)
    polls = 0

    def many_polls_later() -> bool:
        nonlocal polls
        polls += 1
        return polls > 30

    run_loop(loop, many_polls_later)
    assert dataplane.reconciles == [frozenset({"port-1"})]


class SilentDataplane(AnnouncingDataplane):
    on_local_change = None  # type: ignore[assignment]  # cannot announce anything


def test_a_dataplane_that_cannot_announce_is_still_polled():
    dataplane = SilentDataplane()
    loop = AgentLoop(config(local_poll_interval=0.01), QuietClient(), dataplane)

    def plugged_then_reconciled() -> bool:
        if len(dataplane.reconciles) == 1 and not dataplane.vifs:
            dataplane.vifs = frozenset({"port-1"})  # nobody is told
        return frozenset({"port-1"}) in dataplane.reconciles

    assert run_loop(loop, plugged_then_reconciled)


class CountingClient(QuietClient):
    """A quiet server that counts the views asked of it; ``revision`` is what it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches = 0
        self.revision = 1

    def fetch_view(self, host, since):
        self.fetches += 1
        return ViewAnswer(view(self.revision), 0)


def test_a_vif_pass_uses_the_view_held_when_no_newer_revision_is_known():
    client = CountingClient()
    loop = AgentLoop(config(), client, AnnouncingDataplane())
    loop.reconcile_once("start")
    assert client.fetches == 1
    outcome_view = loop.view
    loop.reconcile_once("vif")
    assert client.fetches == 1 and loop.view is outcome_view  # nothing asked of the server


def test_a_vif_pass_fetches_when_the_watch_told_of_a_newer_revision():
    client = CountingClient()
    loop = AgentLoop(config(), client, AnnouncingDataplane())
    loop.reconcile_once("start")
    client.revision = 2
    loop.wake.poke(2)  # told by the watch, not yet taken by the loop
    loop.reconcile_once("vif")
    assert client.fetches == 2 and loop.view.revision == 2


def test_other_passes_always_ask_the_server():
    client = CountingClient()
    loop = AgentLoop(config(), client, AnnouncingDataplane())
    for trigger in ("start", "watch", "gap", "watch"):
        loop.reconcile_once(trigger)
    assert client.fetches == 4


class LocalPassDataplane(AnnouncingDataplane):
    """Has ``reconcile_local`` (the VIF pass on the view held)."""

    def __init__(self) -> None:
        super().__init__()
        self.local_passes: list[frozenset[str]] = []

    def reconcile_local(self, v: HostView) -> ApplyOutcome:
        self.local_passes.append(self.vifs)
        return ApplyOutcome(counts={}, errors=(), ports_up=(), plugged=self.vifs)


def test_a_vif_on_the_view_held_is_a_local_pass():
    dataplane = LocalPassDataplane()
    loop = AgentLoop(config(), QuietClient(), dataplane)

    def plugged_then_passed() -> bool:
        if len(dataplane.reconciles) == 1 and not dataplane.vifs:
            dataplane.plug("port-1")
        return bool(dataplane.local_passes)

    assert run_loop(loop, plugged_then_passed)
    assert dataplane.reconciles == [frozenset()]  # the first pass: an ordinary one
    assert dataplane.local_passes == [frozenset({"port-1"})]


class DeferringDataplane(AnnouncingDataplane):
    """Its first pass leaves its full phase for later (unverified), when a poke waits."""

    def __init__(self) -> None:
        super().__init__()
        self.check = None
        self.deferred = 0

    def interrupt_with(self, check, settle=None) -> None:
        self.check = check

    def reconcile(self, v: HostView) -> ApplyOutcome:
        outcome = super().reconcile(v)
        if self.deferred == 0 and self.check is not None:
            self.deferred += 1
            return replace(outcome, verified=False)
        return outcome


class ReportingClient(QuietClient):
    """A quiet server that notes the revision each report names."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[int] = []

    def heartbeat(self, host, revision, *args, **kwargs):
        self.reports.append(revision)


def test_an_unverified_pass_is_followed_at_once_by_a_pass_and_only_that_one_reports():
    dataplane = DeferringDataplane()
    client = ReportingClient()
    loop = AgentLoop(config(), client, dataplane)  # polls hourly: only the loop itself
    assert run_loop(loop, lambda: len(dataplane.reconciles) >= 2, seconds=3)
    assert dataplane.check is not None and dataplane.check() is False
    loop.wake.poke(7)
    assert dataplane.check() is True
    assert client.reports == [1]  # the second pass's, with the revision it applied


class PokedDuringReconcile(AnnouncingDataplane):
    """The server tells of a change while the first pass runs."""

    def __init__(self) -> None:
        super().__init__()
        self.wake: WakeSignal | None = None
        self.revision: int | None = None  # of the change told of (None: a resync)

    def reconcile(self, v: HostView) -> ApplyOutcome:
        if not self.reconciles and self.wake is not None:
            self.wake.poke(self.revision)
        return super().reconcile(v)


def test_a_pass_with_a_change_waiting_leaves_its_report_to_the_next_pass():
    dataplane = PokedDuringReconcile()
    client = ReportingClient()
    loop = AgentLoop(config(), client, dataplane)
    dataplane.wake = loop.wake
    loop.reconcile_once("start")
    assert client.reports == [] and loop.unreported is not None
    assert run_loop(loop, lambda: len(dataplane.reconciles) >= 2 and client.reports)
    assert client.reports == [1] and loop.unreported is None


def test_a_report_held_back_is_sent_once_the_loop_is_idle():
    dataplane = PokedDuringReconcile()
    dataplane.revision = 1  # the change told of is the one the pass applies
    client = ReportingClient()
    loop = AgentLoop(config(), client, dataplane)
    dataplane.wake = loop.wake
    assert run_loop(loop, lambda: bool(client.reports), seconds=2)
    assert dataplane.reconciles == [frozenset()] and client.reports == [1]
