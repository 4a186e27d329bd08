"""One new port's guest and its probe, the same for dvr (bench_port.py) and OVN
(bench_port_ovn.py): port -> first routed echo reply.

Before the clock starts, the "guest" is prepared the way a hypervisor would: namespace
``vm-bp<N>`` on the port's host with its NIC ``eth0`` (MAC/IP chosen by the benchmark, TX
checksum off, default route via the subnet's gateway).  The NIC is a veth whose host end
``bptap<N>`` stays on the host, to be plugged into br-int after t0 (one ``ovs-vsctl
add-port`` with ``external_ids:iface-id``): a veth can be made before the plug, a
``type=tap`` port cannot (ovs-vswitchd creates the tap when the port is added).

The probe: ``ping -D -i 0.015`` from a VM on the other host, routed, started just before
t0: one probe every 15 ms without waiting for the last, so a lost probe costs 15 ms, not a
timeout; it stops at the first echo reply, whose ``-D`` stamp is the measurement.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from benchlab import LineWatcher, VmRunner
from benchlib import percentile

WAIT = 10.0  # seconds to wait for each outcome
PROBE_HEAD_START = 0.05  # seconds between starting the probe and t0
FIRST_GUEST_ADDRESS = 200  # the guests' addresses: .200 + N of the subnet
PROBE_INTERVAL_S = 0.015


@dataclass(frozen=True)
class Guest:
    index: int
    mac: str
    ip: str
    prefixlen: int
    gateway_ip: str
    mtu: int

    @property
    def namespace(self) -> str:
        return f"vm-bp{self.index}"

    @property
    def device(self) -> str:
        """The veth's host end: the VIF plugged into br-int."""
        return f"bptap{self.index}"

    def prepare_argv(self) -> list[str]:
        """Make the namespace and its NIC (run on the port's host, before t0)."""
        ns, peer = self.namespace, f"bpv{self.index}"
        script = "; ".join([
            "set -e",
            f"ip netns add {ns}",
            f"ip -n {ns} link set lo up",
            f"ip link add {self.device} mtu {self.mtu} type veth peer name {peer} "
            f"mtu {self.mtu}",
            f"ip link set {peer} netns {ns}",
            f"ip -n {ns} link set {peer} name eth0",
            f"ip -n {ns} link set eth0 address {self.mac} up",
            f"ip -n {ns} addr add {self.ip}/{self.prefixlen} dev eth0",
            f"ip netns exec {ns} ethtool -K eth0 tx off >/dev/null",
            f"ip -n {ns} route add default via {self.gateway_ip}",
            f"ip link set {self.device} up",
        ])
        return ["sh", "-c", script]

    def plug_argv(self, ovsdb: str, iface_id: str) -> list[str]:
        """Plug the VIF into br-int as the port ``iface_id`` (after t0)."""
        return ["ovs-vsctl", f"--db={ovsdb}", "add-port", "br-int", self.device, "--",
                "set", "interface", self.device, f"external_ids:iface-id={iface_id}",
                f"external_ids:attached-mac={self.mac}", "external_ids:iface-status=active",
                f"external_ids:vm-id=bp{self.index}"]

    def remove_argvs(self, ovsdb: str) -> list[list[str]]:
        """Unplug and remove the guest (each step may find nothing to do)."""
        return [["ovs-vsctl", f"--db={ovsdb}", "--if-exists", "del-port", "br-int",
                 self.device],
                ["ip", "link", "del", self.device],
                ["ip", "netns", "del", self.namespace]]


def guest_mac(rng: random.Random) -> str:
    return f"fa:16:3e:b0:{rng.randrange(256):02x}:{rng.randrange(256):02x}"


def guest_ip(cidr: str, index: int) -> str:
    """The address of guest ``index`` (.200 + index): above every lab VM's address."""
    net = ipaddress.ip_network(cidr)
    address = net.network_address + FIRST_GUEST_ADDRESS + index
    if address not in net or address == net.broadcast_address:
        raise ValueError(f"guest {index} has no address in {cidr}")
    return str(address)


def probe_argv(ip: str) -> list[str]:
    return ["ping", "-D", "-n", "-c", "1", "-w", str(int(WAIT)), "-i", str(PROBE_INTERVAL_S),
            ip]


def start_probe(runner: VmRunner, source: str, ip: str) -> LineWatcher:
    """The probe running in VM ``source`` (stop it, or use it as a context manager)."""
    command, env = runner.vm_command(source, probe_argv(ip))
    return LineWatcher(command, env)


def is_reply(line: str) -> bool:
    return "bytes from" in line


def ms(at: float | None, since: float) -> float | None:
    return None if at is None else (at - since) * 1000


def first_reply(t0: float, t_plugged: float,
                reply: tuple[float, str] | None) -> dict[str, object]:
    """The first echo reply's time from t0 and from the plug, and its sequence number;
    ``reply`` is the probe's line (arrival, ``[epoch] 64 bytes from ...: icmp_seq=N ...``)
    or None (no reply)."""
    if reply is None:
        return {"c_first_reply_from_t0_ms": None, "c_first_reply_from_plug_ms": None,
                "first_reply_seq": None}
    line = reply[1]
    stamp = float(line.split("]", 1)[0].lstrip("["))
    return {"c_first_reply_from_t0_ms": ms(stamp, t0),
            "c_first_reply_from_plug_ms": ms(stamp, t_plugged),
            "first_reply_seq": line.split("icmp_seq=")[1].split()[0]}


def port_to_ping(runs: list[dict]) -> dict[str, float | int | None]:
    """(c) from t0 in seconds, nearest-rank p50/p95: the port's creation to its first
    routed echo reply; ``lost``: runs without a reply."""
    values = [r["c_first_reply_from_t0_ms"] / 1000 for r in runs
              if isinstance(r.get("c_first_reply_from_t0_ms"), float)]
    return {"port_to_ping_p50_s": percentile(values, 50),
            "port_to_ping_p95_s": percentile(values, 95), "n": len(values),
            "lost": len(runs) - len(values)}
