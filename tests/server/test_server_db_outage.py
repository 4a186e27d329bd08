"""Database outages are load, not bugs: PostgreSQL stopped and started again under a write
load gives 503 ServiceUnavailable + Retry-After (never a 500), heartbeats that say nothing
new and watches are still answered from memory, the server recovers by itself, everything
acknowledged is there (nothing half-written), and the log has one line when the outage
starts and one when it ends — no traceback."""

import threading
import time

import httpx
import pytest
import sqlalchemy as sa
from conftest import start_live_server
from server_helpers import make_config
from sqlalchemy import exc as sa_exc
from starlette.testclient import TestClient

from dvr.db.migrate import upgrade_to_head
from dvr.db.session import Database
from dvr.server.app import create_app


class Load:
    """Threads that keep calling the server and record every answer."""

    def __init__(self, url: str):
        self.url = url
        self.stop = threading.Event()
        self.creates: list[tuple[str, int, httpx.Response]] = []
        self.heartbeats: list[int] = []
        self.watches: list[int] = []
        self.threads = [threading.Thread(target=t, daemon=True)
                        for t in (self._create, self._create, self._heartbeat, self._watch)]
        self.counter = iter(range(1_000_000))
        self.lock = threading.Lock()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _create(self):
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                with self.lock:
                    name = f"net-{next(self.counter)}"
                response = client.post("/v2.0/networks", json={"network": {"name": name}})
                self.creates.append((name, response.status_code, response))
                time.sleep(0.01)

    def _heartbeat(self):
        body = {"applied_revision": 1, "ports_up": [], "vifs": {}, "local_vlans": {}}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                response = client.post("/dvr/v1/hosts/compute-1/heartbeat", json=body)
                self.heartbeats.append(response.status_code)
                time.sleep(0.05)

    def _watch(self):
        with httpx.Client(base_url=self.url, timeout=30) as client:
            path = "/dvr/v1/hosts/compute-1/watch"
            since = client.get(path, params={"since": 0, "timeout": 0}).json()["revision"]
            while not self.stop.is_set():
                response = client.get(path, params={"since": since, "timeout": 0.5})
                self.watches.append(response.status_code)
                assert not response.json()["changes"]  # nothing concerns compute-1

    def created_since(self, index: int) -> int:
        return sum(1 for _, status, _ in self.creates[index:] if status == 201)


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.postgres
def test_postgresql_restarted_under_write_load(private_pg_cluster, tmp_path):
    admin = sa.create_engine(private_pg_cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE dvr")
    admin.dispose()
    url = private_pg_cluster.url("dvr")
    database = Database.from_url(url)
    upgrade_to_head(database.engine)
    database.dispose()
    server = start_live_server(url, tmp_path)
    try:
        httpx.post(server.url + "/dvr/v1/agents", json={"host": "compute-1"}).raise_for_status()
        with Load(server.url) as load:
            wait_for(lambda: load.created_since(0) >= 5)
            private_pg_cluster.stop_server("fast")
            wait_for(lambda: 503 in {status for _, status, _ in load.creates[-5:]})
            watches_before = len(load.watches)
            # watches go on being answered (from memory) while the database is down
            wait_for(lambda: len(load.watches) >= watches_before + 2)
            watches_during = len(load.watches) - watches_before
            time.sleep(0.5)
            outage_end = len(load.creates)
            private_pg_cluster.start_server()
            wait_for(lambda: load.created_since(outage_end) >= 5)
        statuses = [status for _, status, _ in load.creates]
        assert set(statuses) <= {201, 503}, sorted(set(statuses))
        refused = [response for _, status, response in load.creates if status == 503]
        assert refused, "the outage went unnoticed"
        for response in refused:
            assert response.headers["retry-after"] == "5"
            assert response.json()["NeutronError"]["type"] == "ServiceUnavailable"
        assert load.created_since(outage_end) >= 5  # recovered by itself
        # heartbeats that say nothing new and watches are answered from memory throughout
        assert set(load.heartbeats) == {200} and set(load.watches) == {200}
        assert watches_during >= 2, "no watch was answered during the outage"
        listed = {n["name"] for n in httpx.get(server.url + "/v2.0/networks").json()["networks"]}
        acknowledged = {name for name, status, _ in load.creates if status == 201}
        assert acknowledged <= listed <= {name for name, _, _ in load.creates}
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert log.count("database unreachable") == 1, log
    assert log.count("database reachable again after") == 1, log
    assert "Traceback" not in log and "unexpected error" not in log, log


def test_agents_with_credentials_are_answered_from_memory_while_the_database_is_down(db_url):
    """In-process, on both backends: the database "goes away" (every transaction fails as a
    lost connection does); a host credential read before still authenticates the agent's
    heartbeats and watches, everything else answers 503."""
    database = Database.from_url(db_url)
    app = create_app(make_config(db_url, no_auth=False, admin_token="admin-secret"), database,
                     migrate=False)
    context = app.state.context
    try:
        with TestClient(app, headers={"X-Auth-Token": "admin-secret"}) as admin:
            admin.post("/dvr/v1/agents", json={"host": "compute-1"}).raise_for_status()
            token = admin.post("/dvr/v1/hosts/compute-1/credential").json()["credential"]["token"]
            agent = {"X-Auth-Token": token}
            beat = {"applied_revision": 1, "vifs": {}, "local_vlans": {}}
            path = "/dvr/v1/hosts/compute-1"
            assert admin.post(f"{path}/heartbeat", json=beat, headers=agent).status_code == 200
            since = admin.get(f"{path}/watch", params={"since": 0, "timeout": 0},
                              headers=agent).json()["revision"]

            def unreachable(*args, **kwargs):
                raise sa_exc.OperationalError("connect", {}, OSError("connection refused"))

            real_read, real_write = database.read, database.write
            database.read = database.write = unreachable
            try:
                answer = admin.post(f"{path}/heartbeat", json=beat, headers=agent)
                assert answer.status_code == 200 and answer.json()["alive"] is True
                watch = admin.get(f"{path}/watch", params={"since": since, "timeout": 0.2},
                                  headers=agent)
                assert watch.status_code == 200
                assert watch.json() == {"revision": since, "changes": [], "resync": False}
                for method, url, headers in (
                    ("GET", "/v2.0/networks", None),
                    ("GET", f"{path}/view", agent),
                    ("POST", f"{path}/host-mac", agent),
                ):
                    refused = admin.request(method, url, headers=headers)
                    assert refused.status_code == 503, (url, refused.text)
                    assert refused.headers["retry-after"] == "5"
                    assert refused.json()["NeutronError"]["type"] == "ServiceUnavailable"
                stranger = admin.get(f"{path}/watch", headers={"X-Auth-Token": "dvrh_unknown"})
                assert stranger.status_code == 503  # an unknown credential is not let in
                assert context.health.down
            finally:
                database.read, database.write = real_read, real_write
            assert admin.get("/v2.0/networks").status_code == 200
            assert not context.health.down
    finally:
        database.dispose()
