"""200 agents (the real agent loop, fake dataplane) attached to the server converge after
random API changes, and again after the server is restarted: on SQLite with one server
process, and on PostgreSQL with two processes on one database (each agent given both, half
of them starting on each).  Selected with ``-m scale``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from agent_fleet import start_fleet, wait_converged
from cloud_changes import Cloud
from conftest import LiveServer, SqliteBackend, start_live_server

from dvr.client import ServerClient

AGENTS = 200
CHANGES = 100
CONVERGE_TIMEOUT = 90.0  # seconds; what it takes is well below (the test prints it)

pytestmark = pytest.mark.scale


@pytest.fixture(params=["sqlite", "postgres"])
def scale_db(request, tmp_path) -> Iterator[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """(database URL, server processes): SQLite with one, PostgreSQL with two."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_only_backend").new_database(), 2
        return
    backend = SqliteBackend(tmp_path)
    url = backend.new_database()
    yield url, 1
    backend.drop(url)


def restart(server: LiveServer, db_url: str, state_dir: Path) -> LiveServer:
    port = int(server.url.rsplit(":", 1)[1])
    server.stop()
    return start_live_server(db_url, state_dir, port=port)


def test_200_agents_converge_after_random_changes_and_a_server_restart(scale_db, tmp_path):
    db_url, processes = scale_db
    servers = [start_live_server(db_url, tmp_path) for _ in range(processes)]
    hosts = [f"compute-{i:03d}" for i in range(AGENTS)]
    urls = [s.url for s in servers]
    # agent i starts on server i % processes and fails over to the others; no VIF is ever
    # plugged into a fake dataplane, so the local poll can be slow
    fleet = start_fleet(hosts, lambda i: urls[i % processes:] + urls[:i % processes],
                        max_backoff=5.0, resync_jitter=2.0, local_poll_interval=5.0)
    clients = [ServerClient(url, timeout=30.0) for url in urls]
    engine = sa.create_engine(db_url)
    try:
        wait_converged(fleet, clients[0], engine, CONVERGE_TIMEOUT)  # all registered
        cloud = Cloud(clients, hosts, seed=14)
        cloud.build(networks=20, routers=10)
        cloud.random_changes(CHANGES)
        took = wait_converged(fleet, clients[0], engine, CONVERGE_TIMEOUT)
        print(f"{AGENTS} agents, {processes} server process(es): converged {took:.1f} s "
              "after the changes")

        servers = [restart(server, db_url, tmp_path) for server in servers]
        cloud.random_changes(CHANGES // 3)
        took = wait_converged(fleet, clients[0], engine, CONVERGE_TIMEOUT)
        print(f"and {took:.1f} s after a restart of the server(s) and more changes")
    finally:
        fleet.close()
        for client in clients:
            client.close()
        engine.dispose()
        for server in servers:
            server.stop()
