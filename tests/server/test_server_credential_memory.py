"""Host credentials read once per process (``known_credentials``), in process on both
backends: on SQLite one server process sees every credential write; on PostgreSQL a
process trusts what it read while its change listener hears every other process's
credential notices.  Rotating and revoking take effect at the next request on both
(across processes: tests/server/test_server_workers.py)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from server_helpers import make_config
from starlette.testclient import TestClient

import dvr.server.authn as authn
from dvr.db.session import Database
from dvr.server.app import create_app

ADMIN = {"X-Auth-Token": "admin-secret"}
BEAT = {"applied_revision": 0, "vifs": {}, "local_vlans": {}}
PATH = "/dvr/v1/hosts/compute-1"


def wait_until_hearing(app, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Until the process hears every credential write (PostgreSQL: its listener is up)."""
    deadline = time.monotonic() + timeout
    while not app.state.context.credentials.hearing:
        assert time.monotonic() < deadline, "the change listener never connected"
        time.sleep(0.02)


@pytest.fixture
def counted_lookups(monkeypatch):  # type: ignore[no-untyped-def]
    """The hashes the middleware looked up in the database, in order."""
    looked_up: list[str] = []
    real = authn.hosts_of_tokens

    def counting(tx, token_hashes):  # type: ignore[no-untyped-def]
        looked_up.extend(token_hashes)
        return real(tx, token_hashes)

    monkeypatch.setattr(authn, "hosts_of_tokens", counting)
    return looked_up


def test_a_credential_is_read_once_where_one_process_sees_every_write(db_url, counted_lookups):
    database = Database.from_url(db_url)
    app = create_app(make_config(db_url, no_auth=False, admin_token="admin-secret"), database,
                     migrate=False)
    try:
        with TestClient(app) as client:
            wait_until_hearing(app)
            assert client.post("/dvr/v1/agents", json={"host": "compute-1"},
                               headers=ADMIN).status_code in (200, 201)

            def mint() -> dict[str, str]:
                answer = client.post(f"{PATH}/credential", headers=ADMIN)
                assert answer.status_code == 201, answer.text
                return {"X-Auth-Token": answer.json()["credential"]["token"]}

            def beat(agent: dict[str, str]) -> int:
                return client.post(f"{PATH}/heartbeat", json=BEAT, headers=agent).status_code

            first = mint()
            assert [beat(first) for _ in range(4)] == [200] * 4
            assert len(counted_lookups) == 1

            second = mint()  # rotated: the first is refused at its next request
            assert beat(first) == 401
            assert [beat(second) for _ in range(3)] == [200] * 3
            assert client.get(f"{PATH}/watch", params={"since": 0, "timeout": 0},
                              headers=second).status_code == 200
            assert len(counted_lookups) == 3  # the first again, the second once

            assert client.delete(f"{PATH}/credential", headers=ADMIN).status_code == 204
            assert beat(second) == 401
            assert beat(second) == 401  # a token that names nobody is read every time
            assert len(counted_lookups) == 5
            assert client.delete(f"{PATH}/credential", headers=ADMIN).status_code == 404
    finally:
        database.dispose()


def test_lookups_of_requests_that_arrive_together_share_one_read(db_url, monkeypatch):
    """Twenty agents' heartbeats at once (as after a write that wakes them all): their
    credentials are read in a couple of reads, not twenty, and each is answered as its
    own host (an unknown token among them is refused alone)."""
    batches: list[list[str]] = []
    real = authn.hosts_of_tokens

    def counting(tx, token_hashes):  # type: ignore[no-untyped-def]
        batches.append(list(token_hashes))
        return real(tx, token_hashes)

    monkeypatch.setattr(authn, "hosts_of_tokens", counting)
    database = Database.from_url(db_url)
    app = create_app(make_config(db_url, no_auth=False, admin_token="admin-secret"), database,
                     migrate=False)
    hosts = [f"compute-{i}" for i in range(20)]

    async def scenario() -> list[tuple[str, int]]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://dvr") as client:
            tokens = {}
            for host in hosts:
                registered = await client.post("/dvr/v1/agents", json={"host": host},
                                               headers=ADMIN)
                assert registered.status_code in (200, 201), registered.text
                minted = await client.post(f"/dvr/v1/hosts/{host}/credential", headers=ADMIN)
                tokens[host] = minted.json()["credential"]["token"]
            tokens["stranger"] = "dvrh_" + "x" * 43

            async def beat(host: str) -> tuple[str, int]:
                answer = await client.post(
                    f"/dvr/v1/hosts/{host if host != 'stranger' else hosts[0]}/heartbeat",
                    json=BEAT, headers={"X-Auth-Token": tokens[host]})
                return host, answer.status_code

            return list(await asyncio.gather(*(beat(h) for h in [*hosts, "stranger"])))

    try:
        answers = asyncio.run(scenario())
    finally:
        database.dispose()
    assert answers == [(h, 200) for h in hosts] + [("stranger", 401)]
    assert sum(len(b) for b in batches) == 21
    assert len(batches) <= 3, [len(b) for b in batches]
