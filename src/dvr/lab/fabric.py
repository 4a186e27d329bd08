"""The underlay: an L2 fabric joining lab hosts (docs/design.md §3).

A Linux bridge in its own network namespace (``Fabric.name``), one uplink per host: a port
``uplink`` of the host's ``br-phy`` (``netdev``, normal switching) whose other end is a port
of the fabric bridge; br-phy's internal interface carries the host's tunnel IP (from
198.18.0.0/15) at MTU 1500.  Userspace VXLAN needs exactly that: the tunnel IP on an OVS
bridge, or ``ofproto/trace`` reports "native tunnel routing failed".

The uplink is made as the fabric's ``plumbing`` says (``dvr.lab.plumbing``, the lab's
choice for its VMs too): ``tap``, an OVS ``type=tap`` port whose tap device ovs-vswitchd
creates in the host and the fabric moves into its namespace, renames to the fabric port's
name and enslaves to the bridge (OVS keeps reading and writing it through its descriptor,
not through AF_PACKET); or ``veth``, a veth pair whose host end is a ``system`` port of
br-phy.  The OVS port is ``uplink`` either way.

TX checksum offload is switched off on the kernel ends whose peer is an OVS netdev port
(the fabric ends), as §3 requires for anything but ping to work.

The same namespace holds a second bridge, the *external* segment (the provider network a
real cloud's external network lives on): each host joins it through an uplink made the
same way, port ``ext-uplink`` of the host's ``br-ex`` (the external bridge that
north/south plumbing attaches to), and the *outside* host (a plain namespace, the upstream
router of the external subnet) sits on it with the external subnet's gateway address.

The fabric records its name in ``workdir/fabric.json``; ``cleanup_fabric`` removes the
namespace (which takes the bridges and every veth with it).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dvr.lab.hostenv import HostEnv, HostEnvError, delete_netns, netns_exists
from dvr.lab.plumbing import DEVICE_QUEUE, Plumbing

UNDERLAY = ipaddress.ip_network("198.18.0.0/15")
FABRIC_BRIDGE = "fabric"
PHYSICAL_BRIDGE = "br-phy"
HOST_UPLINK = "uplink"  # the host end of the fabric veth (inside the host namespace)
EXTERNAL_SEGMENT = "external"  # the external segment's bridge (fabric namespace)
EXTERNAL_BRIDGE = "br-ex"  # the host's OVS bridge on the external segment
HOST_EXTERNAL_UPLINK = "ext-uplink"  # its port: the host end of the external veth
OUTSIDE_LINK = "eth0"  # the outside host's link to the external segment
MANIFEST = "fabric.json"


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), text=True, capture_output=True, timeout=30)
    if check and result.returncode != 0:
        raise HostEnvError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Attachment:
    host: str  # the host's namespace name
    tunnel_ip: str
    prefixlen: int
    fabric_port: str  # the uplink's device on the fabric bridge
    uplink: str = HOST_UPLINK  # its port of br-phy
    bridge: str = PHYSICAL_BRIDGE

    @property
    def cidr(self) -> str:
        return f"{self.tunnel_ip}/{self.prefixlen}"


class Fabric:
    def __init__(self, name: str, workdir: str | Path, *, mtu: int = 1500,
                 prefixlen: int = UNDERLAY.prefixlen, plumbing: Plumbing = Plumbing.VETH):
        self.name = name
        self.workdir = Path(workdir).absolute()
        self.mtu = mtu
        self.prefixlen = prefixlen
        # the labs pass their own choice; hosts built by hand (the integration tests) keep
        # the veth they were written for
        self.plumbing = plumbing
        self.attachments: dict[str, Attachment] = {}

    def command(self, argv: Sequence[str]) -> list[str]:
        """argv run inside the fabric namespace (e.g. ``tcpdump`` on a host's port)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def start(self) -> None:
        if netns_exists(self.name):
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / MANIFEST).write_text(json.dumps({"name": self.name}))
        _run(["ip", "netns", "add", self.name])
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", FABRIC_BRIDGE, "mtu", str(self.mtu), "type", "bridge"],
            ["ip", "link", "set", FABRIC_BRIDGE, "up"],
            ["ip", "link", "add", EXTERNAL_SEGMENT, "mtu", str(self.mtu), "type", "bridge"],
            ["ip", "link", "set", EXTERNAL_SEGMENT, "up"],
        ):
            _run(self.command(argv))

    def stop(self) -> None:
        cleanup_fabric(self.name, self.workdir)
        self.attachments.clear()

    def _plug(self, fabric_port: str, segment: str, peer: str, peer_netns: str) -> None:
        """A veth from bridge ``segment`` (port ``fabric_port``) to device ``peer`` in
        namespace ``peer_netns``."""
        _run(["ip", "link", "add", fabric_port, "netns", self.name, "mtu", str(self.mtu),
              "type", "veth", "peer", "name", peer, "netns", peer_netns,
              "mtu", str(self.mtu)])
        self._enslave(fabric_port, segment)

    def _enslave(self, fabric_port: str, segment: str) -> None:
        """Device ``fabric_port`` (in the fabric namespace) up on bridge ``segment``, TX
        offload off (its peer is an OVS netdev port, or may be)."""
        for argv in (
            ["ip", "link", "set", fabric_port, "mtu", str(self.mtu), "txqueuelen",
             str(DEVICE_QUEUE), "master", segment],
            ["ethtool", "-K", fabric_port, "tx", "off"],
            ["ip", "link", "set", fabric_port, "up"],
        ):
            _run(self.command(argv))

    def _uplink(self, host: HostEnv, bridge: str, uplink: str, fabric_port: str,
                segment: str) -> None:
        """``host``'s OVS ``bridge`` (netdev, standalone) with port ``uplink``, whose other
        end is ``fabric_port`` on bridge ``segment``, made as ``self.plumbing`` says."""
        host.vsctl("--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
                   "datapath_type=netdev", "fail_mode=standalone")
        if self.plumbing is Plumbing.TAP:
            # ovs-vsctl returns once ovs-vswitchd has created the tap: then it can be moved
            # (from the host's network namespace, by the fabric's name as the root mount
            # namespace knows it) and renamed there
            host.vsctl("--may-exist", "add-port", bridge, uplink,
                       "--", "set", "interface", uplink, "type=tap")
            _run(["ip", "netns", "exec", host.name, "ip", "link", "set", uplink,
                  "netns", self.name])
            _run(self.command(["ip", "link", "set", uplink, "name", fabric_port]))
            self._enslave(fabric_port, segment)
        else:
            self._plug(fabric_port, segment, uplink, host.name)
            host.vsctl("--may-exist", "add-port", bridge, uplink)
            host.run(["ip", "link", "set", uplink, "up"])
        host.run(["ip", "link", "set", bridge, "mtu", str(self.mtu), "up"])

    def attach(self, host: HostEnv, tunnel_ip: str, port: str | None = None) -> Attachment:
        """Join ``host`` to the fabric with ``tunnel_ip`` on its br-phy."""
        address = ipaddress.ip_address(tunnel_ip)
        if address not in UNDERLAY:
            raise ValueError(f"{tunnel_ip} is not in the underlay range {UNDERLAY}")
        fabric_port = port or f"f{len(self.attachments)}-{int(address) & 0xFFFF:04x}"
        attachment = Attachment(host.name, str(address), self.prefixlen, fabric_port)
        self._uplink(host, PHYSICAL_BRIDGE, HOST_UPLINK, fabric_port, FABRIC_BRIDGE)
        host.run(["ip", "address", "replace", attachment.cidr, "dev", PHYSICAL_BRIDGE])
        self.attachments[host.name] = attachment
        return attachment

    def attach_external(self, host: HostEnv, index: int) -> str:
        """Join ``host``'s ``br-ex`` to the external segment; returns the fabric-side port.

        br-ex is a plain switch (``standalone``) with no address: the host has no presence on
        the external network of its own; the agent's north/south plumbing attaches to it.
        """
        fabric_port = f"x{index}"
        self._uplink(host, EXTERNAL_BRIDGE, HOST_EXTERNAL_UPLINK, fabric_port,
                     EXTERNAL_SEGMENT)
        return fabric_port

    def add_outside_host(self, netns: str, cidr: str) -> None:
        """The outside host: namespace ``netns`` on the external segment with ``cidr``.

        Checksum offload is off on both ends: its frames reach OVS netdev ports (br-ex).
        """
        _run(["ip", "netns", "add", netns])
        self._plug("o-outside", EXTERNAL_SEGMENT, OUTSIDE_LINK, netns)
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ethtool", "-K", OUTSIDE_LINK, "tx", "off"],
            ["ip", "address", "add", cidr, "dev", OUTSIDE_LINK],
            ["ip", "link", "set", OUTSIDE_LINK, "up"],
        ):
            _run(["ip", "netns", "exec", netns, *argv])


def cleanup_fabric(name: str, workdir: str | Path) -> None:
    """Remove the fabric namespace ``name`` (bridge and veths go with it) and its file."""
    workdir = Path(workdir)
    delete_netns(name)
    (workdir / MANIFEST).unlink(missing_ok=True)
    try:
        workdir.rmdir()
    except OSError:
        pass
