"""``watch?...&view_since=R``: an answer with changes also carries what ``view?since=R``
answers (a delta from the view served at R, or the full view), read with the changes; a
resync, an answer without changes, a watch without ``view_since`` and a server whose view
turns are all taken carry none."""

from dvr.model.hostview import host_view_from_dict
from dvr.model.hostview_delta import apply, delta_from_dict
from dvr.server.hostview import build_host_view


def watch(api, host, since, **params):
    return api.call("GET", f"/dvr/v1/hosts/{host}/watch", expect=200, since=since, timeout=0,
                    **params)


def fetch(api, host, since):
    return api.call("GET", f"/dvr/v1/hosts/{host}/view", expect=200, since=since)


def alone(api, host):
    return api.context.run_read(lambda tx: build_host_view(tx.conn, host))


def small_cloud(api):
    for number, host in enumerate(("h1", "h2"), start=1):
        api.register(host, "dvr", f"192.0.2.{number}")
        api.host_mac(host)
    net = api.network("blue", port_security_enabled=False)
    api.subnet(net["id"], "198.51.100.0/24")
    api.port(net["id"], host="h1")
    return net


def test_an_answer_with_changes_carries_the_delta_from_the_view_held(api):
    net = small_cloud(api)
    first = fetch(api, "h1", since=0)
    assert first.pop("full") is True
    held = host_view_from_dict(first)
    api.port(net["id"], host="h2")  # h1 learns h2's port
    answer = watch(api, "h1", held.revision, view_since=held.revision)
    assert answer["changes"] and answer["resync"] is False
    pushed = answer["view"]
    assert pushed.pop("full") is False
    delta = delta_from_dict(pushed)
    now = alone(api, "h1")
    assert (delta.from_revision, delta.to_revision) == (held.revision, answer["revision"])
    assert apply(held, delta) == now
    # the pushed view is remembered as served: the next delta is made from it
    again = fetch(api, "h1", since=now.revision)
    assert again["full"] is False and delta_from_dict(again).empty


def test_a_view_the_server_did_not_serve_gets_the_full_view(api):
    small_cloud(api)
    before = api.revision()
    for view_since in (0, 12345):
        answer = watch(api, "h1", before - 1, view_since=view_since)
        pushed = answer["view"]
        assert pushed.pop("full") is True
        assert host_view_from_dict(pushed) == alone(api, "h1")


def test_without_view_since_or_without_changes_there_is_no_view(api):
    net = small_cloud(api)
    held = host_view_from_dict(fetch(api, "h1", since=0))
    api.port(net["id"], host="h2")
    plain = watch(api, "h1", held.revision)
    assert plain["changes"] and "view" not in plain
    quiet = watch(api, "h1", plain["revision"], view_since=held.revision)
    assert quiet["changes"] == [] and "view" not in quiet


def test_a_resync_carries_no_view(api):
    small_cloud(api)
    answer = watch(api, "h1", api.revision() + 100, view_since=0)
    assert answer["resync"] is True and "view" not in answer


def test_a_server_with_every_view_turn_taken_leaves_the_view_out(api):
    net = small_cloud(api)
    held = host_view_from_dict(fetch(api, "h1", since=0))
    api.port(net["id"], host="h2")
    gate = api.context.view_gate
    taken = 0
    while gate.try_enter():
        taken += 1
    try:
        answer = watch(api, "h1", held.revision, view_since=held.revision)
    finally:
        for _ in range(taken):
            gate.leave()
    assert answer["changes"] and "view" not in answer  # not a 503
    assert gate.running == 0
    assert "view" in watch(api, "h1", held.revision, view_since=held.revision)
    assert gate.running == 0  # the watch gave its turn back


def test_a_bad_view_since_is_a_bad_request(api):
    small_cloud(api)
    status, error = api.error("GET", "/dvr/v1/hosts/h1/watch", since=0, timeout=0,
                              view_since="-1")
    assert status == 400 and "view_since" in error["message"]


def test_a_woken_watch_waits_for_a_view_turn_and_brings_the_view(api):
    """A watch woken by a change, with every view turn taken, waits for one (its agent
    would ask for that view next) instead of leaving the view out."""
    import threading
    import time

    net = small_cloud(api)
    held = host_view_from_dict(fetch(api, "h1", since=0))
    gate = api.context.view_gate
    portal = api.client.portal
    taken = 0
    while portal.call(gate.try_enter):
        taken += 1
    answers = []
    parked = threading.Thread(target=lambda: answers.append(api.call(
        "GET", "/dvr/v1/hosts/h1/watch", expect=200, since=held.revision, timeout=20,
        view_since=held.revision)))
    try:
        parked.start()
        time.sleep(0.3)  # the watch read nothing new and waits for a change
        api.port(net["id"], host="h2")  # wakes it: every turn is still taken
        time.sleep(0.3)
        assert answers == [] and gate.patient == 1  # waiting for a turn, not answered
    finally:
        for _ in range(taken):
            portal.call(gate.leave)
        parked.join(timeout=20)
    (answer,) = answers
    assert answer["changes"] and "view" in answer
    assert apply(held, delta_from_dict(answer["view"])) == alone(api, "h1")
    assert gate.running == 0 and gate.patient == 0


def test_reads_are_refused_once_the_server_is_shutting_down(api):
    """A read still queued for the thread pool when the server stops is refused at once (a
    503 to a request uvicorn is cancelling anyway) instead of holding the exit."""
    import pytest

    from dvr.server.errors import ServiceUnavailable

    small_cloud(api)
    assert api.context.run_read(lambda tx: "read") == "read"
    api.client.portal.call(api.context.hub.close)
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        api.context.run_read(lambda tx: "read")


def test_a_view_held_from_another_process_is_adopted_so_the_next_change_is_a_delta(api):
    """After a restart (here: the served views forgotten) a watch that finds nothing new for
    a host holding a view at R makes the server adopt the host's view now as the one served
    at R, in the background; the host's next change then comes as a delta from it."""
    import time

    net = small_cloud(api)
    first = fetch(api, "h1", since=0)
    assert first.pop("full") is True
    held = host_view_from_dict(first)
    api.context.served_views = type(api.context.served_views)()  # a new process
    quiet = watch(api, "h1", held.revision, view_since=held.revision)
    assert quiet["changes"] == [] and "view" not in quiet
    deadline = time.monotonic() + 10
    while api.context.served_views.served("h1", held.revision) is None:
        assert time.monotonic() < deadline, "the view was not adopted"
        time.sleep(0.02)
    assert api.context.served_views.served("h1", held.revision) == held
    api.port(net["id"], host="h2")  # h1 learns h2's port
    answer = fetch(api, "h1", since=held.revision)
    assert answer.pop("full") is False
    assert apply(held, delta_from_dict(answer)) == alone(api, "h1")


def test_no_view_is_adopted_for_a_host_whose_view_changed_since_the_one_it_holds(api):
    import time

    net = small_cloud(api)
    held = host_view_from_dict({k: v for k, v in fetch(api, "h1", since=0).items()
                                if k != "full"})
    api.context.served_views = type(api.context.served_views)()
    api.port(net["id"], host="h2")  # h1's view changed after the one it holds
    now = api.revision()
    watch(api, "h1", now, view_since=held.revision)  # nothing after `now`, but after R
    deadline = time.monotonic() + 2
    while api.context.view_adoption.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert api.context.view_adoption.running == 0
    assert api.context.served_views.served("h1", held.revision) is None
    assert fetch(api, "h1", since=held.revision)["full"] is True
