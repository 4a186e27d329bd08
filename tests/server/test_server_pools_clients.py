"""The unchanged openstacksdk and `openstack` client against a real dvr-server process:
subnet pools, subnets from pools, address scopes (the SDK calls are those of the SDK's own
functional tests for them)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from openstack import exceptions

pytestmark = pytest.mark.filterwarnings(
    "ignore::PendingDeprecationWarning", "ignore::DeprecationWarning"
)


def test_sdk_subnet_pools_and_subnets_from_them(conn):
    pool = conn.network.create_subnet_pool(
        name="pool",
        min_prefixlen=8,
        default_prefixlen=24,
        max_prefixlen=32,
        default_quota=24,
        shared=False,
        prefixes=["192.0.2.0/24", "198.51.100.0/24"],
    )
    pool = conn.network.get_subnet_pool(pool.id)
    assert (pool.minimum_prefix_length, pool.default_prefix_length) == (8, 24)
    assert (pool.maximum_prefix_length, pool.default_quota, pool.ip_version) == (32, 24, 4)
    assert pool.prefixes == ["192.0.2.0/24", "198.51.100.0/24"] and pool.is_shared is False
    assert conn.network.find_subnet_pool("pool", ignore_missing=False).id == pool.id
    assert [p.name for p in conn.network.subnet_pools()] == ["pool"]
    pool = conn.network.update_subnet_pool(pool, name="renamed")
    assert pool.name == "renamed"
    conn.network.set_tags(pool, ["blue"])
    assert conn.network.get_subnet_pool(pool.id).tags == ["blue"]

    net = conn.network.create_network(name="net")
    subnet = conn.network.create_subnet(
        name="sub", ip_version=4, network_id=net.id, prefixlen=28, subnetpool_id=pool.id
    )
    subnet = conn.network.get_subnet(subnet.id)
    assert (subnet.cidr, subnet.gateway_ip, subnet.subnet_pool_id) == (
        "192.0.2.0/28",
        "192.0.2.1",
        pool.id,
    )
    second = conn.network.create_subnet(ip_version=4, network_id=net.id, subnetpool_id=pool.id)
    assert second.cidr == "198.51.100.0/24"
    with pytest.raises(exceptions.ConflictException) as full:
        conn.network.create_subnet(ip_version=4, network_id=net.id, subnetpool_id=pool.id)
    assert "Insufficient prefix space" in str(full.value)
    with pytest.raises(exceptions.BadRequestException) as in_use:
        conn.network.delete_subnet_pool(pool)
    assert "existing allocations" in str(in_use.value)

    # subnetpool-prefix-ops has no SDK call: through the SDK's own session
    body = {"prefixes": ["203.0.113.0/24"]}
    added = conn.network.put(f"/subnetpools/{pool.id}/add_prefixes", json=body).json()
    assert added["prefixes"] == ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    third = conn.network.create_subnet(ip_version=4, network_id=net.id, subnetpool_id=pool.id)
    assert third.cidr == "203.0.113.0/24"

    for s in (subnet, second, third):
        conn.network.delete_subnet(s)
    conn.network.delete_network(net, ignore_missing=False)
    assert conn.network.delete_subnet_pool(pool) is None
    assert list(conn.network.subnet_pools()) == []


def test_sdk_address_scopes(conn):
    scope = conn.network.create_address_scope(ip_version=6, name="scope", shared=False)
    scope = conn.network.get_address_scope(scope.id)
    assert (scope.name, scope.is_shared, scope.ip_version) == ("scope", False, 6)
    assert conn.network.find_address_scope("scope", ignore_missing=False).id == scope.id
    assert [s.name for s in conn.network.address_scopes()] == ["scope"]
    scope = conn.network.update_address_scope(scope, name="renamed")
    assert scope.name == "renamed"
    pool = conn.network.create_subnet_pool(
        name="six", prefixes=["2001:db8::/48"], address_scope_id=scope.id
    )
    assert pool.address_scope_id == scope.id
    net = conn.network.create_network(name="net")
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=6, subnetpool_id=pool.id)
    assert subnet.cidr == "2001:db8::/64"
    assert conn.network.get_network(net.id).ipv6_address_scope_id == scope.id
    with pytest.raises(exceptions.ConflictException):
        conn.network.delete_address_scope(scope)
    conn.network.delete_subnet(subnet)
    conn.network.delete_subnet_pool(pool)
    assert conn.network.delete_address_scope(scope) is None
    assert list(conn.network.address_scopes()) == []


OPENSTACK = Path(sys.executable).parent / "openstack"


def cli(url: str, *args: str) -> str:
    command = [str(OPENSTACK), "--os-auth-type", "none", "--os-endpoint", url, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def cli_json(url: str, *args: str):
    return json.loads(cli(url, *args, "-f", "json"))


@pytest.mark.skipif(not OPENSTACK.exists(), reason="openstack client not installed")
def test_cli_subnet_pool_and_address_scope(live_server):
    url = live_server.url
    scope = cli_json(url, "address", "scope", "create", "--ip-version", "4", "scope4")
    assert (scope["ip_version"], scope["shared"]) == (4, False)
    pool = cli_json(
        url, "subnet", "pool", "create", "--pool-prefix", "192.0.2.0/24",
        "--default-prefix-length", "26", "--address-scope", "scope4", "pool4",
    )
    assert (pool["prefixes"], pool["address_scope_id"]) == (["192.0.2.0/24"], scope["id"])
    cli_json(url, "network", "create", "blue")
    first = cli_json(url, "subnet", "create", "--network", "blue", "--subnet-pool", "pool4", "s1")
    second = cli_json(
        url, "subnet", "create", "--network", "blue", "--subnet-pool", "pool4",
        "--prefix-length", "27", "s2",
    )
    assert (first["cidr"], second["cidr"]) == ("192.0.2.0/26", "192.0.2.64/27")
    assert first["subnetpool_id"] == pool["id"]
    cli(url, "subnet", "pool", "set", "--pool-prefix", "198.51.100.0/24", "pool4")
    shown = cli_json(url, "subnet", "pool", "show", "pool4")
    assert shown["prefixes"] == ["192.0.2.0/24", "198.51.100.0/24"]
    assert cli_json(url, "network", "show", "blue")["ipv4_address_scope"] == scope["id"]
