"""Liveness without a database write per heartbeat: heartbeats that say nothing new stay in
memory (flushed in a batch), a changed report is written at once, and everything that reads
liveness reads memory over the database."""

import time
from datetime import timedelta

import httpx
from conftest import start_live_server
from server_helpers import Api, make_config
from sqlalchemy import select, update
from starlette.testclient import TestClient

from dvr.db.session import Database
from dvr.db.tables import agents, dvr_hosts
from dvr.server.app import create_app


def stored_heartbeat(context, host):
    query = select(dvr_hosts.c.heartbeat_at, dvr_hosts.c.applied_revision).where(
        dvr_hosts.c.host == host
    )
    return context.run_read(lambda tx: tx.conn.execute(query).one())


def age_in_database(context, host, seconds):
    def work(tx):
        then = tx.now - timedelta(seconds=seconds)
        tx.conn.execute(update(dvr_hosts).where(dvr_hosts.c.host == host).values(heartbeat_at=then))
        query = update(agents).where(agents.c.host == host)
        tx.conn.execute(query.values(heartbeat_timestamp=then))

    context.run_write(work)


def test_a_heartbeat_that_says_nothing_new_writes_nothing(api, app):
    context = app.state.context
    network = api.network()
    api.subnet(network["id"], "198.51.100.0/24")
    port = api.port(network["id"], host="compute-1")
    api.register("compute-1", "dvr", "192.0.2.11")
    report = {"ports_up": [port["id"]], "vifs": {port["id"]: "tap1"}, "local_vlans": {}}
    api.heartbeat("compute-1", applied_revision=1, **report)  # first: written
    assert api.show("port", port["id"])["status"] == "ACTIVE"
    age_in_database(context, "compute-1", 50)  # what the database holds is now 50 s old
    stale, _ = stored_heartbeat(context, "compute-1")
    answer = api.heartbeat("compute-1", applied_revision=4, **report)
    assert answer["ports_up"] == [port["id"]] and answer["alive"] is True
    assert stored_heartbeat(context, "compute-1") == (stale, 1)  # not written
    # ... but read: memory over the database
    [host] = api.call("GET", "/dvr/v1/hosts", expect=200)
    assert host["applied_revision"] == 4 and host["alive"] is True
    assert host["heartbeat_timestamp"] > stale.strftime("%Y-%m-%d %H:%M:%S")
    assert {a["heartbeat_timestamp"] for a in api.list("agent")} == {host["heartbeat_timestamp"]}
    state = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert (state["applied_revision"], state["vifs"]) == (4, {port["id"]: "tap1"})
    # a report that changes in substance is written at once
    api.heartbeat("compute-1", applied_revision=5, ports_down=[port["id"]],
                  vifs={}, local_vlans={})
    assert api.show("port", port["id"])["status"] == "DOWN"
    assert stored_heartbeat(context, "compute-1")[1] == 5
    state = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert state["vifs"] == {}


def test_memory_keeps_an_agent_alive_for_scheduling_and_binding(api, app):
    """The database says dead (not flushed yet), memory says alive: memory wins."""
    context = app.state.context
    ext = api.network("ext", **{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    network = api.network()
    api.register("net-1", "dvr_snat", "192.0.2.31")
    api.heartbeat("net-1", vifs={}, local_vlans={})
    api.heartbeat("net-1", vifs={}, local_vlans={})
    age_in_database(context, "net-1", context.config.agent_down_time + 10)
    router = api.router()
    api.set_gateway(router["id"], ext["id"])
    assert api.router_hosts(router["id"]) >= {"net-1"}
    assert api.port(network["id"], host="net-1")["binding:vif_type"] == "ovs"
    assert all(a["alive"] for a in api.list("agent"))
    zones = api.call("GET", "/v2.0/availability_zones", expect=200)["availability_zones"]
    assert [z["state"] for z in zones] == ["available"]


def test_memory_is_flushed_in_batches(db_url):
    database = Database.from_url(db_url)
    app = create_app(make_config(db_url, heartbeat_flush_interval=0.2), database, migrate=False)
    context = app.state.context
    try:
        with TestClient(app) as client:
            api = Api(client, context)
            for i in range(1, 4):
                api.register(f"compute-{i}", "dvr", f"192.0.2.{i}")
                api.heartbeat(f"compute-{i}", applied_revision=1, vifs={}, local_vlans={})
                age_in_database(context, f"compute-{i}", 60)
                api.heartbeat(f"compute-{i}", applied_revision=2, vifs={}, local_vlans={})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                stored = [stored_heartbeat(context, f"compute-{i}") for i in range(1, 4)]
                if {revision for _, revision in stored} == {2}:
                    break
                time.sleep(0.05)
            assert {revision for _, revision in stored} == {2}
            assert all(api.context.run_read(lambda tx: tx.now) - at < timedelta(seconds=5)
                       for at, _ in stored)
    finally:
        database.dispose()


def test_heartbeat_answers_carry_the_hosts_newest_revision(api):
    network = api.network()
    api.subnet(network["id"], "198.51.100.0/24")
    api.register("compute-1", "dvr", "192.0.2.11")
    api.register("compute-2", "dvr", "192.0.2.12")
    before = api.heartbeat("compute-1")["revision"]
    api.port(network["id"], host="compute-1")
    after = api.heartbeat("compute-1")["revision"]
    assert after > before and after == api.revision()
    other = api.heartbeat("compute-2")["revision"]
    api.port(network["id"], host="compute-1", name="second")  # compute-2 has no view of it
    assert api.heartbeat("compute-2")["revision"] == other


def test_a_reregistered_host_has_its_report_written_again(api):
    api.register("compute-1", "dvr", "192.0.2.11")
    report = {"vifs": {"p": "tap1"}, "local_vlans": {"n": 1}}
    api.heartbeat("compute-1", **report)
    [agent, _] = api.list("agent")
    api.delete("agent", agent["id"])
    [agent] = api.list("agent")
    api.delete("agent", agent["id"])
    api.register("compute-1", "dvr", "192.0.2.11")
    api.heartbeat("compute-1", **report)
    state = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert state["reported"] is True and state["vifs"] == {"p": "tap1"}


def test_two_server_processes_share_liveness_through_the_flushed_row(db_url, tmp_path):
    """Memory is per process: the other process sees a heartbeat once it is flushed."""
    first = start_live_server(db_url, tmp_path, "--heartbeat-flush-interval", "0.3")
    second = start_live_server(db_url, tmp_path, "--heartbeat-flush-interval", "0.3")
    try:
        httpx.post(first.url + "/dvr/v1/agents", json={"host": "compute-1"}).raise_for_status()
        body = {"applied_revision": 1, "vifs": {}, "local_vlans": {}}
        for revision in (1, 2, 3):  # the first is written, the others only remembered
            body["applied_revision"] = revision
            httpx.post(first.url + "/dvr/v1/hosts/compute-1/heartbeat", json=body)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            [host] = httpx.get(second.url + "/dvr/v1/hosts").json()
            if host["applied_revision"] == 3:
                break
            time.sleep(0.1)
        assert host["applied_revision"] == 3 and host["alive"] is True
    finally:
        first.stop()
        second.stop()


def test_heartbeats_written_together_keep_a_refused_one_apart(api, app):
    """The group commit's transaction: an unregistered host's heartbeat gets its 404 and
    writes nothing; the others in the same transaction are written, port status too."""
    from dvr.server.errors import NotFoundError
    from dvr.server.liveness import AgentReport, Heartbeat, freeze_dataplane
    from dvr.server.services.heartbeats import write_heartbeats
    from dvr.server.tx import utcnow

    context = app.state.context
    network = api.network()
    api.subnet(network["id"], "198.51.100.0/24")
    port = api.port(network["id"], host="compute-2")
    api.register("compute-1", "dvr", "192.0.2.11")
    api.register("compute-2", "dvr", "192.0.2.12")
    age_in_database(context, "compute-1", 50)
    age_in_database(context, "compute-2", 50)
    now = utcnow()

    def beat(host, up=()):
        dataplane = freeze_dataplane({"vifs": {}, "local_vlans": {}})
        return Heartbeat(host, now, 3, AgentReport(frozenset(up), frozenset(), dataplane))

    results = context.run_write(lambda tx: write_heartbeats(
        tx, [beat("compute-1"), beat("ghost"), beat("compute-2", up=[port["id"]])]))[0]
    assert isinstance(results[1], NotFoundError) and results[1].status == 404
    assert results[0][0]["host"] == "compute-1" and results[2][0]["ports_up"] == [port["id"]]
    assert stored_heartbeat(context, "compute-1") == (now, 3)
    assert stored_heartbeat(context, "compute-2") == (now, 3)
    assert api.show("port", port["id"])["status"] == "ACTIVE"
    assert [h["host"] for h in api.call("GET", "/dvr/v1/hosts", expect=200)] == [
        "compute-1", "compute-2"]


def test_heartbeats_written_together_end_as_if_written_one_after_the_other(api, app):
    """Two heartbeats of one host in one transaction: the later one's time and revision,
    the report of the one that sent it, each port's status from the last beat that named
    it; a port bound elsewhere is left alone.  Each beat is answered for itself."""
    from dvr.db.tables import ports
    from dvr.server.liveness import AgentReport, Heartbeat, freeze_dataplane
    from dvr.server.services.heartbeats import write_heartbeats
    from dvr.server.tx import utcnow

    context = app.state.context
    network = api.network()
    api.subnet(network["id"], "198.51.100.0/24")
    mine = api.port(network["id"], host="compute-1")
    flips = api.port(network["id"], host="compute-1")
    elsewhere = api.port(network["id"], host="compute-2")
    api.register("compute-1", "dvr", "192.0.2.11")
    api.register("compute-2", "dvr", "192.0.2.12")
    now = utcnow()
    later = now + timedelta(seconds=1)
    report = freeze_dataplane({"vifs": {mine["id"]: "tapmine"}, "local_vlans": {}})
    first = Heartbeat("compute-1", now, 4, AgentReport(
        frozenset({mine["id"], flips["id"], elsewhere["id"]}), frozenset(), report))
    second = Heartbeat("compute-1", later, 5, AgentReport(
        frozenset(), frozenset({flips["id"]}), None))

    results = context.run_write(lambda tx: write_heartbeats(tx, [first, second]))[0]
    assert results[0] == ({"host": "compute-1", "alive": True,
                           "ports_up": sorted([mine["id"], flips["id"]]), "ports_down": []}, 4)
    assert results[1] == ({"host": "compute-1", "alive": True, "ports_up": [],
                           "ports_down": [flips["id"]]}, 5)
    assert stored_heartbeat(context, "compute-1") == (later, 5)
    stored_report = context.run_read(lambda tx: tx.conn.execute(
        select(dvr_hosts.c.agent_report).where(dvr_hosts.c.host == "compute-1")).scalar())
    assert stored_report["vifs"] == {mine["id"]: "tapmine"}
    status = dict(context.run_read(lambda tx: tx.conn.execute(
        select(ports.c.id, ports.c.status)).all()))
    assert status[mine["id"]] == "ACTIVE" and status[flips["id"]] == "DOWN"
    assert status[elsewhere["id"]] == "DOWN"


def test_host_mac_answers_a_registered_host_and_refuses_others(api):
    api.register("compute-1", "dvr", "192.0.2.11")
    mac = api.host_mac("compute-1")
    assert api.host_mac("compute-1") == mac  # the second answer is read, not allocated
    answer = api.call("POST", "/dvr/v1/hosts/ghost/host-mac", expect=404)
    assert answer["NeutronError"]["type"] == "HostNotFound"
