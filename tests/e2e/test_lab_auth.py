"""The lab runs with authentication: the admin token in its state directory, each agent with
its own host credential; the unchanged openstack CLI and openstacksdk work with a token
(and get 401 without one); a lab agent's credential reaches only its own host."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

OPENSTACK = shutil.which("openstack") or str(Path(sys.executable).parent / "openstack")


def api(lab3) -> str:
    return f"http://127.0.0.1:{lab3.lab.api_port}"


def agent_token(lab3, host: str) -> str:
    path = lab3.lab.paths.agent_config(host)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = tomllib.loads(path.read_text())
    assert settings["host"] == host
    return settings["token"]


def openstack(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([OPENSTACK, *argv], text=True, capture_output=True, timeout=60,
                          env=env)


def test_the_lab_keeps_its_admin_token_private_and_the_api_wants_one(lab3):
    token_file = lab3.lab.paths.admin_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab3.lab.paths.server_socket.stat().st_mode) == 0o600
    anonymous = httpx.get(f"{api(lab3)}/v2.0/networks", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["NeutronError"]["type"] == "HTTPUnauthorized"
    assert httpx.get(f"{api(lab3)}/", timeout=10).status_code == 200  # the version document
    admin = httpx.get(f"{api(lab3)}/v2.0/networks", timeout=10,
                      headers={"X-Auth-Token": lab3.lab.admin_token()})
    assert admin.status_code == 200


@pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="the openstack client is not installed")
def test_unchanged_openstack_cli_lists_networks_with_the_admin_token_and_401_without(lab3):
    listed = openstack("--os-auth-type", "admin_token", "--os-token", lab3.lab.admin_token(),
                       "--os-endpoint", api(lab3), "network", "list", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    assert {"blue", "orange", "public"} <= {n["Name"] for n in json.loads(listed.stdout)}
    refused = openstack("--os-auth-type", "none", "--os-endpoint", api(lab3), "network", "list")
    assert refused.returncode != 0
    assert "401" in refused.stderr or "Unauthorized" in refused.stderr, refused.stderr


@pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="the openstack client is not installed")
def test_eval_lab_env_makes_openstack_cli_sdk_and_dvr_work(lab3):
    """`eval "$(dvr lab env)"` in a shell, then the unchanged tools with no options."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("OS_", "DVR_TOKEN", "DVR_SERVER"))}
    script = (
        f'set -e; eval "$({sys.executable} -m dvr.cli.main lab env --name {lab3.lab.name})"\n'
        f'{OPENSTACK} router list -f json\n'
        f'{sys.executable} -c "import openstack, json; '
        f'print(json.dumps(sorted(n.name for n in openstack.connect().network.networks())))"\n'
        f'DVR_LAB_ROOT=/nonexistent {sys.executable} -m dvr.cli.main hosts --json\n'
    )
    result = subprocess.run(["bash", "-c", script], text=True, capture_output=True,
                            timeout=120, env=clean)
    assert result.returncode == 0, result.stderr
    decoder = json.JSONDecoder()
    documents, rest = [], result.stdout.strip()
    while rest:
        document, end = decoder.raw_decode(rest)
        documents.append(document)
        rest = rest[end:].strip()
    routers, networks, hosts = documents
    assert any(r["Name"] == "demo-router" for r in routers)
    assert {"blue", "orange", "public"} <= set(networks)
    assert {h["host"] for h in hosts} >= {"compute-1", "compute-2", "network-1"}


def test_each_lab_agent_holds_its_own_credential_scoped_to_its_host(lab3):
    tokens = {host: agent_token(lab3, host) for host in lab3.record.hosts}
    assert len(set(tokens.values())) == len(tokens)  # one credential per host
    assert all(t.startswith("dvrh_") for t in tokens.values())
    with lab3.client() as admin:  # the trusted unix socket
        for host in tokens:
            assert admin.host_credential(host).host == host

    def get(token: str, path: str) -> httpx.Response:
        return httpx.get(f"{api(lab3)}{path}", headers={"X-Auth-Token": token}, timeout=10)

    own = get(tokens["compute-1"], "/dvr/v1/hosts/compute-1/view")
    assert own.status_code == 200, own.text
    for path in ("/dvr/v1/hosts/compute-2/view", "/dvr/v1/hosts/network-1/agent-state",
                 "/v2.0/networks", "/dvr/v1/hosts"):
        refused = get(tokens["compute-1"], path)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["NeutronError"]["type"] == "HTTPForbidden"
    # the agents keep working with their credentials (they are alive and applied the cloud)
    lab3.wait_converged()
    assert lab3.ping("blue-1", "orange-1").returncode == 0


def test_dvr_commands_find_the_labs_admin_token_by_themselves(lab3):
    env = {k: v for k, v in os.environ.items() if k not in ("DVR_TOKEN", "DVR_SERVER")}
    result = subprocess.run([sys.executable, "-m", "dvr.cli.main", "--server", api(lab3),
                             "routers", "--json"], text=True, capture_output=True, timeout=60,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert any(r["router_id"] == lab3.router_id() for r in json.loads(result.stdout))
    elsewhere = subprocess.run([sys.executable, "-m", "dvr.cli.main", "--server", api(lab3),
                                "hosts"], text=True, capture_output=True, timeout=60,
                               env={**env, "DVR_LAB_ROOT": "/nonexistent"})
    assert elsewhere.returncode == 2 and "401" in elsewhere.stderr
