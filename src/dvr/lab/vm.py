"""Lab VMs: a network namespace with one NIC, plugged into br-int like a hypervisor would.

The lab plays Nova's part: it creates the port through the API, then plugs a veth whose
bridge end carries ``external_ids:iface-id=<port id>`` (and ``attached-mac``) into br-int;
the agent finds it by that id and programs it.  These functions only compute the commands
(argv lists, to run inside the lab host); nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

VM_NAMESPACE_PREFIX = "vm-"
TAP_PREFIX = "tap"


@dataclass(frozen=True)
class VmPlug:
    name: str  # lab VM name, e.g. blue-1
    port_id: str
    mac_address: str
    ip_address: str
    cidr: str  # the subnet's CIDR
    gateway_ip: str | None
    mtu: int
    ovsdb: str  # e.g. unix:/var/lib/dvr-lab/dvr/compute-1/db.sock
    bridge: str = "br-int"
    datapath_type: str = "netdev"

    @property
    def namespace(self) -> str:
        return vm_namespace(self.name)

    @property
    def tap(self) -> str:
        return tap_name(self.port_id)


def vm_namespace(vm_name: str) -> str:
    return f"{VM_NAMESPACE_PREFIX}{vm_name}"


def tap_name(port_id: str) -> str:
    return f"{TAP_PREFIX}{port_id[:11]}"


def plug_commands(vm: VmPlug) -> list[list[str]]:
    """Create the VM namespace, its NIC, and plug the bridge end into br-int."""
    ns = vm.namespace
    prefix = ipaddress.ip_network(vm.cidr).prefixlen
    in_vm = ["ip", "netns", "exec", ns]
    peer = f"v{vm.port_id[:11]}"  # temporary name of the VM end before it is renamed eth0
    vsctl = ["ovs-vsctl", f"--db={vm.ovsdb}"]
    commands = [
        ["ip", "netns", "add", ns],
        [*in_vm, "ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", vm.tap, "mtu", str(vm.mtu), "type", "veth",
         "peer", "name", peer, "mtu", str(vm.mtu)],
        ["ip", "link", "set", peer, "netns", ns],
        [*in_vm, "ip", "link", "set", peer, "name", "eth0"],
        [*in_vm, "ip", "link", "set", "eth0", "address", vm.mac_address, "up"],
        [*in_vm, "ip", "addr", "add", f"{vm.ip_address}/{prefix}", "dev", "eth0"],
        # checksums must be computed in the VM: OVS netdev does not fill them in
        [*in_vm, "ethtool", "-K", "eth0", "tx", "off"],
        ["ip", "link", "set", vm.tap, "up"],
        [*vsctl, "--may-exist", "add-br", vm.bridge, "--", "set", "bridge", vm.bridge,
         f"datapath_type={vm.datapath_type}"],
        [*vsctl, "--may-exist", "add-port", vm.bridge, vm.tap, "--", "set", "interface",
         vm.tap, f"external_ids:iface-id={vm.port_id}",
         f"external_ids:attached-mac={vm.mac_address}", "external_ids:iface-status=active",
         f"external_ids:vm-id={vm.name}"],
    ]
    if vm.gateway_ip:
        commands.append([*in_vm, "ip", "route", "add", "default", "via", vm.gateway_ip])
    return commands


def unplug_commands(vm_name: str, port_id: str, ovsdb: str,
                    bridge: str = "br-int") -> list[list[str]]:
    """Remove a VM's port from br-int, its NIC and namespace (each step may be absent)."""
    tap = tap_name(port_id)
    return [
        ["ovs-vsctl", f"--db={ovsdb}", "--if-exists", "del-port", bridge, tap],
        ["ip", "link", "del", tap],
        ["ip", "netns", "del", vm_namespace(vm_name)],
    ]
