import json
import logging
import threading
import time

import httpx
import pytest

from dvr.agent.config import AgentConfig
from dvr.agent.loop import AgentLoop, AgentRefused, ApplyOutcome, WakeSignal
from dvr.client import ServerClient, ServerError, ViewAnswer, WatchResult
from dvr.model.hostview import LAYOUT_CHOICES, FixedIp, HostView, PortView


def view(revision, port_ids=("p1",)):
    ports = tuple(PortView(id=p, network_id="n", mac_address="fa:16:3e:00:00:01",
                           fixed_ips=(FixedIp("s", "192.0.2.10"),), device_owner="compute:nova",
                           device_id="vm", host="h") for p in port_ids)
    return HostView(host="h", revision=revision, agent_mode="dvr", host_mac="fa:16:3f:00:00:01",
                    tunnel_ip="198.18.0.1", ports=ports, networks=(), routers=(),
                    peer_host_macs=())


class FakeClient:
    def __init__(self, views):
        self.views = list(views)
        self.heartbeats = []
        self.registered = []
        self.watch_results = []
        self.watch_event = threading.Event()

    def register_agent(self, host, mode, ip, datapath, zone="nova"):
        self.registered.append((host, mode))

    def host_mac(self, host):
        return "fa:16:3f:00:00:01"

    def host_view(self, host):
        return self.views[0] if len(self.views) == 1 else self.views.pop(0)

    def fetch_view(self, host, since):  # a server without deltas: always the full view
        return ViewAnswer(self.host_view(host), 0)

    def heartbeat(self, host, rev, up, down, vifs, vlans):
        self.heartbeats.append((rev, tuple(up), tuple(down)))

    def watch(self, host, since, timeout, view_since=None):
        self.watch_event.wait(timeout)
        self.watch_event.clear()
        if self.watch_results:
            return self.watch_results.pop(0)
        return WatchResult(revision=since, changes=(), resync=False)


class FakeDataplane:
    def __init__(self, fail_times=0):
        self.fail_times = fail_times
        self.views = []

    def reconcile(self, v):
        self.views.append(v.revision)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("switch unreachable")
        return ApplyOutcome(counts={"flows_added": 1}, errors=(),
                            ports_up=tuple(p.id for p in v.ports))

    def plugged_vifs(self):
        return frozenset()


def config(**kw):
    base = dict(host="h", server="http://127.0.0.1:1", local_poll_interval=0.01,
                heartbeat_interval=3600, watch_timeout=0.05,
                max_backoff=0.02)
    base.update(kw)
    return AgentConfig(**base)


def run_until(loop, predicate, seconds=5.0):
    stop = threading.Event()
    t = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    t.start()
    finished = threading.Event()

    def check():
        while not stop.is_set():
            if predicate():
                finished.set()
                stop.set()
            stop.wait(0.01)

    threading.Thread(target=check, daemon=True).start()
    t.join(seconds)
    stop.set()
    t.join(2)
    return finished.is_set()


def test_once_reconciles_and_reports_ports_up():
    client, dp = FakeClient([view(7)]), FakeDataplane()
    AgentLoop(config(), client, dp).run(threading.Event(), once=True)
    assert client.registered == [("h", "dvr")]
    assert dp.views == [7]
    assert client.heartbeats == [(7, ("p1",), ())]


def test_watch_change_triggers_a_fresh_reconcile():
    client, dp = FakeClient([view(1), view(2)]), FakeDataplane()
    client.watch_results = [WatchResult(revision=2, changes=(("port", "p1"),), resync=False)]
    loop = AgentLoop(config(), client, dp)

    def poke_after_first():
        if dp.views == [1]:
            client.watch_event.set()
        return dp.views[-2:] == [1, 2] if len(dp.views) >= 2 else False

    assert run_until(loop, poke_after_first)
    assert loop.applied_revision == 2


def test_failing_reconcile_is_retried_and_loop_survives():
    client, dp = FakeClient([view(3)]), FakeDataplane(fail_times=2)
    loop = AgentLoop(config(), client, dp)
    assert run_until(loop, lambda: loop.applied_revision == 3)
    assert dp.views[:3] == [3, 3, 3]


class FakeStop:
    """A stop event that never sleeps: it records each wait and is set after ``checks``
    calls of ``is_set`` (one per turn of a loop)."""

    def __init__(self, checks):
        self.checks = checks
        self.waits = []

    def is_set(self):
        self.checks -= 1
        return self.checks < 0

    def wait(self, timeout):
        self.waits.append(timeout)
        return False


class ScriptedClient(FakeClient):
    """Each call of ``call_name`` takes the next item of ``script``: raised if an error."""

    def __init__(self, call_name, script):
        super().__init__([view(3)])
        self.script = list(script)
        original = getattr(self, call_name)

        def scripted(*args):
            item = self.script.pop(0) if self.script else None
            if isinstance(item, Exception):
                raise item
            return original(*args)

        setattr(self, call_name, scripted)


class ChangingVifs(FakeDataplane):
    """Reports a different set of plugged VIFs on every look, so each loop turn reconciles."""

    looks = 0

    def plugged_vifs(self):
        self.looks += 1
        return frozenset({f"vif-{self.looks}"})


def half():
    return 0.5


def test_register_retries_transient_errors_with_jittered_backoff():
    unavailable = ServerError(503, "ServiceUnavailable", "starting")
    client = ScriptedClient("register_agent", [httpx.ConnectError("refused"), unavailable])
    loop = AgentLoop(config(max_backoff=30.0), client, FakeDataplane(), random=half)
    stop = FakeStop(checks=10)
    assert loop.register(stop) == "fa:16:3f:00:00:01"
    assert stop.waits == [0.375, 0.75]  # 0.5 s then 1 s, each at 3/4 of its step


class MacOnRegistration(FakeClient):
    """A server that answers a registration with the host's MAC (or None), and counts the
    ``host-mac`` requests."""

    def __init__(self, answer):
        super().__init__([view(3)])
        self.answer = answer
        self.mac_requests = 0

    def register_agent(self, host, mode, ip, datapath, zone="nova"):
        super().register_agent(host, mode, ip, datapath, zone)
        return self.answer

    def host_mac(self, host):
        self.mac_requests += 1
        return super().host_mac(host)


@pytest.mark.parametrize(("answer", "mac", "asked"), [
    ({"agents": [], "host_mac": "fa:16:3f:00:00:09"}, "fa:16:3f:00:00:09", 0),
    ({"agents": [], "host_mac": None}, "fa:16:3f:00:00:01", 1),  # none yet: allocated
    ({"agents": []}, "fa:16:3f:00:00:01", 1),  # a server from before the key
    ({"agents": [], "host_mac": 7}, "fa:16:3f:00:00:01", 1),
    (None, "fa:16:3f:00:00:01", 1),
])
def test_the_mac_a_registration_answers_with_spares_the_host_mac_request(answer, mac, asked):
    client = MacOnRegistration(answer)
    loop = AgentLoop(config(), client, FakeDataplane(), random=half)
    assert loop.register(FakeStop(checks=10)) == mac
    assert client.mac_requests == asked


def test_register_refused_for_good_stops_the_agent_after_one_try(caplog):
    client = ScriptedClient("register_agent", [ServerError(400, "BadRequest", "invalid mode")])
    loop = AgentLoop(config(), client, FakeDataplane(), random=half)
    stop = FakeStop(checks=10)
    with pytest.raises(AgentRefused, match="invalid mode"):
        loop.register(stop)
    assert stop.waits == []
    assert [r.levelno for r in caplog.records if r.name == "dvr.agent"] == [logging.ERROR]


def test_a_transient_reconcile_failure_is_retried_after_a_jittered_backoff():
    client, dp = FakeClient([view(3)]), FakeDataplane(fail_times=1)
    loop = AgentLoop(config(local_poll_interval=0, max_backoff=30.0), client, dp, random=half)
    stop = FakeStop(checks=2)
    loop._main_loop(stop)
    assert stop.waits == [0.375]
    assert dp.views == [3, 3] and loop.applied_revision == 3


def test_a_permanent_reconcile_failure_waits_for_a_change_and_is_logged_once(caplog):
    gone = ServerError(404, "HostNotFound", "host h is not registered")
    client, dp = ScriptedClient("host_view", [gone, gone]), ChangingVifs()
    loop = AgentLoop(config(local_poll_interval=0), client, dp, random=half)
    stop = FakeStop(checks=3)
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop._main_loop(stop)
    assert stop.waits == []  # no retry on a timer: each turn was a new VIF (a change)
    assert dp.views == [3] and loop.applied_revision == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["reconcile failed and retrying cannot fix it: 404 HostNotFound: host h "
                      "is not registered; waiting for a change"]
    assert "reconcile works again" in [r.getMessage() for r in caplog.records]


class RecordingWatches(FakeClient):
    """Its watches raise the errors of ``script`` first, then answer ``results`` (then
    nothing changed); each watch's timeout is recorded."""

    def __init__(self, script, results):
        super().__init__([view(3)])
        self.script = list(script)
        self.watch_results = list(results)
        self.timeouts = []

    def watch(self, host, since, timeout, view_since=None):
        self.timeouts.append(timeout)
        if self.script:
            raise self.script.pop(0)
        return super().watch(host, since, 0, view_since)


def test_the_watch_reconnects_with_jittered_backoff_and_catches_up_at_once():
    """After failed watches the next asks at once what changed meanwhile: nothing did, so
    the loop is not woken (no view is fetched again); then long polls as before."""
    client = RecordingWatches([httpx.ReadTimeout("server gone"), httpx.ConnectError("refused")],
                              [WatchResult(revision=4, changes=(), resync=False)])
    loop = AgentLoop(config(max_backoff=30.0, watch_timeout=25), client, FakeDataplane(),
                     random=half)
    loop.pushed.hold(view(3))  # as after the loop's first reconcile
    stop = FakeStop(checks=4)
    loop.watch_forever(stop)
    assert stop.waits == [0.375, 0.75]
    assert client.timeouts == [25, 0.0, 0.0, 25]  # catch-ups until one is answered
    assert loop.wake.wait(0) is False  # nothing was missed: no resync


def test_a_change_missed_while_the_watch_failed_wakes_the_loop_when_it_catches_up():
    client = RecordingWatches([httpx.ConnectError("refused")],
                              [WatchResult(revision=9, changes=(("port", "p1"),), resync=False)])
    loop = AgentLoop(config(max_backoff=30.0, watch_timeout=25), client, FakeDataplane(),
                     random=half)
    loop.pushed.hold(view(3))  # as after the loop's first reconcile
    loop.watch_forever(FakeStop(checks=2))
    assert client.timeouts == [25, 0.0]
    assert loop.wake.wait(0) is True and loop.wake.latest_revision == 9


def test_a_closing_server_is_asked_again_after_its_retry_after_without_a_failure(caplog):
    """A watch the server ended because it is shutting down: the agent waits its
    Retry-After (jittered: never earlier), then catches up at once; nothing is logged as a
    failure and the backoff does not grow."""
    client = RecordingWatches([httpx.ConnectError("refused")],
                              [WatchResult(revision=3, changes=(), resync=False, closing=2.0),
                               WatchResult(revision=3, changes=(), resync=False)])
    loop = AgentLoop(config(max_backoff=30.0, watch_timeout=25), client, FakeDataplane(),
                     random=half)
    loop.pushed.hold(view(3))  # as after the loop's first reconcile
    stop = FakeStop(checks=4)
    with caplog.at_level(logging.INFO, logger="dvr.agent"):
        loop.watch_forever(stop)
    assert client.timeouts == [25, 0.0, 0.0, 25]
    # the connection failure's first backoff, the Retry-After and a quarter (half jitter)
    assert stop.waits == [0.375, 2.5]
    assert [r.levelname for r in caplog.records if "shutting down" in r.message] == ["INFO"]
    assert loop.wake.wait(0) is False  # nothing changed: no view is fetched again


def test_a_long_poll_waits_until_the_loop_holds_a_view_and_asks_updates_from_it():
    """An agent starting: its watch waits for the loop's first view, so that it asks for
    the update from that view (the next change's view comes with the watch's answer, not
    in a request of its own)."""
    asked = []

    class Client(FakeClient):
        def watch(self, host, since, timeout, view_since=None):
            asked.append((since, timeout, view_since))
            if len(asked) == 2:
                stop.set()
            return WatchResult(revision=4, changes=(("port", "p1"),), resync=False)

    loop = AgentLoop(config(watch_timeout=25), Client([view(3)]), FakeDataplane())
    stop = threading.Event()
    holder = threading.Timer(0.3, lambda: loop.pushed.hold(view(3)))
    holder.start()
    started = time.monotonic()
    loop.watch_forever(stop)
    waited = time.monotonic() - started
    holder.join()
    assert asked == [(0, 25, 3), (4, 25, 3)]
    assert 0.25 < waited < 5


def test_a_long_poll_without_a_view_goes_ahead_after_one_long_polls_time():
    asked = []

    class Client(FakeClient):
        def watch(self, host, since, timeout, view_since=None):
            asked.append((since, view_since))
            if len(asked) == 2:
                stop.set()
            return WatchResult(revision=3, changes=(), resync=False)

    loop = AgentLoop(config(watch_timeout=0.3), Client([view(3)]), FakeDataplane())
    stop = threading.Event()
    loop.watch_forever(stop)
    assert asked == [(0, None), (3, None)]  # each after 0.3 s without a view


def test_a_catch_up_the_server_cannot_answer_from_its_log_resyncs():
    client = RecordingWatches([httpx.ConnectError("refused")],
                              [WatchResult(revision=2, changes=(), resync=True)])
    loop = AgentLoop(config(max_backoff=30.0, watch_timeout=25), client, FakeDataplane(),
                     random=half)
    loop.pushed.hold(view(3))  # as after the loop's first reconcile
    loop.watch_forever(FakeStop(checks=2))
    assert loop.wake.wait(0) is True and loop.wake.only_revisions is False


def test_until_asks_again_at_each_poke_or_nudge_and_leaves_them_to_the_next_wait():
    wake = WakeSignal()
    assert wake.until(0.01, lambda: False) is False
    assert wake.until(5, lambda: True) is True
    numbered = threading.Event()  # the switch numbers the port a moment after its row

    def plug() -> None:
        wake.nudge()  # the OVSDB row: nothing new yet
        time.sleep(0.05)
        numbered.set()
        wake.nudge()  # its number

    asked = []

    def news() -> bool:
        asked.append(numbered.is_set())
        return numbered.is_set()

    started = time.monotonic()
    threading.Thread(target=plug).start()
    assert wake.until(5, news) is True and time.monotonic() - started < 4
    assert asked[-1] is True and asked.count(True) == 1
    assert wake.wait(5) is False  # the nudges are left to the loop's wait: no poke
    wake.poke(7)
    assert wake.until(5, wake.poked) is True and wake.wait(5) is True
    assert wake.latest_revision == 7 and wake.until(0.01, wake.poked) is False


def test_wake_signal_collapses_pokes():
    w = WakeSignal()
    w.poke(5)
    w.poke(3)
    assert w.wait(0) is True
    assert w.wait(0) is False
    assert w.latest_revision == 5


def test_heartbeat_reports_the_bridge_mappings_only_when_there_are_some():
    class MappingsClient(FakeClient):
        def heartbeat(self, host, rev, up, down, vifs, vlans, **extra):
            self.heartbeats.append(extra)

    plain = MappingsClient([view(1)])
    AgentLoop(config(), plain, FakeDataplane()).run(threading.Event(), once=True)
    assert plain.heartbeats == [{}]
    mapped = MappingsClient([view(1)])
    AgentLoop(config(bridge_mappings=("public:br-ex",)), mapped, FakeDataplane()).run(
        threading.Event(), once=True)
    assert mapped.heartbeats == [{"bridge_mappings": {"public": "br-ex"}}]


def test_heartbeat_reports_east_west_only_when_it_is_not_the_default():
    class LayoutClient(FakeClient):
        def heartbeat(self, host, rev, up, down, vifs, vlans, **extra):
            self.heartbeats.append(extra)

    namespace = LayoutClient([view(1)])
    AgentLoop(config(east_west="namespace"), namespace, FakeDataplane()).run(
        threading.Event(), once=True)
    assert namespace.heartbeats == [{"east_west": "namespace"}]


class AnsweringClient(FakeClient):
    """Heartbeat answers carry the server's newest revision for the host."""

    def __init__(self, views, server_revision):
        super().__init__(views)
        self.server_revision = server_revision

    def heartbeat(self, host, rev, up, down, vifs, vlans, **layout):
        super().heartbeat(host, rev, up, down, vifs, vlans)
        return {"host": host, "alive": True, "revision": self.server_revision}


def test_no_timer_resyncs_when_the_revisions_agree():
    client, dp = AnsweringClient([view(5)], server_revision=5), FakeDataplane()
    loop = AgentLoop(config(heartbeat_interval=0.01, resync_jitter=0.0), client, dp)
    assert run_until(loop, lambda: len(client.heartbeats) >= 20)
    assert dp.views == [5]  # one reconcile at start, none since


def test_a_revision_gap_is_resynced_after_a_jittered_wait(caplog):
    client, dp = AnsweringClient([view(5), view(9)], server_revision=9), FakeDataplane()
    draws = iter([0.5] * 1000)
    loop = AgentLoop(config(heartbeat_interval=0.01, resync_jitter=0.2), client, dp,
                     random=lambda: next(draws))
    with caplog.at_level(logging.INFO, logger="dvr.agent"):
        assert run_until(loop, lambda: loop.applied_revision == 9)
    assert dp.views == [5, 9]
    assert "revision gap: the server has revision 9 for this host, the agent 5; resync in" \
        in caplog.text


def test_a_gap_waits_a_random_part_of_the_jitter():
    loop = AgentLoop(config(resync_jitter=4.0), FakeClient([view(1)]), FakeDataplane())
    loop.applied_revision = 3
    assert not loop.revision_gap(3) and not loop.revision_gap(None)
    assert loop.revision_gap(4)
    loop.wake.poke(4)  # the watch told of 4: the loop fetches it anyway
    assert not loop.revision_gap(4)


def test_a_watch_event_for_a_revision_already_applied_causes_no_second_reconcile():
    client, dp = FakeClient([view(2)]), FakeDataplane()
    # the change at revision 2 was fetched by the first reconcile (a VIF's, say) before
    # its watch event came; the one at 3 was not
    client.watch_results = [WatchResult(revision=2, changes=(("port", "p1"),), resync=False),
                            WatchResult(revision=3, changes=(("port", "p1"),), resync=False)]
    loop = AgentLoop(config(local_poll_interval=3600, watch_timeout=30), client, dp)
    told_2_at = None

    def both_events_told() -> bool:
        nonlocal told_2_at
        if dp.views == [2] and len(client.watch_results) == 2:
            client.watch_event.set()  # tell of revision 2
        elif len(client.watch_results) == 1 and told_2_at is None:
            told_2_at = time.monotonic()
        elif told_2_at is not None and time.monotonic() > told_2_at + 0.2 \
                and client.watch_results:
            client.views = [view(3)]
            client.watch_event.set()  # tell of revision 3
        return dp.views[-1:] == [3]

    assert run_until(loop, both_events_told)
    assert dp.views == [2, 3]


def test_a_resync_is_reconciled_even_at_a_revision_already_applied():
    wake = WakeSignal()
    wake.poke(5)
    assert wake.wait(0) is True and wake.only_revisions
    wake.poke(5, resync=True)
    assert wake.wait(0) is True and not wake.only_revisions
    wake.poke()
    assert wake.wait(0) is True and not wake.only_revisions


def test_the_real_client_sends_every_layout_setting_the_loop_reports():
    """The loop's report (``layout_report``) through the real ``ServerClient.heartbeat``,
    for each layout setting away from its default: the body carries it (a client whose
    signature lacked one failed every report of such an agent)."""
    sent: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"host": "compute-1", "alive": True})

    for name, (choices, default) in LAYOUT_CHOICES.items():
        other = next(c for c in choices if c != default)
        loop = AgentLoop(config(**{name: other}, bridge_mappings=("public:br-ex",)),
                         FakeClient([view(1)]), FakeDataplane())
        client = ServerClient("http://dvr-server")
        client._http = httpx.Client(transport=httpx.MockTransport(answer),
                                    base_url="http://dvr-server")
        client.heartbeat("compute-1", 1, [], [], {}, {}, **loop.layout_report())
        assert sent[-1][name] == other
        assert sent[-1]["bridge_mappings"] == {"public": "br-ex"}
    assert len(sent) == len(LAYOUT_CHOICES) == 2
