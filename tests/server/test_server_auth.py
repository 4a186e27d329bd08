"""Authentication against a real dvr-server process (SQLite and PostgreSQL): every forged or
anonymous request of issue 11 is sent, refused, and changes nothing (views, tunnel IPs, host
MACs, port status, applied revisions, heartbeats)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import LiveServer, start_live_server

HOSTS = {"compute-1": "192.0.2.11", "compute-2": "192.0.2.12"}
FORGED_TUNNEL = "203.0.113.66"


@dataclass
class Secured:
    """A server with authentication on, two registered hosts with credentials and a bound
    port each, and clients: admin (TCP + token), anonymous, per host, and the unix socket."""

    server: LiveServer
    socket_path: Path
    admin_token: str
    tokens: dict[str, str]
    ports: dict[str, str]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"X-Auth-Token": token} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)

    def host(self, name: str) -> httpx.Client:
        return self.client(self.tokens[name])

    def unix(self, token: str | None = None) -> httpx.Client:
        headers = {"X-Auth-Token": token} if token else {}
        transport = httpx.HTTPTransport(uds=str(self.socket_path))
        return httpx.Client(transport=transport, base_url="http://dvr", headers=headers)

    def state(self) -> dict[str, Any]:
        """Everything a forged request could change, read by the admin (on the unix socket:
        not subject to the TCP address's rate limit)."""
        with self.unix() as admin:
            return {
                "hosts": ok(admin.get("/dvr/v1/hosts")),
                "views": {h: ok(admin.get(f"/dvr/v1/hosts/{h}/view")) for h in HOSTS},
                "agent_state": {
                    h: ok(admin.get(f"/dvr/v1/hosts/{h}/agent-state")) for h in HOSTS
                },
                "ports": sorted(
                    (p["id"], p["status"], p["binding:host_id"])
                    for p in ok(admin.get("/v2.0/ports"))["ports"]
                ),
                "agents": sorted(
                    (a["host"], a["agent_type"], a["heartbeat_timestamp"], str(a["configurations"]))
                    for a in ok(admin.get("/v2.0/agents"))["agents"]
                ),
            }


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


def refused(response: httpx.Response, status: int, type_name: str | None = None) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    error = response.json()["NeutronError"]
    assert set(error) == {"type", "message", "detail"}
    expected = type_name or {401: "HTTPUnauthorized", 403: "HTTPForbidden"}[status]
    assert error["type"] == expected, error


@pytest.fixture
def secured(db_url, tmp_path) -> Iterator[Secured]:  # type: ignore[no-untyped-def]
    socket_path = tmp_path / "run" / "dvr.sock"
    server = start_live_server(db_url, tmp_path, "--listen", f"unix:{socket_path}", auth=True)
    try:
        admin_token = (tmp_path / "admin-token").read_text().strip()
        headers = {"X-Auth-Token": admin_token}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as admin:
            network = ok(admin.post("/v2.0/networks", json={"network": {"name": "blue"}}), 201)
            ok(admin.post("/v2.0/subnets", json={"subnet": {
                "network_id": network["network"]["id"], "cidr": "198.51.100.0/24",
                "ip_version": 4}}), 201)
            tokens, ports = {}, {}
            for host, tunnel_ip in HOSTS.items():
                ok(admin.post("/dvr/v1/agents", json={"host": host, "tunnel_ip": tunnel_ip}))
                ok(admin.post(f"/dvr/v1/hosts/{host}/host-mac"))
                port = ok(admin.post("/v2.0/ports", json={"port": {
                    "network_id": network["network"]["id"], "device_owner": "compute:nova",
                    "binding:host_id": host}}), 201)["port"]
                ports[host] = port["id"]
                created = ok(admin.post(f"/dvr/v1/hosts/{host}/credential"), 201)["credential"]
                tokens[host] = created["token"]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for host, port_id in ports.items():  # each agent reports its port up
                ok(client.post(f"/dvr/v1/hosts/{host}/heartbeat", json={
                    "applied_revision": 1, "ports_up": [port_id]},
                    headers={"X-Auth-Token": tokens[host]}))
        yield Secured(server, socket_path, admin_token, tokens, ports)
    finally:
        server.stop()


def test_anonymous_and_forged_requests_are_refused_and_change_nothing(secured):
    before = secured.state()
    assert {h["host"]: h["tunnel_ip"] for h in before["hosts"]} == HOSTS
    assert all(h["host_mac"] for h in before["hosts"])
    assert {p[1] for p in before["ports"]} == {"ACTIVE"}
    victim = "compute-2"
    forged_heartbeat = {"applied_revision": 999999, "ports_down": [secured.ports[victim]]}
    forged_registration = {"host": victim, "tunnel_ip": FORGED_TUNNEL}
    with secured.client() as anonymous:
        # an anonymous reader on the network sees no HostView, and can send nothing
        refused(anonymous.get(f"/dvr/v1/hosts/{victim}/view"), 401)
        refused(anonymous.get(f"/dvr/v1/hosts/{victim}/watch", params={"timeout": 0}), 401)
        refused(anonymous.post(f"/dvr/v1/hosts/{victim}/heartbeat", json=forged_heartbeat), 401)
        refused(anonymous.post("/dvr/v1/agents", json=forged_registration), 401)
        refused(anonymous.post("/dvr/v1/hosts/ghost/host-mac"), 401)
        # the admin API without a token
        refused(anonymous.get("/v2.0/networks"), 401)
        refused(anonymous.post("/v2.0/networks", json={"network": {"name": "x"}}), 401)
        refused(anonymous.delete(f"/v2.0/ports/{secured.ports[victim]}"), 401)
        refused(anonymous.get("/dvr/v1/hosts"), 401)
        refused(anonymous.get("/dvr/v1/topology"), 401)
        refused(anonymous.post(f"/dvr/v1/hosts/{victim}/credential"), 401)
        refused(anonymous.get("/openapi.json"), 401)
        assert anonymous.get("/").status_code == 200  # the version document stays public
    with secured.host("compute-1") as attacker:
        # compute-1's credential speaks for compute-1 only
        refused(attacker.get(f"/dvr/v1/hosts/{victim}/view"), 403)
        refused(attacker.get(f"/dvr/v1/hosts/{victim}/watch", params={"timeout": 0}), 403)
        refused(attacker.get(f"/dvr/v1/hosts/{victim}/agent-state"), 403)
        refused(attacker.post(f"/dvr/v1/hosts/{victim}/heartbeat", json=forged_heartbeat), 403)
        refused(attacker.post("/dvr/v1/agents", json=forged_registration), 403)
        refused(attacker.post(f"/dvr/v1/hosts/{victim}/credential"), 403)
        refused(attacker.delete("/dvr/v1/hosts/compute-1/credential"), 403)
        # host-MAC drain: an invented host is not its own
        for i in range(20):
            refused(attacker.post(f"/dvr/v1/hosts/ghost-{i}/host-mac"), 403)
        # Neutron resources and the admin's /dvr/v1 calls
        refused(attacker.get("/v2.0/networks"), 403)
        refused(attacker.post("/v2.0/networks", json={"network": {"name": "x"}}), 403)
        refused(attacker.put(f"/v2.0/ports/{secured.ports[victim]}",
                             json={"port": {"admin_state_up": False}}), 403)
        refused(attacker.delete(f"/v2.0/ports/{secured.ports[victim]}"), 403)
        refused(attacker.get("/v2.0/agents"), 403)
        refused(attacker.get("/dvr/v1/hosts"), 403)
        refused(attacker.get("/dvr/v1/topology"), 403)
        refused(attacker.get("/dvr/v1/hosts/compute-1/routers"), 403)
    with secured.admin() as admin:
        # the admin may not move a host that has a credential: its own credential must
        refused(admin.post("/dvr/v1/agents", json=forged_registration), 409,
                "HostIdentityConflict")
        refused(admin.post("/dvr/v1/agents", json={"host": victim, "agent_mode": "dvr_snat",
                                                   "tunnel_ip": HOSTS[victim]}),
                409, "HostIdentityConflict")
        # host MACs only for registered hosts: nothing allocated, nobody notified
        for i in range(20):
            refused(admin.post(f"/dvr/v1/hosts/ghost-{i}/host-mac"), 404, "HostNotFound")
    assert secured.state() == before
    log = secured.server.log_path.read_text()
    assert "refused to register host 'compute-2' for host compute-1 from 127.0.0.1" in log
    assert "refused to register host 'compute-2' for admin from 127.0.0.1" in log


def test_a_host_credential_does_its_own_hosts_work(secured):
    me, other = "compute-1", "compute-2"
    with secured.admin() as admin:
        other_view_before = ok(admin.get(f"/dvr/v1/hosts/{other}/view"))
    with secured.host(me) as agent:
        view = ok(agent.get(f"/dvr/v1/hosts/{me}/view"))
        assert view["host"] == me and view["tunnel_ip"] == HOSTS[me]
        watched = ok(agent.get(f"/dvr/v1/hosts/{me}/watch", params={"since": 0, "timeout": 0}))
        assert watched["resync"] is False
        mac = ok(agent.post(f"/dvr/v1/hosts/{me}/host-mac"))["mac_address"]
        assert mac == view["host_mac"]
        ok(agent.post(f"/dvr/v1/hosts/{me}/heartbeat", json={
            "applied_revision": 7, "ports_down": [secured.ports[me]]}))
        assert ok(agent.get(f"/dvr/v1/hosts/{me}/agent-state"))["applied_revision"] == 7
        # re-registering itself with a new tunnel IP is the host's own right
        ok(agent.post("/dvr/v1/agents", json={"host": me, "tunnel_ip": "192.0.2.111"}))
    with secured.admin() as admin:
        hosts = {h["host"]: h for h in ok(admin.get("/dvr/v1/hosts"))}
        assert hosts[me]["tunnel_ip"] == "192.0.2.111" and hosts[me]["applied_revision"] == 7
        ports = {p["id"]: p["status"] for p in ok(admin.get("/v2.0/ports"))["ports"]}
        assert ports == {secured.ports[me]: "DOWN", secured.ports[other]: "ACTIVE"}
        other_view = ok(admin.get(f"/dvr/v1/hosts/{other}/view"))
        assert other_view["revision"] > other_view_before["revision"]  # its peer moved
        # the admin may re-register a host without changing its tunnel IP or mode
        ok(admin.post("/dvr/v1/agents", json={"host": me, "tunnel_ip": "192.0.2.111"}))


def test_rotated_and_revoked_credentials_stop_working_at_once(secured):
    host = "compute-1"
    old = secured.tokens[host]
    with secured.admin() as admin:
        shown = ok(admin.get(f"/dvr/v1/hosts/{host}/credential"))["credential"]
        assert set(shown) == {"host", "created_at"} and shown["host"] == host
        rotated = ok(admin.post(f"/dvr/v1/hosts/{host}/credential"), 201)["credential"]
    new = rotated["token"]
    assert new != old and new.startswith("dvrh_") and len(new) == len("dvrh_") + 43
    with secured.client(old) as stale:
        refused(stale.get(f"/dvr/v1/hosts/{host}/view"), 401)
    with secured.client(new) as fresh:
        ok(fresh.get(f"/dvr/v1/hosts/{host}/view"))
    with secured.admin() as admin:
        ok(admin.delete(f"/dvr/v1/hosts/{host}/credential"), 204)
        refused(admin.delete(f"/dvr/v1/hosts/{host}/credential"), 404,
                "HostCredentialNotFound")
        refused(admin.get(f"/dvr/v1/hosts/{host}/credential"), 404, "HostCredentialNotFound")
        # with no credential left, the admin may move the host again
        ok(admin.post("/dvr/v1/agents", json={"host": host, "tunnel_ip": "192.0.2.211"}))
    with secured.client(new) as revoked:
        refused(revoked.get(f"/dvr/v1/hosts/{host}/view"), 401)
        refused(revoked.post(f"/dvr/v1/hosts/{host}/heartbeat", json={}), 401)


def test_repeated_failures_from_one_address_are_rate_limited(secured):
    before = secured.state()
    with secured.client("dvrh_" + "x" * 43) as guesser:
        for _ in range(10):
            refused(guesser.get("/dvr/v1/hosts/compute-1/view"), 401)
        limited = guesser.get("/dvr/v1/hosts/compute-1/view")
    assert limited.status_code == 429
    assert limited.json()["NeutronError"]["type"] == "HTTPTooManyRequests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    with secured.admin() as admin:  # the address is refused, whatever it sends now
        assert admin.get("/v2.0/networks").status_code == 429
        assert admin.get("/").status_code == 200  # the public version document is not
    with secured.unix() as local:  # the trusted socket is not rate-limited
        ok(local.get("/v2.0/networks"))
    assert secured.state() == before


def test_the_unix_socket_is_0600_admin_without_a_token_and_scoped_with_one(secured):
    mode = stat.S_IMODE(secured.socket_path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    with secured.unix() as local:
        ok(local.post("/v2.0/networks", json={"network": {"name": "via-unix"}}), 201)
    with secured.unix(secured.tokens["compute-1"]) as agent:
        ok(agent.get("/dvr/v1/hosts/compute-1/view"))
        refused(agent.get("/dvr/v1/hosts/compute-2/view"), 403)
        refused(agent.get("/v2.0/networks"), 403)
    with secured.unix("not-a-token") as stranger:
        for _ in range(12):  # refused each time, but the trusted socket is never locked
            refused(stranger.get("/v2.0/networks"), 401)
    with secured.unix() as local:
        ok(local.get("/v2.0/networks"))


def test_the_admin_token_is_created_0600_on_first_start_and_kept(db_url, tmp_path):
    state_dir = tmp_path / "state"
    token_path = state_dir / "admin-token"
    server = start_live_server(db_url, _made(state_dir), auth=True)
    try:
        token = token_path.read_text().strip()
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        assert len(token) == 48 and token.startswith("dvra_")
        with httpx.Client(base_url=server.url, headers={"X-Auth-Token": token}) as admin:
            ok(admin.get("/v2.0/networks"))
        with httpx.Client(base_url=server.url, headers={"X-Auth-Token": token + "x"}) as bad:
            refused(bad.get("/v2.0/networks"), 401)
    finally:
        server.stop()
    server = start_live_server(db_url, state_dir, auth=True)  # a restart keeps the token
    try:
        assert token_path.read_text().strip() == token
        with httpx.Client(base_url=server.url, headers={"X-Auth-Token": token}) as admin:
            ok(admin.get("/v2.0/networks"))
    finally:
        server.stop()


def test_an_admin_token_file_is_read_not_created(db_url, tmp_path):
    token_file = tmp_path / "given-token"
    token_file.write_text("  an-admin-token-from-a-file\n")
    token_file.chmod(0o644)
    server = start_live_server(
        db_url, tmp_path, "--admin-token-file", str(token_file), auth=True
    )
    try:
        assert not (tmp_path / "admin-token").exists()
        headers = {"X-Auth-Token": "an-admin-token-from-a-file"}
        with httpx.Client(base_url=server.url, headers=headers) as admin:
            ok(admin.get("/v2.0/networks"))
    finally:
        server.stop()
    assert "is readable by others (mode 644)" in server.log_path.read_text()


def test_no_auth_keeps_the_open_mode_and_warns(db_url, tmp_path):
    server = start_live_server(db_url, tmp_path)  # --no-auth
    try:
        with httpx.Client(base_url=server.url) as anyone:
            ok(anyone.post("/v2.0/networks", json={"network": {"name": "open"}}), 201)
            ok(anyone.post("/dvr/v1/agents", json={"host": "h1", "tunnel_ip": "192.0.2.1"}))
            ok(anyone.post("/dvr/v1/agents", json={"host": "h1", "tunnel_ip": "192.0.2.2"}))
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "WARNING" in log and "authentication is OFF (--no-auth)" in log
    assert not (tmp_path / "admin-token").exists()


def _made(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory
