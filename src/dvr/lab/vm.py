"""Lab VMs: a network namespace with one NIC, plugged into br-int like a hypervisor would.

The lab plays Nova's part: it creates the port through the API, then plugs the VM's NIC
into br-int as a port carrying ``external_ids:iface-id=<port id>`` (and ``attached-mac``);
the agent finds it by that id and programs it.  The NIC is made as ``plumbing`` says
(``VmPlumbing``, see ``dvr.lab.plumbing``): a ``type=tap`` port of br-int whose tap
device is moved into the VM's namespace and renamed ``eth0`` (the default), or a veth pair
whose bridge end is a ``system`` port of br-int and whose other end is the VM's ``eth0``.

The OVS port is named ``tap_name(port_id)`` either way.  These functions only compute the
commands (argv lists, to run inside the lab host); nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# re-exported: the lab's one plumbing choice, for VMs and uplinks alike
from dvr.lab.plumbing import DEFAULT_PLUMBING as DEFAULT_PLUMBING
from dvr.lab.plumbing import DEVICE_QUEUE
from dvr.lab.plumbing import Plumbing as VmPlumbing

VM_NAMESPACE_PREFIX = "vm-"
TAP_PREFIX = "tap"
VM_NIC = "eth0"  # the NIC's name inside the VM


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
    # the lab passes its own choice (DEFAULT_PLUMBING unless told); code that plugs VMs
    # into hosts it built itself (the integration tests) keeps the veth it was written for
    plumbing: VmPlumbing = VmPlumbing.VETH

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


def _port_args(vm: VmPlug, *interface: str) -> list[str]:
    """``ovs-vsctl`` arguments adding the VM's port to br-int with the ids the agent reads."""
    return ["--may-exist", "add-port", vm.bridge, vm.tap, "--", "set", "interface", vm.tap,
            *interface, f"external_ids:iface-id={vm.port_id}",
            f"external_ids:attached-mac={vm.mac_address}", "external_ids:iface-status=active",
            f"external_ids:vm-id={vm.name}"]


def _nic_commands(vm: VmPlug, vsctl: list[str]) -> list[list[str]]:
    """Make the NIC and plug it; afterwards device ``nic_device(vm)`` is in the VM's
    namespace (not yet renamed)."""
    if vm.plumbing is VmPlumbing.TAP:
        # ovs-vsctl returns once ovs-vswitchd has created the tap: then it can be moved
        return [[*vsctl, *_port_args(vm, "type=tap")],
                ["ip", "link", "set", vm.tap, "netns", vm.namespace]]
    peer = nic_device(vm)
    return [
        ["ip", "link", "add", vm.tap, "mtu", str(vm.mtu), "type", "veth",
         "peer", "name", peer, "mtu", str(vm.mtu)],
        ["ip", "link", "set", peer, "netns", vm.namespace],
        ["ip", "link", "set", vm.tap, "up"],
        [*vsctl, *_port_args(vm)],
    ]


def nic_device(vm: VmPlug) -> str:
    """The NIC's name as it enters the VM's namespace: the tap itself, or the veth's peer."""
    return vm.tap if vm.plumbing is VmPlumbing.TAP else f"v{vm.port_id[:11]}"


def plug_commands(vm: VmPlug) -> list[list[str]]:
    """Create the VM namespace, its NIC ``eth0`` (address, MTU, up, default route) and plug
    it into br-int."""
    prefix = ipaddress.ip_network(vm.cidr).prefixlen
    in_vm = ["ip", "netns", "exec", vm.namespace]
    vsctl = ["ovs-vsctl", f"--db={vm.ovsdb}"]
    commands = [
        ["ip", "netns", "add", vm.namespace],
        [*in_vm, "ip", "link", "set", "lo", "up"],
        [*vsctl, "--may-exist", "add-br", vm.bridge, "--", "set", "bridge", vm.bridge,
         f"datapath_type={vm.datapath_type}"],
        *_nic_commands(vm, vsctl),
        [*in_vm, "ip", "link", "set", nic_device(vm), "name", VM_NIC],
        [*in_vm, "ip", "link", "set", VM_NIC, "address", vm.mac_address, "mtu", str(vm.mtu),
         "txqueuelen", str(DEVICE_QUEUE), "up"],
        [*in_vm, "ip", "addr", "add", f"{vm.ip_address}/{prefix}", "dev", VM_NIC],
        # checksums must be computed in the VM: OVS netdev does not fill them in
        [*in_vm, "ethtool", "-K", VM_NIC, "tx", "off"],
    ]
    if vm.gateway_ip:
        commands.append([*in_vm, "ip", "route", "add", "default", "via", vm.gateway_ip])
    return commands


def unplug_commands(vm_name: str, port_id: str, ovsdb: str,
                    bridge: str = "br-int") -> list[list[str]]:
    """Remove a VM's port from br-int, its NIC and namespace (each step may be absent).

    The same for both plumbings: removing a tap port makes ovs-vswitchd close the tap,
    which deletes it wherever it is; a veth goes with its bridge end."""
    tap = tap_name(port_id)
    return [
        ["ovs-vsctl", f"--db={ovsdb}", "--if-exists", "del-port", bridge, tap],
        ["ip", "link", "del", tap],
        ["ip", "netns", "del", vm_namespace(vm_name)],
    ]
