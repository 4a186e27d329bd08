"""More than one server process on one PostgreSQL: a write through one process wakes the
watches of another at once (LISTEN/NOTIFY, no polling on PostgreSQL) and its views show the
write; ``dvr-server --workers N`` shares its listeners between N processes and stops them
all with its own PID; an agent given [A, B] keeps converging when A stops.  SQLite refuses
--workers above 1."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from agent_fleet import start_fleet, wait_converged
from cloud_changes import Cloud
from conftest import LiveServer, PostgresBackend, start_live_server

from dvr.client import ServerClient, ServerError
from dvr.server.main import parse_args

pytestmark = pytest.mark.postgres
WATCH_TIMEOUT = 30.0  # a watch woken by a notification answers long before this


@pytest.fixture
def pg_url(pg_only_backend) -> str:  # type: ignore[no-untyped-def]
    return pg_only_backend.new_database()


@pytest.fixture
def two_servers(pg_url, tmp_path) -> Iterator[tuple[LiveServer, LiveServer]]:
    a = start_live_server(pg_url, tmp_path)
    b = start_live_server(pg_url, tmp_path)
    yield a, b
    a.stop()
    b.stop()


def watch(url: str, host: str, since: int, timeout: float = WATCH_TIMEOUT) -> tuple[dict, float]:
    """The watch's answer and how long it took."""
    started = time.monotonic()
    response = httpx.get(f"{url}/dvr/v1/hosts/{host}/watch",
                         params={"since": since, "timeout": timeout}, timeout=timeout + 10)
    assert response.status_code == 200, response.text
    return response.json(), time.monotonic() - started


def make_network(url: str) -> str:
    with ServerClient(url) as client:
        network = client.create("networks", "network", {"name": "n"})
        client.create("subnets", "subnet", {"network_id": network["id"], "ip_version": 4,
                                            "cidr": "198.51.100.0/24"})
    return network["id"]


def bind_port(url: str, network_id: str, host: str) -> str:
    with ServerClient(url) as client:
        return client.create("ports", "port", {"network_id": network_id,
                                               "binding:host_id": host,
                                               "device_owner": "compute:nova"})["id"]


def test_a_write_through_one_process_wakes_a_watch_on_another(two_servers):
    a, b = two_servers
    network_id = make_network(a.url)
    since = watch(b.url, "compute-1", 0, 0)[0]["revision"]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(watch, b.url, "compute-1", since)
        time.sleep(0.5)  # the watch is waiting on B
        port_id = bind_port(a.url, network_id, "compute-1")
        result, took = waiting.result(timeout=WATCH_TIMEOUT + 15)
    assert result["changes"] == [{"kind": "port", "id": port_id}]
    assert took < WATCH_TIMEOUT / 2  # woken by the write, not by the watch's timeout
    with ServerClient(b.url) as client:
        view = client.host_view("compute-1")
    assert [p.id for p in view.ports] == [port_id] and view.revision >= result["revision"]


def test_a_watch_on_b_is_not_woken_by_writes_for_other_hosts(two_servers):
    a, b = two_servers
    network_id = make_network(a.url)
    since = watch(b.url, "compute-1", 0, 0)[0]["revision"]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(watch, b.url, "compute-1", since, 3.0)
        time.sleep(0.5)
        bind_port(a.url, network_id, "compute-2")  # concerns compute-2 alone
        result, took = waiting.result(timeout=20)
    assert result["changes"] == [] and took >= 3.0


def test_heartbeat_answers_of_b_carry_the_revisions_of_writes_through_a(two_servers):
    """The revision a heartbeat answer names (the agent resyncs on a gap) comes from B's
    memory, which the notifications keep current."""
    a, b = two_servers
    network_id = make_network(a.url)
    with ServerClient(b.url) as client:
        client.register_agent("compute-1", "dvr", "198.18.0.11", "netdev")
        before = client.heartbeat("compute-1", 0, [], [], {}, {})["revision"]
        bind_port(a.url, network_id, "compute-1")
        for _ in range(100):
            answer = client.heartbeat("compute-1", 0, [], [], {}, {})["revision"]
            if answer > before:
                break
            time.sleep(0.1)
    with ServerClient(a.url) as client:
        newest = client.host_view("compute-1").revision
    assert before < answer <= newest


def test_workers_refused_on_sqlite(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--state-dir", str(tmp_path), "--workers", "2"])
    assert "--workers above 1 needs PostgreSQL" in capsys.readouterr().err
    config, options = parse_args(["--db", "postgresql://u@127.0.0.1/dvr", "--workers", "3"])
    assert options.workers == 3


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in found.stdout.split()]


def test_workers_share_the_listeners_and_stop_together(pg_url, tmp_path):
    socket_path = tmp_path / "dvr.sock"
    server = start_live_server(pg_url, tmp_path, "--workers", "2",
                               "--listen", f"unix:{socket_path}")
    try:
        workers = children(server.process.pid)
        assert len(workers) == 2
        network_id = make_network(server.url)
        since = watch(server.url, "compute-1", 0, 0)[0]["revision"]
        # watches on separate connections land on both workers; one write wakes them all
        with ThreadPoolExecutor(8) as pool:
            waiting = [pool.submit(watch, server.url, "compute-1", since) for _ in range(8)]
            time.sleep(1.0)
            transport = httpx.HTTPTransport(uds=str(socket_path))
            with httpx.Client(transport=transport, base_url="http://dvr") as local:
                created = local.post("/v2.0/ports", json={"port": {
                    "network_id": network_id, "binding:host_id": "compute-1",
                    "device_owner": "compute:nova"}})
            assert created.status_code == 201
            results = [w.result(timeout=WATCH_TIMEOUT + 15) for w in waiting]
        port_id = created.json()["port"]["id"]
        assert all(r["changes"] == [{"kind": "port", "id": port_id}] for r, _ in results)
        assert all(took < WATCH_TIMEOUT / 2 for _, took in results)
    finally:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]]
    assert not socket_path.exists()


def test_an_agent_given_a_and_b_keeps_converging_when_a_stops(two_servers, pg_url, caplog):
    a, b = two_servers
    hosts = ["compute-1", "compute-2"]
    fleet = start_fleet(hosts, lambda i: [a.url, b.url], max_backoff=2.0)
    clients = [ServerClient(a.url), ServerClient(b.url)]
    engine = sa.create_engine(pg_url)
    try:
        with caplog.at_level(logging.WARNING, "dvr.client"):
            cloud = Cloud(clients, hosts, seed=3)
            cloud.build(networks=2, routers=1)
            cloud.random_changes(10, writers=1)
            wait_converged(fleet, clients[1], engine, 30)
            assert all(agent.client.server == a.url for agent in fleet.agents)
            a.stop()
            cloud = Cloud(clients[1:], hosts, seed=4, networks=cloud.networks,
                          routers=cloud.routers, ports=cloud.ports)
            cloud.random_changes(10, writers=1)
            wait_converged(fleet, clients[1], engine, 30)
        assert all(agent.client.server == b.url for agent in fleet.agents)
        moves = [r.getMessage() for r in caplog.records if "moving to" in r.getMessage()]
        assert len(moves) == len(hosts)  # one line per agent that moved (both threads saw it)
    finally:
        fleet.close()
        for client in clients:
            client.close()
        engine.dispose()


def test_liveness_written_by_one_process_is_seen_by_the_other(two_servers):
    """Heartbeats live in each process's memory; the first one a process sees of a host is
    written at once, so the other process sees the agent alive."""
    a, b = two_servers
    with ServerClient(a.url) as client:
        client.register_agent("compute-1", "dvr", "198.18.0.11", "netdev")
        client.heartbeat("compute-1", 0, [], [], {}, {})
    with ServerClient(b.url) as client:
        hosts = {h["host"]: h for h in client.hosts()}
    assert hosts["compute-1"]["alive"] is True



def test_after_a_database_restart_b_is_notified_again(private_pg_cluster, tmp_path):
    """B's listening connection dies with PostgreSQL; B opens it again by itself, and a
    watch waiting on B throughout is woken by a write through A after the restart."""
    url = PostgresBackend(private_pg_cluster, database="dvr_restart").new_database()
    a = start_live_server(url, tmp_path)
    b = start_live_server(url, tmp_path)
    try:
        network_id = make_network(a.url)
        since = watch(b.url, "compute-1", 0, 0)[0]["revision"]
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(watch, b.url, "compute-1", since, 60.0)
            time.sleep(0.5)
            private_pg_cluster.stop_server("fast")
            time.sleep(1.0)
            private_pg_cluster.start_server()
            port_id = None
            for _ in range(100):  # A's pool reconnects on its own; 503 until it has
                try:
                    port_id = bind_port(a.url, network_id, "compute-1")
                    break
                except ServerError:
                    time.sleep(0.2)
            result, took = waiting.result(timeout=75)
        assert result["changes"] == [{"kind": "port", "id": port_id}] and took < 45
    finally:
        a.stop()
        b.stop()
    log = b.log_path.read_text()
    assert log.count("lost the change notification connection") == 1, log
    assert "change notifications from other server processes are back" in log, log


def test_a_credential_rotated_or_revoked_through_one_process_is_refused_by_the_other(
        pg_url, tmp_path):
    """Each process keeps the credentials it read while it hears every other process's
    credential notices (``known_credentials``): a rotation through B and a revocation
    through A are refused by the other process too, within the notice's delivery."""
    a = start_live_server(pg_url, tmp_path, auth=True)
    b = start_live_server(pg_url, tmp_path, auth=True)
    admin = {"X-Auth-Token": (tmp_path / "admin-token").read_text().strip()}
    path = "/dvr/v1/hosts/compute-1"
    beat = {"applied_revision": 0, "vifs": {}, "local_vlans": {}}

    def heartbeat(server: LiveServer, token: str) -> int:
        return httpx.post(f"{server.url}{path}/heartbeat", json=beat, timeout=10,
                          headers={"X-Auth-Token": token}).status_code

    def refused_soon(server: LiveServer, token: str) -> None:
        deadline = time.monotonic() + 2.0  # a notice arrives in milliseconds
        while heartbeat(server, token) != 401:
            assert time.monotonic() < deadline, "the other process still accepts it"
            time.sleep(0.01)
        assert [heartbeat(server, token) for _ in range(3)] == [401] * 3

    try:
        registered = httpx.post(f"{a.url}/dvr/v1/agents", json={"host": "compute-1"},
                                headers=admin, timeout=10)
        assert registered.status_code in (200, 201), registered.text
        old = httpx.post(f"{a.url}{path}/credential", headers=admin,
                         timeout=10).json()["credential"]["token"]
        assert [heartbeat(s, old) for s in (a, b, a, b)] == [200] * 4  # both keep it
        new = httpx.post(f"{b.url}{path}/credential", headers=admin,
                         timeout=10).json()["credential"]["token"]
        assert heartbeat(b, old) == 401  # at once where it was rotated
        refused_soon(a, old)
        assert [heartbeat(s, new) for s in (a, b, a, b)] == [200] * 4
        assert httpx.delete(f"{a.url}{path}/credential", headers=admin,
                            timeout=10).status_code == 204
        assert heartbeat(a, new) == 401
        refused_soon(b, new)
    finally:
        a.stop()
        b.stop()
