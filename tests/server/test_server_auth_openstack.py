"""The unchanged `openstack` client and openstacksdk against a server with authentication
on: openstack's own ``admin_token`` auth type lists networks; without a token, 401."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer, start_live_server

OPENSTACK = Path(sys.executable).parent / "openstack"


@pytest.fixture
def authed(db_url, tmp_path) -> Iterator[tuple[LiveServer, str]]:  # type: ignore[no-untyped-def]
    server = start_live_server(db_url, tmp_path, auth=True)
    try:
        token = (tmp_path / "admin-token").read_text().strip()
        created = httpx.post(server.url + "/v2.0/networks", json={"network": {"name": "blue"}},
                             headers={"X-Auth-Token": token})
        assert created.status_code == 201, created.text
        yield server, token
    finally:
        server.stop()


@pytest.mark.skipif(not OPENSTACK.exists(), reason="openstack client not installed")
def test_the_openstack_cli_lists_networks_with_an_admin_token_and_gets_401_without(authed):
    server, token = authed

    def network_list(*auth: str) -> subprocess.CompletedProcess:
        command = [str(OPENSTACK), *auth, "--os-endpoint", server.url, "network", "list",
                   "-f", "json"]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    listed = network_list("--os-auth-type", "admin_token", "--os-token", token)
    assert listed.returncode == 0, listed.stderr
    assert [n["Name"] for n in json.loads(listed.stdout)] == ["blue"]
    anonymous = network_list("--os-auth-type", "none")
    assert anonymous.returncode != 0
    assert "401" in anonymous.stderr or "Unauthorized" in anonymous.stderr, anonymous.stderr


def test_openstacksdk_with_admin_token(authed):
    import openstack
    from openstack import exceptions

    server, token = authed
    conn = openstack.connect(auth_type="admin_token",
                             auth={"endpoint": server.url, "token": token})
    try:
        assert [n.name for n in conn.network.networks()] == ["blue"]
    finally:
        conn.close()
    anonymous = openstack.connect(auth_type="none", auth={"endpoint": server.url})
    try:
        with pytest.raises(exceptions.HttpException) as raised:
            list(anonymous.network.networks())
        assert raised.value.status_code == 401
    finally:
        anonymous.close()
