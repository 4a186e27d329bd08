"""The unchanged openstacksdk against a real dvr-server process."""

import pytest
from openstack import exceptions

# the SDK warns about its own future API changes; they are not ours to act on
pytestmark = pytest.mark.filterwarnings(
    "ignore::PendingDeprecationWarning", "ignore::DeprecationWarning"
)


def test_sdk_builds_a_dvr_topology(conn):
    net = conn.network.create_network(name="blue")
    assert net.mtu == 1450 and net.provider_network_type == "vxlan"
    subnet = conn.network.create_subnet(
        network_id=net.id, cidr="198.51.100.0/24", ip_version=4, name="blue-sub"
    )
    assert subnet.gateway_ip == "198.51.100.1"
    v6 = conn.network.create_subnet(network_id=net.id, cidr="2001:db8::/64", ip_version=6)
    assert v6.gateway_ip == "2001:db8::1"
    ext = conn.network.create_network(name="ext", is_router_external=True)
    conn.network.create_subnet(network_id=ext.id, cidr="203.0.113.0/24", ip_version=4)
    router = conn.network.create_router(name="r1", is_distributed=True)
    assert router.is_distributed is True
    conn.network.add_interface_to_router(router, subnet=subnet.id)
    port = conn.network.create_port(
        network_id=net.id, binding_host_id="compute-1", device_owner="compute:nova", name="vm1"
    )
    assert port.binding_host_id == "compute-1"
    assert {ip["subnet_id"] for ip in port.fixed_ips} == {subnet.id, v6.id}
    router = conn.network.update_router(router, external_gateway_info={"network_id": ext.id})
    assert router.external_gateway_info["network_id"] == ext.id
    fip = conn.network.create_ip(floating_network_id=ext.id)
    fip = conn.network.update_ip(fip, port_id=port.id)
    assert fip.port_id == port.id and fip.router_id == router.id
    fip = conn.network.update_ip(fip, port_id=None)
    assert fip.port_id is None
    conn.network.delete_ip(fip)
    assert conn.network.find_network("blue").id == net.id
    assert conn.network.find_router("r1").id == router.id
    assert [p.name for p in conn.network.ports(binding_host_id="compute-1")] == ["vm1"]
    assert {e.alias for e in conn.network.extensions()} >= {
        "router",
        "dvr",
        "external-net",
        "extraroute",
        "binding",
        "agent",
        "l3_agent_scheduler",
        "allowed-address-pairs",
    }


def test_sdk_follows_pagination_links(conn):
    created = {conn.network.create_network(name=f"n{i}").id for i in range(7)}
    seen = [n.id for n in conn.network.networks(limit=2)]
    assert len(seen) == 7 and set(seen) == created


def test_sdk_sees_neutron_errors(conn):
    net = conn.network.create_network(name="x")
    with pytest.raises(exceptions.BadRequestException) as bad:
        conn.network.create_subnet(network_id=net.id, cidr="198.51.100.0/33", ip_version=4)
    assert "is not in a CIDR format" in str(bad.value)
    with pytest.raises(exceptions.ResourceNotFound):
        conn.network.get_network("00000000-0000-4000-8000-000000000000")
    conn.network.create_subnet(network_id=net.id, cidr="192.0.2.0/24", ip_version=4)
    conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "192.0.2.9"}])
    with pytest.raises(exceptions.ConflictException) as conflict:
        conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "192.0.2.9"}])
    assert "already allocated" in str(conflict.value)
    with pytest.raises(exceptions.ConflictException):
        conn.network.delete_network(net)


def test_sdk_agents(conn, live_server):
    import httpx

    httpx.post(
        f"{live_server.url}/dvr/v1/agents",
        json={"host": "net-1", "agent_mode": "dvr_snat", "tunnel_ip": "192.0.2.21"},
    )
    ext = conn.network.create_network(name="ext", is_router_external=True)
    conn.network.create_subnet(network_id=ext.id, cidr="203.0.113.0/24", ip_version=4)
    router = conn.network.create_router(
        name="r", is_distributed=True, external_gateway_info={"network_id": ext.id}
    )
    agents = list(conn.network.routers_hosting_l3_agents(router))
    assert [(a.host, a.agent_type) for a in agents] == [("net-1", "L3 agent")]
    assert {a.agent_type for a in conn.network.agents()} == {"L3 agent", "Open vSwitch agent"}
    routers = list(conn.network.agent_hosted_routers(agents[0]))
    assert [r.id for r in routers] == [router.id]


def test_sdk_tags_zones_providers_and_ip_availability(conn):
    net = conn.network.create_network(name="sdk-avail")
    conn.network.add_tags(net, ["a", "b"])
    conn.network.add_tags(net, ["b", "c"])
    assert sorted(conn.network.get_network(net.id).tags) == ["a", "b", "c"]
    assert net.id in [a.network_id for a in conn.network.network_ip_availabilities()]
    assert conn.network.get_network_ip_availability(net.id).network_name == "sdk-avail"
    assert {p.name for p in conn.network.service_providers()} == {"single_node", "dvr"}
    for zone in conn.network.availability_zones():
        assert (zone.resource, zone.state) == ("router", zone.state)
    conn.network.delete_network(net.id)
