"""North/south on one real host (OVS + namespaces, real drivers, no server): the agent's
desired state for a distributed router with a gateway on 203.0.113.0/24 builds the snat-
and fip- namespaces and br-ex's flows, and real packets reach an outside namespace on the
external segment: through SNAT from the gateway IP, through the floating IP from it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from dataplane_support import assert_nothing_left

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.state import DesiredState
from dvr.lab.fabric import Fabric
from dvr.lab.hostenv import HostEnv, delete_netns
from dvr.lab.inhost import plan_in_host, reconcile_in_host
from dvr.lab.vm import VmPlug, plug_commands, tap_name, vm_namespace
from dvr.model.hostview import (
    OWNER_FLOATINGIP_AGENT_GATEWAY,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_SNAT,
    ArpEntry,
    FixedIp,
    FloatingIpView,
    GatewayView,
    HostView,
    NetworkView,
    PortView,
    RouterInterfaceView,
    RouterView,
    SnatPortView,
    SubnetView,
)

HOST = "ns-host"
BLUE, EXT = "net-blue-000000000001", "net-ext-0000000000009"
BLUE_SUBNET, EXT_SUBNET = "sub-blue-000000000001", "sub-ext-0000000000009"
ROUTER = "rtr-00000000-0000-0000-0000-000000000001"
VM_PORT, VM_MAC, VM_IP = "a1000000-0000-0000-0000-000000000001", "fa:16:3e:10:00:01", "192.0.2.10"
GATEWAY_IP, FIP, FG_IP, OUTSIDE = "203.0.113.10", "203.0.113.50", "203.0.113.20", "203.0.113.1"
SNAT_IP = "192.0.2.250"
CONFIG = DesiredConfig(agent_mode="dvr_snat", bridge_mappings=(("public", "br-ex"),))


def host_view(with_fip: bool) -> HostView:
    blue_subnet = SubnetView(BLUE_SUBNET, BLUE, "192.0.2.0/24", "192.0.2.1", 4)
    ext_subnet = SubnetView(EXT_SUBNET, EXT, "203.0.113.0/24", OUTSIDE, 4)
    vm = PortView(VM_PORT, BLUE, VM_MAC, (FixedIp(BLUE_SUBNET, VM_IP),), "compute:nova", "vm",
                  HOST)
    snat = PortView("b2000000-0000-0000-0000-000000000002", BLUE, "fa:16:3e:10:00:fa",
                    (FixedIp(BLUE_SUBNET, SNAT_IP),), OWNER_ROUTER_SNAT, ROUTER, HOST)
    gateway = PortView("c3000000-0000-0000-0000-000000000003", EXT, "fa:16:3e:20:00:0a",
                       (FixedIp(EXT_SUBNET, GATEWAY_IP),), OWNER_ROUTER_GATEWAY, ROUTER, HOST)
    fg = PortView("d4000000-0000-0000-0000-000000000004", EXT, "fa:16:3e:20:00:14",
                  (FixedIp(EXT_SUBNET, FG_IP),), OWNER_FLOATINGIP_AGENT_GATEWAY, HOST, HOST)
    interface = RouterInterfaceView("e5000000-0000-0000-0000-000000000005", BLUE_SUBNET, BLUE,
                                    "fa:16:3e:10:00:01"[:-2] + "fe", "192.0.2.1",
                                    "192.0.2.0/24", 1450)
    router = RouterView(
        id=ROUTER, name="r", distributed=True, ha=False, admin_state_up=True,
        interfaces=(interface,),
        arp_entries=(ArpEntry(BLUE_SUBNET, VM_IP, VM_MAC),
                     ArpEntry(BLUE_SUBNET, SNAT_IP, snat.mac_address)),
        routes=(),
        gateway=GatewayView(gateway.id, EXT, gateway.mac_address, gateway.fixed_ips,
                            (ext_subnet,), True),
        snat_host=HOST,
        snat_ports=(SnatPortView(snat.id, BLUE_SUBNET, BLUE, snat.mac_address, SNAT_IP,
                                 "192.0.2.0/24", 1450),),
        floating_ips=(FloatingIpView("fip-1", FIP, EXT, VM_IP, VM_PORT, HOST),) if with_fip
        else (),
    )
    ports = [vm, snat, gateway] + ([fg] if with_fip else [])
    return HostView(
        host=HOST, revision=1, agent_mode="dvr_snat", host_mac="fa:16:3f:00:00:01",
        tunnel_ip="198.18.0.11", ports=tuple(sorted(ports, key=lambda p: p.id)),
        networks=(
            NetworkView(BLUE, "blue", "vxlan", 101, 1450, False, None, (blue_subnet,), ()),
            NetworkView(EXT, "public", "flat", None, 1500, True, "public", (ext_subnet,), ()),
        ),
        routers=(router,), peer_host_macs=(),
        fip_agent_gateways=(fg,) if with_fip else (),
    )


def desired(with_fip: bool) -> DesiredState:
    return compute_desired_state(host_view(with_fip),
                                 HostInputs(plugged={VM_PORT: tap_name(VM_PORT)}), CONFIG)


class ExternalHost:
    def __init__(self, host: HostEnv, fabric: Fabric, outside: str):
        self.host, self.fabric, self.outside = host, fabric, outside

    def apply(self, state: DesiredState) -> None:
        result = reconcile_in_host(self.host, state)
        assert not result.failures, result.failures
        assert len(plan_in_host(self.host, state)) == 0  # converged: nothing left to do

    def in_vm(self, argv: list[str], check: bool = False) -> subprocess.CompletedProcess:
        return self.host.run(["ip", "netns", "exec", vm_namespace("vm"), *argv], check=check,
                             timeout=30)

    def in_outside(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.outside, *argv], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ping_from_outside(self, ip: str) -> bool:
        return subprocess.run(["ip", "netns", "exec", self.outside, "ping", "-c", "3", "-W",
                               "1", "-i", "0.2", ip], capture_output=True).returncode == 0

    def source_seen_outside(self) -> str:
        """Ping the outside host from the VM while capturing there: the source it sees."""
        for _ in range(20):  # first until it answers at all (ARP on a fresh segment)
            if self.in_vm(["ping", "-c", "1", "-W", "1", OUTSIDE]).returncode == 0:
                break
        capture = self.in_outside(["timeout", "10", "tcpdump", "-l", "-n", "-c", "1", "-i",
                                   "eth0", "icmp and icmp[icmptype] == icmp-echo"])
        try:
            for _ in range(8):
                time.sleep(0.5)  # tcpdump attaches
                self.in_vm(["ping", "-c", "1", "-W", "1", OUTSIDE])
                if capture.poll() is not None:
                    break
            out, err = capture.communicate(timeout=15)
        finally:
            if capture.poll() is None:
                capture.kill()
        return out.split(" > ")[0].split()[-1] if " > " in out else f"{out} {err}"


@pytest.fixture
def external_host(unique_names, workroot: Path) -> Iterator[ExternalHost]:
    prefix = next(unique_names)
    workdir = workroot / prefix.rsplit("-", 1)[1]
    host = HostEnv(f"{prefix}-h", workdir / "h")
    fabric = Fabric(f"{prefix}-fab", workdir / "fab")
    outside = f"{prefix}-out"
    try:
        fabric.start()
        host.start()
        fabric.attach(host, "198.18.0.11")
        fabric.attach_external(host, 0)
        fabric.add_outside_host(outside, f"{OUTSIDE}/24")
        plug = VmPlug(name="vm", port_id=VM_PORT, mac_address=VM_MAC, ip_address=VM_IP,
                      cidr="192.0.2.0/24", gateway_ip="192.0.2.1", mtu=1450, ovsdb=host.ovsdb)
        for argv in plug_commands(plug):
            host.run(argv)
        yield ExternalHost(host, fabric, outside)
    finally:
        delete_netns(outside)
        fabric.stop()
        host.stop()
        assert_nothing_left(prefix, workdir)


def test_snat_then_floating_ip_with_real_packets(external_host: ExternalHost):
    lab = external_host
    lab.apply(desired(with_fip=False))
    assert f"snat-{ROUTER}" in lab.host.namespaces()
    assert lab.source_seen_outside() == GATEWAY_IP  # through the snat- namespace

    lab.apply(desired(with_fip=True))
    assert f"fip-{EXT}" in lab.host.namespaces()
    assert lab.source_seen_outside() == FIP  # through rfp-/fpr- and fg-
    assert lab.ping_from_outside(FIP)  # proxy ARP on fg-, DNAT in qrouter-

    rules = lab.host.run(["ip", "netns", "exec", f"qrouter-{ROUTER}", "nft", "-j", "list",
                          "table", "ip", "dvr"]).stdout
    handles = [r["rule"]["handle"] for r in json.loads(rules)["nftables"] if "rule" in r]
    lab.apply(desired(with_fip=True))  # again: the table is not replaced (same handles)
    again = lab.host.run(["ip", "netns", "exec", f"qrouter-{ROUTER}", "nft", "-j", "list",
                          "table", "ip", "dvr"]).stdout
    assert [r["rule"]["handle"] for r in json.loads(again)["nftables"] if "rule" in r] == handles

    lab.apply(desired(with_fip=False))  # disassociated: back to SNAT, fip- gone
    assert f"fip-{EXT}" not in lab.host.namespaces()
    assert not lab.ping_from_outside(FIP)
    assert lab.source_seen_outside() == GATEWAY_IP


def test_disabled_snat_routes_without_translating(external_host: ExternalHost):
    lab = external_host
    view = host_view(with_fip=False)
    router = view.routers[0]
    view = replace(view, routers=(replace(router, gateway=replace(router.gateway,
                                                                  enable_snat=False)),))
    lab.apply(compute_desired_state(view, HostInputs(plugged={VM_PORT: tap_name(VM_PORT)}),
                                    CONFIG))
    assert lab.source_seen_outside() == VM_IP  # routed by snat-, not translated
