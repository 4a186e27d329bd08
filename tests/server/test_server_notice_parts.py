"""Two server processes on one PostgreSQL (two apps in this process, each with its own
connection pool, change hub and LISTEN follower): the process that did not write a revision
learns from the write's change notice what it may have changed, and keeps the rest."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from server_helpers import make_config

from dvr.db.session import Database
from dvr.server.app import create_app
from dvr.server.hostview import build_host_view

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]
GUARD = 20.0  # seconds a notice may take to arrive before the test fails


@pytest.fixture
def anyio_backend():
    return "asyncio"


def client_for(app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def post(client: httpx.AsyncClient, path: str, body: dict) -> dict:
    response = await client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def port(client: httpx.AsyncClient, network_id: str, host: str) -> None:
    await post(client, "/v2.0/ports", {"port": {"network_id": network_id,
                                                "binding:host_id": host,
                                                "device_owner": "compute:nova"}})


async def heard(app, revision: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until the app's follower published ``revision`` (bounded)."""
    hub = app.state.context.hub
    hub.start_following()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while hub.latest < revision:
        assert loop.time() < deadline, f"revision {revision} never reached the other process"
        await asyncio.sleep(0.05)


def view(app, host: str):  # type: ignore[no-untyped-def]
    context = app.state.context
    return context.run_read(lambda tx: build_host_view(tx.conn, host, context.view_parts))


def alone(app, host: str):  # type: ignore[no-untyped-def]
    return app.state.context.run_read(lambda tx: build_host_view(tx.conn, host))


async def test_the_other_process_keeps_what_a_write_did_not_change(pg_only_backend):
    url = pg_only_backend.new_database()
    db_a, db_b = Database.from_url(url), Database.from_url(url)
    app_a = create_app(make_config(url), db_a)
    app_b = create_app(make_config(url), db_b, migrate=False)
    try:
        async with client_for(app_a) as a:
            for host, ip in (("h1", "192.0.2.1"), ("h2", "192.0.2.2")):
                await post(a, "/dvr/v1/agents",
                           {"host": host, "agent_mode": "dvr", "tunnel_ip": ip})
            net = (await post(a, "/v2.0/networks", {"network": {
                "name": "blue", "port_security_enabled": False}}))["network"]
            await post(a, "/v2.0/subnets", {"subnet": {
                "network_id": net["id"], "cidr": "198.51.100.0/24", "ip_version": 4}})
            await port(a, net["id"], "h1")
            before = app_a.state.context.hub.latest
            await heard(app_b, before)
            first = view(app_b, "h1")
            kept = app_b.state.context.view_parts.host_parts.get("h1").own
            await port(a, net["id"], "h2")  # h1 sees the network change, its rows do not
            after = app_a.state.context.hub.latest
            assert after > before
            await heard(app_b, after)
            second = view(app_b, "h1")
        assert second.revision == after and second == alone(app_b, "h1") != first
        assert app_b.state.context.view_parts.host_parts.get("h1").own.ports is kept.ports
    finally:
        for app in (app_a, app_b):
            await app.state.context.hub.close()
        db_a.dispose()
        db_b.dispose()
        pg_only_backend.drop(url)
