"""Issue 13's acceptance on the real lab: real agents, OVS userspace conntrack, real packets.

1. the default group: group-mates get in (blue-1 -> orange-1, routed cross-host, ICMP and
   TCP); a VM in another group does not;
2. stateful: a VM with only egress rules gets its replies, and no new inbound connection;
3. rule changes: an added rule opens a listener promptly (the issue's target: 1 s; the
   measured figure is printed) on the routed and switched path, same host and cross-host;
   removing it ends the established connections and new ones;
4. remote groups: a port joining the group gains access promptly, one leaving loses it;
5. anti-spoofing, seen by raw receivers in the targets: a forged source MAC, source IP,
   host (DVR) MAC or gratuitous ARP delivers nothing; allowed_address_pairs let exactly the
   listed pair through;
6. an agent restart (and kill -9) with groups in place loses no packet, changes no firewall
   flow and keeps established connections.

Every test makes its own VMs and groups and removes them, so each runs alone.  Latencies
are measured inside the VMs (``time.monotonic`` is one clock for every namespace) and
printed (``pytest -s``).
"""

from __future__ import annotations

import json
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack, contextmanager
from ipaddress import IPv4Address, ip_network

import pytest

from dvr.lab.security import find_group
from dvr.lab.topology import default_topology
from tests.e2e.conftest import (
    LabDriver,
    VmProgram,
    add_rule,
    port_groups,
    security_group,
    temporary_vm,
    vm_program,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]

# The target is 1 s for rule and membership changes; the figures are printed
# (``pytest -s``) and recorded in bench/RESULTS.md ("Security groups: change latency").
# Timings are not test assertions here (a loaded CI machine is not a benchmark): the tests
# assert that a change applies promptly, i.e. on its own watch event and not at a resync.
PROMPT_BOUND_S = 5.0
PORT = 8080  # neither demo-web (80) nor a Neutron default rule opens it
WEB_PORT = 80  # demo-web opens it from anywhere
PAIR_MAC = "fa:16:3e:e2:e0:01"
FORGED_MAC = "fa:16:3e:e2:e0:99"

# --- programs run in the VMs --------------------------------------------------------------------

ECHO_SERVER = """
import socket, sys, threading
def echo(conn):
    with conn:
        while data := conn.recv(256):
            conn.sendall(data)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", int(sys.argv[1])))
listener.listen(64)
print("ready", flush=True)
while True:
    threading.Thread(target=echo, args=(listener.accept()[0],), daemon=True).start()
"""

# Each stdin line "open S" / "closed S" starts a round of new connections (each with 0.1 s
# to connect and 0.5 s to echo a byte) until one is echoed / one fails, for at most S
# seconds; the round prints "open T" / "closed T" (T: when that attempt started, on the
# monotonic clock) or "timeout".
PROBE = """
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
def echoed():
    try:
        with socket.create_connection((host, port), timeout=0.1) as conn:
            conn.settimeout(0.5)
            conn.sendall(b"p")
            return conn.recv(1) == b"p"
    except OSError:
        return False
print("ready", flush=True)
for line in sys.stdin:
    wanted, seconds = line.split()
    deadline, result = time.monotonic() + float(seconds), "timeout"
    while time.monotonic() < deadline:
        started = time.monotonic()
        if echoed() == (wanted == "open"):
            result = f"{wanted} {started}"
            break
        time.sleep(max(0.0, started + 0.1 - time.monotonic()))
    print(result, flush=True)
"""

# One long-lived connection: every argv[3] seconds a byte, echoed within 0.3 s or not;
# prints "ok T" / "lost T" (T: when it was sent), for at most argv[4] seconds.
TICKER = """
import socket, sys, time
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
period, end = float(sys.argv[3]), time.monotonic() + float(sys.argv[4])
print("ready", flush=True)
while time.monotonic() < end:
    sent = time.monotonic()
    try:
        conn.sendall(b"t")
        conn.settimeout(0.3)
        ok = bool(conn.recv(64))
    except OSError:
        ok = False
    print(("ok" if ok else "lost"), sent, flush=True)
    time.sleep(max(0.0, sent + period - time.monotonic()))
"""

RAW_NIC = "next(name for _, name in socket.if_nameindex() if name != 'lo')"

# For argv[2] seconds, every frame the VM's NIC receives: the tag after argv[1] in it, or for
# ARP "arp <op> <sender MAC> <sender IP> <target IP>"; then the tags seen, as JSON.
RECEIVER = f"""
import json, socket, sys, time
nic = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
nic.bind(({RAW_NIC}, 0))
nic.settimeout(0.1)
marker, end, seen = sys.argv[1].encode(), time.monotonic() + float(sys.argv[2]), set()
print("ready", flush=True)
while time.monotonic() < end:
    try:
        frame, (*_, kind, _, _) = nic.recvfrom(4096)
    except TimeoutError:
        continue
    if kind == socket.PACKET_OUTGOING:
        continue
    if marker in frame:
        seen.add(frame.split(marker, 1)[1].split(b";", 1)[0].decode())
    elif frame[12:14] == bytes.fromhex("0806"):
        sha, spa, tpa = frame[22:28].hex(":"), socket.inet_ntoa(frame[28:32]), \\
            socket.inet_ntoa(frame[38:42])
        seen.add(f"arp {{frame[21]}} {{sha}} {{spa}} {{tpa}}")
print(json.dumps(sorted(seen)), flush=True)
"""

# Sends the frames given in hex, three times each, 50 ms apart.
SENDER = f"""
import socket, sys, time
nic = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
nic.bind(({RAW_NIC}, 0))
for _ in range(3):
    for frame in sys.argv[1:]:
        nic.send(bytes.fromhex(frame))
    time.sleep(0.05)
"""

# --- frames -------------------------------------------------------------------------------------


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str,
                    payload: bytes) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0xE2E, 1) + payload
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0,
                         IPv4Address(src_ip).packed, IPv4Address(dst_ip).packed)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + header + icmp


def arp_frame(op: int, src_mac: str, dst_mac: str, sender_ip: str, target_ip: str) -> bytes:
    """An ARP request (1) or reply (2) from ``src_mac`` (also its sender MAC)."""
    target_mac = "00:00:00:00:00:00" if op == 1 else dst_mac
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, _mac(src_mac),
                      IPv4Address(sender_ip).packed, _mac(target_mac),
                      IPv4Address(target_ip).packed)
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x06" + arp


def arp_tag(op: int, mac: str, sender_ip: str, target_ip: str) -> str:
    return f"arp {op} {mac} {sender_ip} {target_ip}"


# --- helpers ------------------------------------------------------------------------------------


def group_id(lab: LabDriver, name: str) -> str:
    with lab.client() as client:
        found = find_group(client, name)
    assert found is not None, f"no group {name!r}"
    return found


def rounds(probes: dict[str, VmProgram], wanted: str, seconds: float) -> dict[str, float | None]:
    """A round of every probe at once: when each first saw a new connection ``wanted``
    ("open": echoed, "closed": failed); None: not within ``seconds``."""
    for probe in probes.values():
        probe.send(f"{wanted} {seconds}")
    found = {}
    for source, probe in probes.items():
        line = probe.line(seconds + 5)
        assert line is not None, f"{source}: the probe did not answer: {probe.stop()}"
        found[source] = None if line == "timeout" else float(line.split()[1])
    return found


def opens_at(probe: VmProgram, seconds: float) -> float | None:
    return rounds({"probe": probe}, "open", seconds)["probe"]


def closes_at(probe: VmProgram, seconds: float) -> float | None:
    return rounds({"probe": probe}, "closed", seconds)["probe"]


def report(what: str, seconds: float) -> None:
    print(f"\n[sg-acceptance] {what}: {seconds * 1000:.0f} ms")


def ticks(ticker: VmProgram, until: float) -> list[tuple[str, float]]:
    """The ticker's lines ("ok"/"lost", when sent) up to the first sent after ``until``."""
    found = []
    while True:
        line = ticker.line(5)
        assert line is not None, f"the ticker stopped: {ticker.stop()}"
        verdict, sent = line.split()
        found.append((verdict, float(sent)))
        if float(sent) > until:
            return found


@contextmanager
def in_each(lab: LabDriver, targets: tuple[str, ...], script: str,
            *args: str) -> Iterator[dict[str, VmProgram]]:
    """``script`` running in each of ``targets`` for the length of a block."""
    with ExitStack() as stack:
        yield {t: stack.enter_context(vm_program(lab, t, script, *args)) for t in targets}


def probes(lab: LabDriver, sources: tuple[str, ...], target: str,
           port: int = PORT) -> ContextManager[dict[str, VmProgram]]:
    return in_each(lab, sources, PROBE, lab.lab.resolve_ip(target), str(port))


def pings(lab: LabDriver, source: str, target: str) -> bool:
    return lab.ping(source, target, count=2).returncode == 0


# --- 1. the default group -----------------------------------------------------------------------


def test_default_group_admits_group_mates_and_drops_another_group(lab3):
    lab = lab3
    default = group_id(lab, "default")
    # orange-1 in default only: demo-web would let ICMP in from anywhere
    with (port_groups(lab, "orange-1", [default]),
          security_group(lab, "e2e-other") as other,
          temporary_vm(lab, "other-1", "blue", "compute-1", groups=[other]),
          vm_program(lab, "orange-1", ECHO_SERVER, str(PORT)),
          probes(lab, ("blue-1", "other-1"), "orange-1") as probe):
        assert pings(lab, "blue-1", "orange-1"), "ICMP from a group-mate, routed cross-host"
        assert opens_at(probe["blue-1"], 5) is not None, "TCP from a group-mate"
        assert pings(lab, "other-1", "blue-1"), "other-1 sends (demo-web admits ICMP)"
        assert not pings(lab, "other-1", "orange-1"), "ICMP from another group"
        assert opens_at(probe["other-1"], 1.5) is None, "TCP from another group"
        lab.set_port_groups("orange-1", [default, group_id(lab, "demo-web")])
        lab.wait_for(lambda: pings(lab, "other-1", "orange-1"),
                     "demo-web to admit other-1's ICMP (the path itself works)", timeout=10)


# --- 2. stateful --------------------------------------------------------------------------------


def test_only_egress_rules_let_replies_in_and_no_new_inbound_connection(lab3):
    lab = lab3
    with security_group(lab, "e2e-egress") as egress_only:
        with lab.client() as client:
            rules = client.get("/v2.0/security-group-rules",
                               security_group_id=egress_only)["security_group_rules"]
        assert rules and {r["direction"] for r in rules} == {"egress"}
        # egress-1 on orange on compute-1, blue-2 on blue on compute-2: routed cross-host
        with (temporary_vm(lab, "egress-1", "orange", "compute-1", groups=[egress_only]),
              vm_program(lab, "blue-2", ECHO_SERVER, str(WEB_PORT)),
              vm_program(lab, "egress-1", ECHO_SERVER, str(WEB_PORT)),
              probes(lab, ("egress-1",), "blue-2", WEB_PORT) as outbound,
              probes(lab, ("blue-2",), "egress-1", WEB_PORT) as inbound):
            assert pings(lab, "egress-1", "blue-2"), "ICMP out, the replies back"
            assert opens_at(outbound["egress-1"], 5) is not None, "TCP out, replies back"
            assert not pings(lab, "blue-2", "egress-1"), "new inbound ICMP"
            assert opens_at(inbound["blue-2"], 1.5) is None, "new inbound TCP"
            add_rule(lab, egress_only, {"direction": "ingress", "protocol": "tcp",
                                        "port_range_min": WEB_PORT, "port_range_max": WEB_PORT})
            assert opens_at(inbound["blue-2"], 10) is not None, "the listener is there"


# --- 3. rule changes ----------------------------------------------------------------------------


def test_a_rule_opens_new_connections_promptly_and_its_removal_ends_established_ones(lab3):
    lab = lab3
    # web-1 on orange on compute-1: from blue-2 routed cross-host, from orange-1 switched
    # cross-host, from blue-1 routed on the same host
    paths = {"blue-2": "routed cross-host", "orange-1": "switched cross-host",
             "blue-1": "routed same host"}
    with (security_group(lab, "e2e-closed") as closed,
          temporary_vm(lab, "web-1", "orange", "compute-1", groups=[closed]),
          vm_program(lab, "web-1", ECHO_SERVER, str(PORT)),
          probes(lab, tuple(paths), "web-1") as probe):
        assert rounds(probe, "open", 1.5) == dict.fromkeys(paths), "no rule yet"
        added = time.monotonic()
        rule = add_rule(lab, closed, {"direction": "ingress", "protocol": "tcp",
                                      "port_range_min": PORT, "port_range_max": PORT})
        for source, opened in rounds(probe, "open", 10).items():
            path = paths[source]
            assert opened is not None, f"{path}: the rule never opened the port"
            report(f"rule added -> {path} connects", opened - added)
            assert opened - added <= PROMPT_BOUND_S, path
        ip = lab.lab.resolve_ip("web-1")
        with (vm_program(lab, "blue-2", TICKER, ip, str(PORT), "0.05", "30") as routed,
              vm_program(lab, "orange-1", TICKER, ip, str(PORT), "0.05", "30") as switched):
            tickers = {"routed cross-host": routed, "switched cross-host": switched}
            for path, ticker in tickers.items():
                assert all(v == "ok" for v, _ in ticks(ticker, time.monotonic() + 0.3)), path
            removed = time.monotonic()
            with lab.client() as client:
                client.delete("security-group-rules", rule)
            for path, ticker in tickers.items():
                seen = ticks(ticker, removed + 5)
                first_lost = next((sent for v, sent in seen if v == "lost"), None)
                assert first_lost is not None, f"{path}: the connection outlived its rule"
                report(f"rule removed -> {path} established connection ends",
                       first_lost - removed)
                assert first_lost - removed <= PROMPT_BOUND_S, path
                assert all(v == "lost" for v, sent in seen if sent >= first_lost), (
                    f"{path}: the ended connection came back")
        assert rounds(probe, "open", 1.5) == dict.fromkeys(paths), "new connections after removal"


# --- 4. remote groups ---------------------------------------------------------------------------


def test_a_remote_group_rule_follows_membership_promptly(lab3):
    lab = lab3
    default = group_id(lab, "default")
    with security_group(lab, "e2e-members") as members:
        rule = {"direction": "ingress", "remote_group_id": members}
        # rg-1 on orange on compute-2, joiner-1 on blue on compute-1: routed cross-host
        with (security_group(lab, "e2e-target", (rule,)) as target,
              temporary_vm(lab, "rg-1", "orange", "compute-2", groups=[target]),
              temporary_vm(lab, "joiner-1", "blue", "compute-1", groups=[default]),
              vm_program(lab, "rg-1", ECHO_SERVER, str(PORT)),
              probes(lab, ("joiner-1",), "rg-1") as probe):
            joiner = probe["joiner-1"]
            assert opens_at(joiner, 1.5) is None, "not a member yet"
            joined = time.monotonic()
            lab.set_port_groups("joiner-1", [default, members])
            opened = opens_at(joiner, 10)
            assert opened is not None, "joining never gave access"
            report("joined the remote group -> connects", opened - joined)
            assert opened - joined <= PROMPT_BOUND_S
            left = time.monotonic()
            lab.set_port_groups("joiner-1", [default])
            closed = closes_at(joiner, 10)
            assert closed is not None, "leaving never took access away"
            report("left the remote group -> new connections dropped", closed - left)
            assert closed - left <= PROMPT_BOUND_S
            assert opens_at(joiner, 1.5) is None, "access came back after leaving"


# --- 5. anti-spoofing ---------------------------------------------------------------------------


def delivered(lab: LabDriver, sender: str, targets: tuple[str, ...],
              frames: list[bytes], marker: str) -> dict[str, set[str]]:
    """Send ``frames`` from ``sender``'s NIC; the tags each target's NIC saw."""
    seen = {}
    with in_each(lab, targets, RECEIVER, marker, "3") as receivers:  # 3 s each
        lab.run(sender, [sys.executable, "-c", SENDER, *(f.hex() for f in frames)])
        for target, receiver in receivers.items():
            line = receiver.line(15)
            assert line is not None, f"{target}: the receiver said nothing"
            seen[target] = set(json.loads(line))
    return seen


def assert_delivery(lab: LabDriver, sender: str, targets: tuple[str, ...], marker: str,
                    wanted: dict[str, list[bytes]], unwanted: dict[str, list[bytes]]) -> None:
    """Send every frame of ``wanted`` and ``unwanted`` (tag -> frames) from ``sender``: each
    target sees every wanted tag and no unwanted one."""
    frames = [f for tagged in (*wanted.values(), *unwanted.values()) for f in tagged]
    seen = delivered(lab, sender, targets, frames, marker)
    for target in targets:
        assert set(wanted) <= seen[target], f"{target} missed frames it should see: {seen}"
        assert not set(unwanted) & seen[target], f"{target} saw frames it should not: {seen}"


def unheld_addresses(lab: LabDriver, network: str, count: int) -> list[str]:
    """``count`` addresses of ``network``'s subnet, from its top down, that no port holds."""
    cidr = ip_network(next(n.cidr for n in default_topology().networks if n.name == network))
    with lab.client() as client:
        held = {fixed["ip_address"] for port in client.get("/v2.0/ports")["ports"]
                for fixed in port["fixed_ips"]}
    free = (str(a) for a in reversed(list(cidr.hosts())) if str(a) not in held)
    return [next(free) for _ in range(count)]


def update_port(lab: LabDriver, vm: str, body: dict) -> None:
    with lab.client() as client:
        client.update("ports", "port", lab.record.vms[vm].port_id, body)
    lab.wait_converged()


def test_forged_sources_deliver_nothing_and_address_pairs_exactly_their_pair(lab3):
    lab = lab3
    # spoof-1 on blue on compute-1: blue-1 is beside it, blue-2 across (switched); both
    # admit ICMP from anywhere (demo-web), so only anti-spoofing can stop a forged frame
    targets = ("blue-1", "blue-2")
    vms = lab.record.vms
    marker = f"e2e-spoof-{time.monotonic_ns()}:"
    broadcast = "ff:ff:ff:ff:ff:ff"
    victim = vms["blue-2"].ip_address
    with temporary_vm(lab, "spoof-1", "blue", "compute-1") as spoof:
        mac, ip = spoof.mac_address, spoof.ip_address
        # the server allocates at random, so the forged and the pair's addresses are ones
        # no port holds now (fixed ones collided with blue-2's once)
        forged_address, pair_address = unheld_addresses(lab, "blue", 2)

        def echo(tag: str, src_mac: str, src_ip: str) -> dict[str, list[bytes]]:
            return {tag: [icmp_echo_frame(src_mac, vms[t].mac_address, src_ip,
                                          vms[t].ip_address, f"{marker}{tag};".encode())
                          for t in targets]}

        def garp(src_mac: str, claimed_ip: str) -> dict[str, list[bytes]]:
            return {arp_tag(1, src_mac, claimed_ip, claimed_ip): [
                arp_frame(1, src_mac, broadcast, claimed_ip, claimed_ip)]}

        blue_1 = vms["blue-1"]
        forged_mac = echo("forged-mac", FORGED_MAC, ip)
        forged_ip = echo("forged-ip", mac, forged_address)
        assert_delivery(lab, "spoof-1", targets, marker,
                        wanted={**echo("genuine", mac, ip), **garp(mac, ip)},
                        unwanted={
                            **forged_mac, **forged_ip,
                            **echo("other-host-mac", lab.host_mac("compute-2"), ip),
                            **echo("own-host-mac", lab.host_mac("compute-1"), ip),
                            **garp(mac, victim),
                            arp_tag(2, mac, victim, blue_1.ip_address): [arp_frame(
                                2, mac, blue_1.mac_address, victim, blue_1.ip_address)]})

        update_port(lab, "spoof-1", {"allowed_address_pairs": [
            {"ip_address": pair_address, "mac_address": PAIR_MAC}]})
        assert_delivery(lab, "spoof-1", targets, marker,
                        wanted={**echo("pair", PAIR_MAC, pair_address),
                                **garp(PAIR_MAC, pair_address)},
                        unwanted={**echo("pair-ip-own-mac", mac, pair_address),
                                  **echo("pair-mac-own-ip", PAIR_MAC, ip),
                                  **echo("pair-mac-forged-ip", PAIR_MAC, forged_address),
                                  **forged_mac, **garp(PAIR_MAC, victim)})

        # the receivers would see forgeries: without port security they get through
        update_port(lab, "spoof-1", {"port_security_enabled": False, "security_groups": [],
                                     "allowed_address_pairs": []})
        assert_delivery(lab, "spoof-1", targets, marker, wanted={**forged_mac, **forged_ip},
                        unwanted={})


# --- 6. agent restarts --------------------------------------------------------------------------

FIREWALL_TABLES = range(71, 83)
SAME_INSTALL = 0.5


def lost_pings(output: str) -> list[int]:
    """The pings of ``ping``'s output that got no reply, but the last (maybe in flight when
    ping was interrupted)."""
    sent = re.search(r"(\d+) packets transmitted", output)
    assert sent is not None, output
    answered = {int(n) for n in re.findall(r"icmp_seq=(\d+) ", output)}
    return [n for n in range(1, int(sent.group(1))) if n not in answered]


def firewall_flows(lab: LabDriver, host: str) -> dict[str, float]:
    """Install times of ``host``'s br-int firewall flows (tables 71-82), by identity."""
    return {flow: installed for flow, installed in lab.flows_installed_at(host, "br-int").items()
            if table_of(flow) in FIREWALL_TABLES}


def table_of(flow: str) -> int:
    """The table of a flow identity (dump-flows leaves out ``table=0``)."""
    fields = dict(f.split("=", 1) for f in flow.split(",") if f.startswith("table="))
    return int(fields.get("table", 0))


@pytest.mark.parametrize("how", ["restart", "kill -9"])
def test_agent_restart_keeps_packets_firewall_flows_and_connections(lab3, how):
    lab, host = lab3, "compute-2"  # orange-1's host
    ip = lab.lab.resolve_ip("orange-1")
    with vm_program(lab, "orange-1", ECHO_SERVER, str(PORT)):  # default admits blue-1
        lab.wait_converged()
        time.sleep(2 * SAME_INSTALL)
        before = firewall_flows(lab, host)
        assert len(before) > 20, before
        command, env = lab.lab.target_command(
            "blue-1", ["ping", "-c", "1200", "-i", "0.05", "-W", "1", ip])  # 60 s at most
        with vm_program(lab, "blue-1", TICKER, ip, str(PORT), "0.05", "60") as ticker:
            ping = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)  # nsenter and ip exec: ping's PID
            try:
                started = lab.reconciles(host)
                if how == "restart":
                    lab.lab.restart_agent(host)
                else:
                    lab.kill_agent(host)
                lab.wait_for(lambda: lab.reconciles(host) > started,
                             f"the new agent of {host} to reconcile", timeout=30)
                reconciled = time.monotonic()
                seen = ticks(ticker, reconciled + 1)
                assert ping.poll() is None, "the ping ended before the new agent reconciled"
            finally:
                ping.send_signal(signal.SIGINT)
                pinged = ping.communicate(timeout=30)[0]
        assert lost_pings(pinged) == [], pinged
        assert [s for v, s in seen if v != "ok"] == [], "the established connection lost data"
        assert any(s > reconciled for _, s in seen)
        after = firewall_flows(lab, host)
        assert set(after) == set(before), "firewall flows changed"
        moved = [f for f, installed in before.items()
                 if abs(after[f] - installed) >= SAME_INSTALL]
        assert moved == [], f"reinstalled: {moved}"
