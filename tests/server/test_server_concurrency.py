"""Concurrent clients against a real dvr-server process: no duplicate MACs or IPs."""

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import httpx


def test_50_concurrent_host_mac_requests_give_50_distinct_macs(live_server):
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        for i in range(50):  # only registered hosts get a MAC
            body = {"host": f"compute-{i}", "tunnel_ip": f"192.0.2.{i + 1}"}
            assert client.post("/dvr/v1/agents", json=body).status_code == 200

    def ask(i: int) -> str:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            response = client.post(f"/dvr/v1/hosts/compute-{i}/host-mac")
            assert response.status_code == 200, response.text
            return response.json()["mac_address"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        macs = list(pool.map(ask, range(50)))
    assert len(set(macs)) == 50
    assert all(mac.startswith("fa:16:3f:") for mac in macs)
    with httpx.Client(base_url=live_server.url) as client:
        again = {
            client.post(f"/dvr/v1/hosts/compute-{i}/host-mac").json()["mac_address"]
            for i in range(50)
        }
    assert again == set(macs)


def test_200_concurrent_port_creates_on_one_slash_24_give_distinct_ips(live_server):
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        network = client.post("/v2.0/networks", json={"network": {"name": "n"}}).json()["network"]
        client.post(
            "/v2.0/subnets",
            json={
                "subnet": {"network_id": network["id"], "cidr": "198.51.100.0/24", "ip_version": 4}
            },
        )

    def create(i: int) -> dict:
        with httpx.Client(base_url=live_server.url, timeout=120) as client:
            response = client.post(
                "/v2.0/ports",
                json={"port": {"network_id": network["id"], "binding:host_id": f"compute-{i % 7}"}},
            )
            assert response.status_code == 201, response.text
            return response.json()["port"]

    with ThreadPoolExecutor(max_workers=40) as pool:
        ports = list(pool.map(create, range(200)))
    addresses = [p["fixed_ips"][0]["ip_address"] for p in ports]
    assert len(set(addresses)) == 200
    assert len({p["mac_address"] for p in ports}) == 200
    subnet = ipaddress.ip_network("198.51.100.0/24")
    assert all(ipaddress.ip_address(a) in subnet for a in addresses)
    assert "198.51.100.1" not in addresses
    with httpx.Client(base_url=live_server.url) as client:
        listed = client.get("/v2.0/ports", params={"network_id": network["id"]}).json()["ports"]
    assert len(listed) == 200
