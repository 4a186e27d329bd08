"""The long-poll watch: immediate answers, wake-ups, resync, other replicas."""

import asyncio

import httpx
import pytest
from server_helpers import make_config

from dvr.db.session import Database
from dvr.server.app import create_app
from dvr.server.services.notify import NewChanges
from dvr.server.watch import ChangeHub

pytestmark = pytest.mark.anyio
GUARD = 20  # seconds: a watcher that is never woken fails the test instead of hanging it


@pytest.fixture
def anyio_backend():
    return "asyncio"


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def make_net(client) -> dict:
    response = await client.post("/v2.0/networks", json={"network": {"name": "n"}})
    network = response.json()["network"]
    await client.post(
        "/v2.0/subnets",
        json={"subnet": {"network_id": network["id"], "cidr": "198.51.100.0/24", "ip_version": 4}},
    )
    return network


async def create_port(client, network_id: str, host: str) -> dict:
    response = await client.post(
        "/v2.0/ports",
        json={
            "port": {
                "network_id": network_id,
                "binding:host_id": host,
                "device_owner": "compute:nova",
            }
        },
    )
    assert response.status_code == 201
    return response.json()["port"]


async def watch(client, host: str, since: int, timeout: float) -> dict:
    response = await client.get(
        f"/dvr/v1/hosts/{host}/watch", params={"since": since, "timeout": timeout}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_answers_at_once_when_changes_exist(app):
    async with client_for(app) as client:
        network = await make_net(client)
        port = await create_port(client, network["id"], "h1")
        result = await asyncio.wait_for(watch(client, "h1", 0, 50), GUARD)
    assert result["resync"] is False
    assert {"kind": "port", "id": port["id"]} in result["changes"]


async def test_woken_by_a_write_for_the_host(app):
    async with client_for(app) as client:
        network = await make_net(client)
        start = (await watch(client, "h1", 0, 0))["revision"]
        waiter = asyncio.create_task(watch(client, "h1", start, 50))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        port = await create_port(client, network["id"], "h1")
        result = await asyncio.wait_for(waiter, GUARD)
    assert result["changes"] == [{"kind": "port", "id": port["id"]}]
    assert result["revision"] > start


async def test_writes_for_other_hosts_do_not_answer(app):
    async with client_for(app) as client:
        network = await make_net(client)
        start = (await watch(client, "h1", 0, 0))["revision"]
        waiter = asyncio.create_task(watch(client, "h1", start, 1))
        await create_port(client, network["id"], "h2")
        result = await asyncio.wait_for(waiter, GUARD)
        # a timed-out watch answers what it read when it began (no second read per idle
        # watch): the next one moves the caller's cursor past the other host's write
        following = await watch(client, "h1", result["revision"], 0)
    assert result["changes"] == [] and result["resync"] is False
    assert result["revision"] == start
    assert following["changes"] == [] and following["revision"] > start


async def test_future_revision_means_resync(app):
    async with client_for(app) as client:
        result = await watch(client, "h1", 10**9, 0)
    assert result == {"revision": 0, "changes": [], "resync": True}


async def test_pruned_revision_means_resync(db_url):
    database = Database.from_url(db_url)
    small = create_app(make_config(db_url, retained_changes=5), database, migrate=False)
    async with client_for(small) as client:
        network = await make_net(client)
        for _ in range(70):  # pruning runs every 64 revisions
            await create_port(client, network["id"], "h1")
        old = await watch(client, "h1", 1, 0)
        latest = old["revision"]
        fresh = await watch(client, "h1", latest - 1, 0)
    database.dispose()
    assert old["resync"] is True and old["changes"] == []
    assert fresh["resync"] is False and len(fresh["changes"]) == 1


async def test_bad_since_is_a_bad_request(app):
    async with client_for(app) as client:
        response = await client.get("/dvr/v1/hosts/h1/watch", params={"since": "x"})
    assert response.status_code == 400
    assert response.json()["NeutronError"]["type"] == "HTTPBadRequest"


async def test_a_second_replica_sees_writes_of_the_first(db_url):
    """Two apps (as two server processes would) on one database: B's watcher is woken by its
    periodic re-check of the database, not by an in-process publish."""
    db_a, db_b = Database.from_url(db_url), Database.from_url(db_url)
    app_a = create_app(make_config(db_url), db_a, migrate=False)
    app_b = create_app(make_config(db_url), db_b, migrate=False)
    async with client_for(app_a) as a, client_for(app_b) as b:
        network = await make_net(a)
        start = (await watch(b, "h1", 0, 0))["revision"]
        waiter = asyncio.create_task(watch(b, "h1", start, 50))
        await asyncio.sleep(0.2)
        port = await create_port(a, network["id"], "h1")
        result = await asyncio.wait_for(waiter, GUARD)
    db_a.dispose()
    db_b.dispose()
    assert result["changes"] == [{"kind": "port", "id": port["id"]}]


async def test_hub_wakes_only_the_hosts_concerned():
    async def nothing_new(since: int) -> NewChanges:
        return NewChanges(since, {})

    hub = ChangeHub(read_new_changes=nothing_new, poll_interval=0.05)
    h1, h2 = hub.snapshot("h1"), hub.snapshot("h2")
    hub.publish(5, {"h2", "h9"})
    assert h2.is_set() and not h1.is_set()
    assert hub.snapshot("h2") is not h2  # the next publish needs a fresh event
    hub.publish(6)  # None: everyone (e.g. shutdown)
    assert h1.is_set() and hub.latest == 6


async def test_hub_poller_wakes_hosts_changed_by_another_replica():
    async def replica_wrote(since: int) -> NewChanges:
        return NewChanges(9, {"h1": 8})

    hub = ChangeHub(read_new_changes=replica_wrote, poll_interval=0.05)
    woken = await asyncio.wait_for(hub.wait(hub.snapshot("h1"), 30), GUARD)
    assert woken and hub.latest == 9 and hub.host_revision("h1") == 8
    await hub.close()


async def test_a_watch_after_an_answer_asks_the_hub_not_the_database(app, monkeypatch):
    """The process heard every revision since it started, with the hosts each concerns: a
    watch that is not woken needs no read when none after ``since`` concerns its host (the
    next watch of every agent a change woke); one that is woken reads its changes."""
    context = app.state.context
    reads: list[str] = []
    run_read = context.run_read

    def counted(work):
        reads.append("read")
        return run_read(work)

    async with client_for(app) as client:
        network = await make_net(client)
        first = await watch(client, "h1", 0, 0)
        monkeypatch.setattr(context, "run_read", counted)
        await create_port(client, network["id"], "h2")
        quiet = await watch(client, "h1", first["revision"], 0)
        assert reads == [] and quiet["changes"] == [] and quiet["revision"] > first["revision"]
        waiter = asyncio.create_task(watch(client, "h1", quiet["revision"], 50))
        await asyncio.sleep(0.2)
        port = await create_port(client, network["id"], "h1")
        woken = await asyncio.wait_for(waiter, GUARD)
    assert woken["changes"] == [{"kind": "port", "id": port["id"]}] and reads
