"""Load shedding: bounded view builds and queue, 503 + Retry-After beyond them, and a queued
view whose client left is never built."""

import asyncio
import json

import pytest

from dvr.server.config import LoadLimits
from dvr.server.loadshed import (
    MAX_RETRY_AFTER,
    TURN_GAP_WEIGHT,
    LoadSheddingMiddleware,
    ViewGate,
    backlog_retry_after,
)

VIEW = "/dvr/v1/hosts/compute-1/view"


class Client:
    """One request: its receive (the body, then a disconnect when ``leave`` is called) and
    what was sent back."""

    def __init__(self, path=VIEW, method="GET", query=b""):
        self.scope = {"type": "http", "method": method, "path": path, "headers": [],
                      "query_string": query}
        self.left = asyncio.Event()
        self.body_sent = False
        self.messages = []

    async def receive(self):
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message):
        self.messages.append(message)

    def leave(self):
        self.left.set()

    @property
    def status(self):
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    def header(self, name):
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return dict(start["headers"]).get(name.encode())

    def error_type(self):
        body = b"".join(m.get("body", b"") for m in self.messages if "body" in m)
        return json.loads(body)["NeutronError"]["type"]


class BlockingApp:
    """Answers 200 once released; records which paths it started building."""

    def __init__(self):
        self.started = []
        self.release = asyncio.Event()

    async def __call__(self, scope, receive, send):
        self.started.append(scope["path"])
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def start(shed, client):
    """``client``'s request through ``shed``, as a task."""
    return asyncio.create_task(shed(client.scope, client.receive, client.send))


def shedding(**limits):
    """A blocking app behind a load shedder of these limits, with its own view gate."""
    app = BlockingApp()
    gate = ViewGate(LoadLimits(**limits))
    return app, gate, LoadSheddingMiddleware(app, gate.limits, views=gate)


async def finish(app, clients, tasks):
    """Let the app answer, every client leave, and every request end."""
    app.release.set()
    for client in clients:
        client.leave()
    await asyncio.gather(*tasks)


async def settle():
    for _ in range(10):
        await asyncio.sleep(0)


def test_views_beyond_the_running_and_queued_bounds_get_503_at_once():
    async def scenario():
        app = BlockingApp()
        limits = LoadLimits(max_concurrent_views=1, max_queued_views=1, view_queue_timeout=30,
                            retry_after=3)
        shed = LoadSheddingMiddleware(app, limits)
        first, second, third = Client(), Client(), Client()
        tasks = [start(shed, c) for c in (first, second)]
        await settle()
        await shed(third.scope, third.receive, third.send)  # refused without waiting
        assert (third.status, third.header("retry-after")) == (503, b"3")
        assert third.error_type() == "ServiceUnavailable"
        assert app.started == [VIEW]  # the second waits its turn
        other = Client("/v2.0/networks")
        other_task = start(shed, other)
        await settle()
        assert len(app.started) == 2  # other requests are not gated
        app.release.set()
        await asyncio.gather(*tasks, other_task)
        assert [first.status, second.status, other.status] == [200, 200, 200]
        assert app.started.count(VIEW) == 2
        assert shed.views.running == 0 and shed.pending == 0

    asyncio.run(scenario())


def test_a_queued_view_whose_client_left_is_never_built():
    async def scenario():
        app = BlockingApp()
        shed = LoadSheddingMiddleware(app, LoadLimits(max_concurrent_views=1))
        first, gone = Client(), Client()
        running = start(shed, first)
        await settle()
        waiting = start(shed, gone)
        await settle()
        gone.leave()
        await waiting
        assert gone.messages == [] and app.started == [VIEW]
        app.release.set()
        await running
        assert shed.views.running == 0 and not shed.views.waiting

    asyncio.run(scenario())


def test_a_view_that_waited_too_long_gets_503():
    async def scenario():
        app = BlockingApp()
        limits = LoadLimits(max_concurrent_views=1, view_queue_timeout=0.05)
        shed = LoadSheddingMiddleware(app, limits)
        first, late = Client(), Client()
        running = start(shed, first)
        await settle()
        await shed(late.scope, late.receive, late.send)
        assert late.status == 503 and app.started == [VIEW]
        app.release.set()
        await running

    asyncio.run(scenario())


def test_too_many_pending_requests_get_503_but_long_polls_never_do():
    async def scenario():
        app = BlockingApp()
        shed = LoadSheddingMiddleware(app, LoadLimits(max_pending_requests=1))
        busy, refused = Client("/v2.0/ports"), Client("/v2.0/ports")
        watch = Client("/dvr/v1/hosts/compute-1/watch")
        task = start(shed, busy)
        await settle()
        await shed(refused.scope, refused.receive, refused.send)
        assert refused.status == 503
        watching = start(shed, watch)
        await settle()
        assert app.started == ["/v2.0/ports", "/dvr/v1/hosts/compute-1/watch"]
        app.release.set()
        await asyncio.gather(task, watching)

    asyncio.run(scenario())


def test_a_turn_taken_without_waiting_is_shared_with_the_gated_views():
    async def scenario():
        app = BlockingApp()
        gate = ViewGate(LoadLimits(max_concurrent_views=2))
        shed = LoadSheddingMiddleware(app, gate.limits, views=gate)
        assert gate.try_enter()  # e.g. a watch answer's view
        first, second = Client(), Client()
        tasks = [start(shed, c) for c in (first, second)]
        await settle()
        assert app.started == [VIEW]  # one turn left: the second view waits
        assert not gate.try_enter()  # no turn is free: the watch leaves its view out
        gate.leave()  # the watch's turn goes to the waiting view
        await settle()
        assert app.started == [VIEW, VIEW]
        app.release.set()
        await asyncio.gather(*tasks)
        assert gate.running == 0 and gate.try_enter()

    asyncio.run(scenario())


def test_the_retry_after_grows_with_the_backlog_between_its_bounds():
    limits = LoadLimits(retry_after=2)
    assert backlog_retry_after(limits, 0, 0.5) == 2  # never below the configured wait
    assert backlog_retry_after(limits, 10, 0.1) == 2
    assert backlog_retry_after(limits, 200, 0.05) == 5  # half of 200 turns, one every 50 ms
    assert backlog_retry_after(limits, 201, 0.05) == 6  # rounded up
    assert backlog_retry_after(limits, 10_000, 0.5) == MAX_RETRY_AFTER


def test_the_pace_is_measured_only_while_views_wait():
    async def scenario():
        now = [0.0]
        gate = ViewGate(LoadLimits(max_concurrent_views=1), clock=lambda: now[0])
        for _ in range(3):  # turns 10 s apart, nobody waiting: an idle server, no pace
            assert gate.try_enter()
            now[0] += 10
            gate.leave()
        assert gate.turn_gap == 0
        assert gate.try_enter()
        waiters = [asyncio.create_task(gate.wait_turn(60)) for _ in range(3)]
        await settle()
        for _ in range(3):  # busy: a turn ends every 0.5 s while others wait
            now[0] += 0.5
            gate.leave()
            await settle()
        assert gate.turn_gap == pytest.approx(0.5 * (1 - (1 - TURN_GAP_WEIGHT) ** 3))
        assert all(w.done() and w.result() for w in waiters)
        gate.leave()
        assert gate.running == 0

    asyncio.run(scenario())


def test_a_shed_view_is_told_to_come_back_when_the_backlog_has_drained():
    async def scenario():
        app = BlockingApp()
        limits = LoadLimits(max_concurrent_views=1, max_queued_views=4, retry_after=1,
                            view_queue_timeout=2)
        gate = ViewGate(limits)
        gate.turn_gap = 0.9  # the server's recent pace when busy
        shed = LoadSheddingMiddleware(app, limits, views=gate)
        clients = [Client() for _ in range(6)]
        tasks = [start(shed, c) for c in clients]
        await settle()
        refused = clients[5]  # 1 running, 4 queued: about 4 x 0.9 s to drain, half of it
        assert refused.status == 503
        assert refused.header("retry-after") == b"2"
        app.release.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_a_patient_waiter_comes_after_the_view_requests_and_not_against_their_bound():
    async def scenario():
        app = BlockingApp()
        gate = ViewGate(LoadLimits(max_concurrent_views=1, max_queued_views=1))
        shed = LoadSheddingMiddleware(app, gate.limits, views=gate)
        assert gate.try_enter()  # the only turn is taken
        patient = asyncio.create_task(gate.wait_turn(5.0))
        await settle()
        view = Client()  # still queued: the patient waiter takes no place of the bound
        task = start(shed, view)
        await settle()
        assert view.status is None and gate.patient == 1
        gate.leave()  # the view request goes first, though the patient waiter came first
        await settle()
        assert app.started == [VIEW] and not patient.done() and gate.running == 1
        app.release.set()
        await task  # its turn ends: now the patient waiter's
        assert await patient is True
        assert gate.running == 1 and gate.patient == 0
        gate.leave()
        assert gate.running == 0 and gate.patient == 0 and not gate.waiting

    asyncio.run(scenario())


def test_a_patient_waiter_gives_up_after_its_timeout_and_leaves_no_trace():
    async def scenario():
        gate = ViewGate(LoadLimits(max_concurrent_views=1))
        assert gate.try_enter()
        assert await gate.wait_turn(0.01) is False
        assert gate.patient == 0 and not gate.waiting
        gate.leave()
        assert gate.running == 0

    asyncio.run(scenario())


def test_a_cancelled_patient_waiter_passes_a_turn_it_was_handed_on():
    async def scenario():
        gate = ViewGate(LoadLimits(max_concurrent_views=1))
        assert gate.try_enter()
        first = asyncio.create_task(gate.wait_turn(5.0))
        second = asyncio.create_task(gate.wait_turn(5.0))
        await settle()
        gate.leave()  # handed to the first...
        first.cancel()  # ...which is cancelled before it runs
        await asyncio.gather(first, return_exceptions=True)
        assert await second is True  # the turn went on to the next waiter
        assert gate.running == 1 and gate.patient == 0
        gate.leave()
        assert gate.running == 0

    asyncio.run(scenario())


def test_beyond_its_bound_the_queue_takes_what_drains_within_half_the_timeout():
    async def scenario():
        app = BlockingApp()
        limits = LoadLimits(max_concurrent_views=1, max_queued_views=2, view_queue_timeout=8)
        gate = ViewGate(limits)
        shed = LoadSheddingMiddleware(app, limits, views=gate)
        clients = [Client() for _ in range(12)]
        tasks = [start(shed, c) for c in clients[:4]]
        await settle()
        assert clients[3].status == 503  # no pace known yet: the bound alone (1 + 2)
        gate.turn_gap = 0.5  # then the server's pace is known: a turn ends every 0.5 s
        tasks += [start(shed, c) for c in clients[4:]]
        await settle()
        # 8 waiting × 0.5 s = 4 s = half the timeout: the ninth request is refused
        waiting = [c for c in clients[4:] if c.status is None]
        assert len(gate.waiting) == 8 and len(waiting) == 6
        assert [c.status for c in clients[10:]] == [503, 503]
        await finish(app, clients, tasks)

    asyncio.run(scenario())


def test_a_closed_gate_lets_every_waiter_go_at_once_and_gives_no_more_turns():
    async def scenario():
        app = BlockingApp()
        gate = ViewGate(LoadLimits(max_concurrent_views=1, view_queue_timeout=30))
        shed = LoadSheddingMiddleware(app, gate.limits, views=gate)
        running = Client()
        running_task = start(shed, running)
        await settle()
        queued = Client()
        queued_task = start(shed, queued)
        patient = asyncio.create_task(gate.wait_turn(30.0))
        await settle()
        gate.close()  # the server is stopping
        await queued_task
        assert (queued.status, queued.header("retry-after")) == (503, b"2")
        assert queued.error_type() == "ServiceUnavailable"
        assert await patient is False  # the woken watch goes without its view
        late = Client()
        await shed(late.scope, late.receive, late.send)
        assert late.status == 503 and await gate.wait_turn(30.0) is False
        assert app.started == [VIEW]  # neither the queued nor the late view was built
        app.release.set()
        await running_task  # the view being built is answered
        assert running.status == 200
        assert gate.running == 0 and gate.patient == 0 and not gate.waiting

    asyncio.run(scenario())


def test_a_patient_view_queues_beyond_the_bounds_and_waits_as_long_as_it_said():
    """``wait=S``: a request that would rather queue than be refused is queued whatever the
    backlog and the pace, and is refused only after S seconds; an impatient one beside it
    still gets 503 at once."""
    async def scenario():
        app, gate, shed = shedding(max_concurrent_views=1, max_queued_views=2,
                                   view_queue_timeout=0.05)
        patient = [Client(query=b"since=3&wait=0.3") for _ in range(5)]
        tasks = [start(shed, c) for c in patient]
        await settle()
        assert len(gate.waiting) == 4 and all(c.status is None for c in patient)
        impatient = Client()
        await shed(impatient.scope, impatient.receive, impatient.send)
        assert impatient.status == 503
        gate.turn_gap = 10.0  # a pace that says none would be served in time
        more = [Client(query=b"wait=0.3") for _ in range(3)]
        tasks += [start(shed, c) for c in more]
        await settle()
        assert [c.status for c in more] == [None, None, None]
        await asyncio.sleep(0.15)  # past the default timeout, within their own
        assert all(c.status is None for c in patient[1:] + more)
        await asyncio.sleep(0.3)
        assert [c.status for c in patient[1:] + more] == [503] * 7
        await finish(app, patient + more, tasks)

    asyncio.run(scenario())


def test_patience_is_bounded_and_bad_patience_is_a_400_before_any_wait():
    async def scenario():
        app, _, shed = shedding(max_concurrent_views=1, max_view_patience=0.1,
                                max_waiting_views=2)
        running = Client()
        task = start(shed, running)
        await settle()
        for bad in (b"wait=-1", b"wait=nan", b"wait=soon"):
            client = Client(query=bad)
            await shed(client.scope, client.receive, client.send)
            assert (client.status, client.error_type()) == (400, "HTTPBadRequest")
        forever = [Client(query=b"wait=1e9") for _ in range(3)]
        waits = [start(shed, c) for c in forever]
        await settle()
        assert [c.status for c in forever] == [None, None, 503]  # max_waiting_views
        await asyncio.sleep(0.2)  # 0.1 s at most, whatever was asked
        assert [c.status for c in forever[:2]] == [503, 503]
        app.release.set()
        await asyncio.gather(task, *waits)

    asyncio.run(scenario())


def test_view_requests_are_bounded_by_their_queue_not_by_the_pending_requests():
    async def scenario():
        app, _, shed = shedding(max_pending_requests=1, max_concurrent_views=2)
        views = [Client(), Client()]
        tasks = [start(shed, c) for c in views]
        await settle()
        other = Client("/v2.0/ports")
        tasks.append(start(shed, other))
        await settle()
        assert app.started == [VIEW, VIEW, "/v2.0/ports"]
        app.release.set()
        await asyncio.gather(*tasks)
        assert [c.status for c in views + [other]] == [200, 200, 200]

    asyncio.run(scenario())
