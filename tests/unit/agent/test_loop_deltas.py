"""The agent fetches ``view?since=<the revision it holds>`` and patches its view with the
delta; it takes the full view at start, when the server no longer holds its view, and when
a delta does not apply.  The server side is the real one (``ServedViews``, ``view_update``,
the JSON encoding) behind the real client, over an in-memory HTTP transport."""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx

from dvr.agent.config import AgentConfig
from dvr.agent.loop import AgentLoop, ApplyOutcome
from dvr.client import ServerClient
from dvr.model.hostview import FixedIp, HostView, L2Entry, NetworkView, PortView, RemoteHost
from dvr.server.hostview_served import ServedViews, view_update
from dvr.server.serialize import to_jsonable


def port(port_id: str) -> PortView:
    return PortView(id=port_id, network_id="n", mac_address="fa:16:3e:00:00:01",
                    fixed_ips=(FixedIp("s", "192.0.2.10"),), device_owner="compute:nova",
                    device_id="vm", host="h")


def view(revision: int, port_ids=("p1",), remote=("h2",)) -> HostView:
    network = NetworkView("n", "n", "vxlan", 7, 1450, False, None, (), tuple(
        RemoteHost(r, "198.18.0.2", (L2Entry("fa:16:3e:00:00:02", ("192.0.2.20",)),))
        for r in remote))
    return HostView(host="h", revision=revision, agent_mode="dvr", host_mac="fa:16:3f:00:00:01",
                    tunnel_ip="198.18.0.1", ports=tuple(port(p) for p in port_ids),
                    networks=(network,), routers=(), peer_host_macs=())


class DeltaServer:
    """``view?since=R`` as the server answers it, for a view the test sets; a watch
    answers with one change, and with ``view_since=R`` also with what ``view?since=R``
    answers (unless ``shedding``)."""

    def __init__(self, current: HostView):
        self.current = current
        self.served = ServedViews()
        self.since: list[int] = []  # of the view requests
        self.view_since: list[int | None] = []  # of the watch requests
        self.shedding = False

    def view_answer(self, since: int) -> dict:
        update = view_update(self.served, self.current, since)
        if update is self.current:
            return {**to_jsonable(update), "full": True}
        return {**update.to_dict(), "full": False}

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/heartbeat"):
            return httpx.Response(200, json={})
        if request.url.path.endswith("/watch"):
            raw = request.url.params.get("view_since")
            self.view_since.append(None if raw is None else int(raw))
            answer = {"revision": self.current.revision, "resync": False,
                      "changes": [{"kind": "port", "id": "p2"}]}
            if raw is not None and not self.shedding:
                answer["view"] = self.view_answer(int(raw))
            return httpx.Response(200, json=answer)
        since = int(request.url.params["since"])
        self.since.append(since)
        return httpx.Response(200, json=self.view_answer(since))


class RecordingDataplane:
    def __init__(self) -> None:
        self.views: list[HostView] = []

    def reconcile(self, v: HostView) -> ApplyOutcome:
        self.views.append(v)
        return ApplyOutcome(counts={}, errors=(), ports_up=tuple(p.id for p in v.ports))

    def plugged_vifs(self) -> frozenset[str]:
        return frozenset()


def agent(server: DeltaServer) -> tuple[AgentLoop, RecordingDataplane]:
    client = ServerClient("http://dvr-server")
    client._http = httpx.Client(transport=httpx.MockTransport(server.handle),
                                base_url="http://dvr-server")
    dataplane = RecordingDataplane()
    return AgentLoop(AgentConfig(host="h", server="http://dvr-server"), client, dataplane), \
        dataplane


def test_the_agent_starts_in_full_then_patches_its_view_with_deltas(caplog):
    server = DeltaServer(view(1))
    loop, dataplane = agent(server)
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.reconcile_once()
        server.current = view(4, port_ids=("p1", "p2"), remote=("h2", "h3"))
        loop.reconcile_once("watch")
        server.current = view(5, port_ids=("p2",), remote=("h3",))
        loop.reconcile_once("watch")
    assert server.since == [0, 1, 4]
    assert dataplane.views == [view(1), view(4, ("p1", "p2"), ("h2", "h3")),
                               view(5, ("p2",), ("h3",))]
    assert loop.applied_revision == 5
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reconcile ")]
    assert [line.split(" view=")[1].split()[0] for line in lines] == ["full", "delta", "delta"]
    sizes = [int(line.split(" view_bytes=")[1].split()[0]) for line in lines]
    assert sizes[1] < sizes[0]  # the delta is smaller than the whole view


def test_a_server_that_no_longer_holds_the_agents_view_answers_in_full(caplog):
    server = DeltaServer(view(1))
    loop, dataplane = agent(server)
    loop.reconcile_once()
    server.served = ServedViews()  # e.g. the server restarted
    server.current = view(2, port_ids=("p1", "p2"))
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.reconcile_once("watch")
    assert server.since == [0, 1]
    assert dataplane.views[-1] == view(2, port_ids=("p1", "p2"))
    assert " view=full " in caplog.records[-1].getMessage()


def test_a_delta_that_does_not_apply_is_dropped_for_the_full_view(caplog):
    server = DeltaServer(view(1))
    loop, dataplane = agent(server)
    loop.reconcile_once()
    # the server's view at revision 1 is not the one the agent holds (p9): its delta removes
    # a port the agent does not have
    server.served.remember(view(1, port_ids=("p1", "p9")))
    server.current = view(2)
    with caplog.at_level(logging.WARNING, "dvr.agent"):
        loop.reconcile_once("watch")
    assert server.since == [0, 1, 0]
    assert dataplane.views[-1] == view(2)
    assert any("delta refused" in r.getMessage() for r in caplog.records)


def test_the_held_view_survives_a_failed_reconcile():
    server = DeltaServer(view(3))
    loop, dataplane = agent(server)
    outcomes = iter([ApplyOutcome(counts={}, errors=("flows: switch busy",), ports_up=())])
    plain = dataplane.reconcile
    dataplane.reconcile = lambda v: next(outcomes, None) or plain(v)
    loop.reconcile_once()
    assert loop.applied_revision == 0  # not applied
    server.current = replace(view(3), revision=6)
    loop.reconcile_once("watch")
    assert server.since == [0, 3]  # but held: the next answer is a delta from it
    assert loop.applied_revision == 6


def started_agent() -> tuple[DeltaServer, AgentLoop, RecordingDataplane]:
    """An agent that reconciled once: it holds the server's view at revision 1."""
    server = DeltaServer(view(1))
    loop, dataplane = agent(server)
    loop.reconcile_once()
    return server, loop, dataplane


def view_kinds(caplog) -> list[str]:
    return [r.getMessage().split(" view=")[1].split()[0] for r in caplog.records
            if r.getMessage().startswith("reconcile ")]


def test_the_view_update_a_watch_brought_is_used_without_asking_again(caplog):
    server = DeltaServer(view(1))
    loop, dataplane = agent(server)
    loop.watch_once(0)  # holding no view, the watch asks for none
    loop.reconcile_once()
    server.current = view(4, port_ids=("p1", "p2"), remote=("h2", "h3"))
    with caplog.at_level(logging.INFO, "dvr.agent"):
        assert loop.watch_once(1) == 4
        assert loop.wake.wait(0) and loop.wake.latest_revision == 4
        loop.reconcile_once("watch")
    assert server.view_since == [None, 1]
    assert server.since == [0]  # no second round trip
    assert dataplane.views[-1] == view(4, ("p1", "p2"), ("h2", "h3"))
    assert view_kinds(caplog) == ["pushed-delta"]
    # the pushed view is what the server remembers: the next answers are deltas from it
    server.current = view(5, port_ids=("p2",), remote=("h3",))
    loop.watch_once(4)
    loop.reconcile_once("watch")
    assert server.view_since[-1] == 4 and server.since == [0]
    assert dataplane.views[-1] == view(5, ("p2",), ("h3",))


def test_a_busy_server_leaves_the_view_out_and_the_loop_asks_for_it(caplog):
    server, loop, dataplane = started_agent()
    server.current = view(2, port_ids=("p1", "p2"))
    server.shedding = True
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.watch_once(1)
        loop.reconcile_once("watch")
    assert server.since == [0, 1]
    assert dataplane.views[-1] == view(2, port_ids=("p1", "p2"))
    assert view_kinds(caplog) == ["delta"]


def test_an_update_older_than_a_revision_the_watch_told_of_is_not_used(caplog):
    server, loop, dataplane = started_agent()
    server.current = view(4, port_ids=("p1", "p2"))
    loop.watch_once(1)
    loop.wake.poke(6)  # a later answer (without a view) told of revision 6
    server.current = view(6, port_ids=("p2",))
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.reconcile_once("watch")
    assert server.since == [0, 1]
    assert dataplane.views[-1] == view(6, port_ids=("p2",))
    assert view_kinds(caplog) == ["delta"]


def test_the_watch_asks_from_the_view_it_brought_before_the_loop_took_it(caplog):
    server, loop, dataplane = started_agent()
    server.current = view(4, port_ids=("p1", "p2"))
    loop.watch_once(1)
    server.current = view(5, port_ids=("p2",))
    loop.watch_once(4)  # the loop was busy: it has not taken revision 4
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.reconcile_once("watch")
    assert server.view_since == [1, 4] and server.since == [0]
    assert dataplane.views[-1] == view(5, port_ids=("p2",))
    assert view_kinds(caplog) == ["pushed-delta"]


def test_a_view_brought_is_not_used_when_the_loop_holds_one_as_new(caplog):
    server, loop, dataplane = started_agent()
    # the watch asks from revision 1 ...
    base = loop.pushed.base()
    server.current = view(3, port_ids=("p1", "p3"))
    older = loop.client.watch("h", 1, 0, view_since=base.revision)
    server.current = view(4, port_ids=("p1", "p2"))
    same = loop.client.watch("h", 1, 0, view_since=base.revision)
    # ... while a revision gap's reconcile fetches revision 4
    loop.reconcile_once("gap")
    loop.pushed.bring(base, older.view)  # older than what the loop holds
    loop.wake.poke(3)
    server.current = view(5, port_ids=("p1",))
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.reconcile_once("watch")
        assert server.since == [0, 1, 4]  # asked from the view held
        loop.pushed.bring(base, same.view)  # revision 4: older than what the loop holds
        loop.wake.poke(4)
        loop.reconcile_once("watch")
    assert server.since == [0, 1, 4, 5]
    assert dataplane.views[-1] == view(5, port_ids=("p1",))
    assert view_kinds(caplog) == ["delta", "delta"]


def test_a_view_brought_from_an_older_base_than_the_loop_holds_is_used_when_newer(caplog):
    server, loop, dataplane = started_agent()
    base = loop.pushed.base()
    server.current = view(3, port_ids=("p1", "p3"))
    loop.reconcile_once("gap")  # the loop holds revision 3
    server.current = view(4, port_ids=("p1", "p2"))
    answer = loop.client.watch("h", 1, 0, view_since=base.revision)  # asked from 1
    loop.pushed.bring(base, answer.view)
    loop.wake.poke(4)
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.reconcile_once("watch")
    assert server.since == [0, 1]
    assert dataplane.views[-1] == view(4, port_ids=("p1", "p2"))
    assert view_kinds(caplog) == ["pushed-delta"]


def test_a_pushed_delta_that_does_not_apply_is_dropped_and_the_loop_asks(caplog):
    server, loop, dataplane = started_agent()
    server.served.remember(view(1, port_ids=("p1", "p9")))  # not the view the agent holds
    server.current = view(2)
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.watch_once(1)
        loop.reconcile_once("watch")
    assert server.since == [0, 1, 0]  # the delta from 1 does not apply either: in full
    assert dataplane.views[-1] == view(2)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("pushed delta refused") for m in messages)
    assert view_kinds(caplog) == ["full"]


def test_a_pushed_full_view_is_used_whatever_the_agent_held(caplog):
    server, loop, dataplane = started_agent()
    server.served = ServedViews()  # e.g. the server restarted
    server.current = view(2, port_ids=("p1", "p2"))
    with caplog.at_level(logging.INFO, "dvr.agent"):
        loop.watch_once(1)
        loop.reconcile_once("watch")
    assert server.since == [0]
    assert dataplane.views[-1] == view(2, port_ids=("p1", "p2"))
    assert view_kinds(caplog) == ["pushed-full"]
