"""Host credentials read once per process where that is safe (``known_credentials``), in
process on both backends: on SQLite (one server process sees every credential write) an
agent's credential is read from the database once, on PostgreSQL (other processes may
rotate or revoke it) at every request; rotating and revoking take effect at the next
request on both."""

from __future__ import annotations

import pytest
from server_helpers import make_config
from starlette.testclient import TestClient

import dvr.server.authn as authn
from dvr.db.session import Database
from dvr.server.app import create_app

ADMIN = {"X-Auth-Token": "admin-secret"}
BEAT = {"applied_revision": 0, "vifs": {}, "local_vlans": {}}
PATH = "/dvr/v1/hosts/compute-1"


@pytest.fixture
def counted_lookups(monkeypatch):  # type: ignore[no-untyped-def]
    """The hashes the middleware looked up in the database, in order."""
    looked_up: list[str] = []
    real = authn.host_of_token

    def counting(conn, token_hash):  # type: ignore[no-untyped-def]
        looked_up.append(token_hash)
        return real(conn, token_hash)

    monkeypatch.setattr(authn, "host_of_token", counting)
    return looked_up


def test_a_credential_is_read_once_where_one_process_sees_every_write(db_url, counted_lookups):
    database = Database.from_url(db_url)
    app = create_app(make_config(db_url, no_auth=False, admin_token="admin-secret"), database,
                     migrate=False)
    postgres = database.is_postgres
    try:
        with TestClient(app) as client:
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
            assert len(counted_lookups) == (4 if postgres else 1)

            second = mint()  # rotated: the first is refused at its next request
            assert beat(first) == 401
            assert [beat(second) for _ in range(3)] == [200] * 3
            assert client.get(f"{PATH}/watch", params={"since": 0, "timeout": 0},
                              headers=second).status_code == 200
            assert len(counted_lookups) == (9 if postgres else 3)  # first again, second once

            assert client.delete(f"{PATH}/credential", headers=ADMIN).status_code == 204
            assert beat(second) == 401
            assert beat(second) == 401  # a token that names nobody is read every time
            assert len(counted_lookups) == (11 if postgres else 5)
            assert client.delete(f"{PATH}/credential", headers=ADMIN).status_code == 404
    finally:
        database.dispose()
