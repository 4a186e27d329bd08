"""Neighbor entries through the Linux driver's own rtnetlink requests, on a real kernel:
what ``ip neigh`` shows after a replace and a delete, IPv4 and IPv6, and the refusals."""

from __future__ import annotations

import json

import pytest

from dvr.agent.desired.state import Neighbor
from dvr.agent.drivers.base import DriverError
from dvr.agent.drivers.linux import LinuxConfig, LinuxDriver
from dvr.agent.reconcile.commands import DeleteNeighbor, ReplaceNeighbor
from dvr.lab.hostenv import HostEnv


def neighbors(host: HostEnv, device: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    shown = json.loads(host.run(["ip", "-j", "neigh", "show", "dev", device]).stdout or "[]")
    return {n["dst"]: (n.get("lladdr", ""), tuple(n.get("state", ()))) for n in shown}


def test_neighbors_are_replaced_and_deleted_as_ip_neigh_shows_them(host: HostEnv):
    host.run(["ip", "link", "add", "dvn0", "type", "veth", "peer", "name", "dvn1"])
    host.run(["ip", "link", "set", "dvn0", "up"])
    driver = LinuxDriver(LinuxConfig(host.netns_path.parent))
    ns = host.netns_path.name
    for ip in ("192.0.2.7", "2001:db8::7"):
        driver.apply(ReplaceNeighbor(ns, Neighbor("dvn0", ip, "fa:16:3e:00:00:07")))
    assert neighbors(host, "dvn0") == {
        "192.0.2.7": ("fa:16:3e:00:00:07", ("PERMANENT",)),
        "2001:db8::7": ("fa:16:3e:00:00:07", ("PERMANENT",))}
    driver.apply(ReplaceNeighbor(ns, Neighbor("dvn0", "192.0.2.7", "fa:16:3e:00:00:08")))
    assert neighbors(host, "dvn0")["192.0.2.7"] == ("fa:16:3e:00:00:08", ("PERMANENT",))
    driver.apply(DeleteNeighbor(ns, "dvn0", "192.0.2.7"))
    driver.apply(DeleteNeighbor(ns, "dvn0", "192.0.2.7"))  # already gone: nothing to do
    driver.apply(DeleteNeighbor(ns, "nosuch0", "192.0.2.7"))  # no device: nothing to do
    assert set(neighbors(host, "dvn0")) == {"2001:db8::7"}


def test_a_neighbor_on_a_missing_device_or_namespace_is_refused_by_name(host: HostEnv):
    driver = LinuxDriver(LinuxConfig(host.netns_path.parent))
    ns = host.netns_path.name
    with pytest.raises(DriverError, match="Cannot find device 'nosuch0'"):
        driver.apply(ReplaceNeighbor(ns, Neighbor("nosuch0", "192.0.2.7", "fa:16:3e:00:00:07")))
    with pytest.raises(DriverError, match="no such file"):
        driver.apply(ReplaceNeighbor("qrouter-nosuch", Neighbor("dvn2", "192.0.2.7",
                                                                "fa:16:3e:00:00:07")))
    host.run(["ip", "link", "add", "dvn2", "type", "veth", "peer", "name", "dvn3"])
    host.run(["sysctl", "-qw", "net.ipv6.conf.dvn2.disable_ipv6=1"])
    with pytest.raises(DriverError, match="netlink error"):  # the kernel's own refusal
        driver.apply(ReplaceNeighbor(ns, Neighbor("dvn2", "2001:db8::7", "fa:16:3e:00:00:07")))
