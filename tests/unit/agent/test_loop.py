import threading

from dvr.agent.config import AgentConfig
from dvr.agent.loop import AgentLoop, ApplyOutcome, WakeSignal, backoff_delay
from dvr.client import WatchResult
from dvr.model.hostview import FixedIp, HostView, PortView


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

    def register_agent(self, host, mode, ip, datapath):
        self.registered.append((host, mode))

    def host_mac(self, host):
        return "fa:16:3f:00:00:01"

    def host_view(self, host):
        return self.views[0] if len(self.views) == 1 else self.views.pop(0)

    def heartbeat(self, host, rev, up, down, vifs, vlans):
        self.heartbeats.append((rev, tuple(up), tuple(down)))

    def watch(self, host, since, timeout):
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
                resync_interval=3600, heartbeat_interval=3600, watch_timeout=0.05,
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


def test_backoff_grows_and_is_capped():
    assert [backoff_delay(n, 4.0) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_wake_signal_collapses_pokes():
    w = WakeSignal()
    w.poke(5)
    w.poke(3)
    assert w.wait(0) is True
    assert w.wait(0) is False
    assert w.latest_revision == 5
