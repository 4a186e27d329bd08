"""The lab's external side: the flat `public` network, br-ex on every host, the outside host.

North/south routing (SNAT, floating IPs) is the next capability; these tests show that the
wiring it will use is real: frames from a port on any host's br-ex reach the outside host
across the external segment.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from dvr.lab.topology import default_topology

pytestmark = [pytest.mark.e2e, pytest.mark.root]

OUTSIDE_IP = "203.0.113.1"


def test_outside_host_is_the_external_gateway(lab3):
    record = lab3.record
    assert record.outside_cidr == f"{OUTSIDE_IP}/24"
    assert lab3.lab.resolve_ip("outside") == OUTSIDE_IP
    out = lab3.run("outside", ["ip", "-j", "address", "show", "dev", "eth0"]).stdout
    [link] = json.loads(out)
    assert link["operstate"] in ("UP", "UNKNOWN")
    assert [(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet"] == [
        (OUTSIDE_IP, 24)
    ]
    with lab3.client() as client:
        [public] = client.list("networks", name="public")
        [subnet] = client.list("subnets", network_id=public["id"])
    assert public["router:external"] is True
    assert (public["provider:network_type"], public["provider:physical_network"]) == (
        "flat",
        "public",
    )
    assert subnet["gateway_ip"] == OUTSIDE_IP


@pytest.mark.parametrize("host", ["compute-1", "compute-2", "compute-3", "network-1"])
def test_every_host_has_br_ex_on_the_external_segment(lab3, host):
    ports = lab3.run(host, ["ovs-vsctl", "list-ports", "br-ex"]).stdout.split()
    assert ports == ["ext-uplink", "phy-br-ex"]  # the uplink, and the agent's patch to br-int
    datapath = lab3.run(host, ["ovs-vsctl", "get", "bridge", "br-ex", "datapath_type"]).stdout
    assert datapath.strip() == "netdev"


@contextlib.contextmanager
def probe_on_br_ex(lab3, host: str, address: str):
    """A throw-away namespace inside ``host`` with an OVS internal port of br-ex."""
    netns, port = "ext-probe", "ext-probe0"
    steps = [
        ["ip", "netns", "add", netns],
        ["ovs-vsctl", "add-port", "br-ex", port, "--", "set", "interface", port, "type=internal"],
        ["ip", "link", "set", port, "netns", netns],
        ["ip", "netns", "exec", netns, "ip", "address", "add", f"{address}/24", "dev", port],
        ["ip", "netns", "exec", netns, "ip", "link", "set", port, "up"],
    ]
    try:
        for argv in steps:
            lab3.run(host, argv)
        yield netns
    finally:
        lab3.run(host, ["ovs-vsctl", "--if-exists", "del-port", "br-ex", port], check=False)
        lab3.run(host, ["ip", "netns", "delete", netns], check=False)


# addresses the server never allocates (the lab's pool stops short of them)
PROBES = default_topology().external_network.outside_addresses()


@pytest.mark.parametrize(
    ("host", "address"), [("network-1", PROBES[-2]), ("compute-1", PROBES[-1])]
)
def test_frames_from_br_ex_reach_the_outside_host(lab3, host, address):
    with probe_on_br_ex(lab3, host, address) as netns:
        ping = lab3.run(
            host,
            ["ip", "netns", "exec", netns, "ping", "-c", "3", "-W", "1", "-i", "0.2", OUTSIDE_IP],
            check=False,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        neighbours = lab3.run("outside", ["ip", "-j", "neigh", "show", address]).stdout
        assert json.loads(neighbours), "the outside host learnt the probe's address by ARP"
    assert "ext-probe" not in lab3.namespaces(host)
    assert lab3.run(host, ["ovs-vsctl", "list-ports", "br-ex"]).stdout.split() == [
        "ext-uplink", "phy-br-ex"]
