"""Benchmark: desired-state computation for one big host (issue 3 performance targets).

Scenario (defaults): a host hosting 200 distributed routers, each attached to 2 of 400
subnets (one subnet per VXLAN network); 2,000 ports on those subnets, 5 per subnet; 1,000
peer hosts, all with host MACs.  Per subnet, ``--local-per-subnet`` ports are plugged VIFs
on this host and the rest live on peer hosts (round-robin, so every peer is a tunnel
endpoint); every port is a static-ARP entry on its router.

Measured:
- full: ``compute_desired_state`` from scratch (target < 200 ms);
- incremental: one port change through ``DesiredStateCache.update`` (target < 5 ms), for
  a local port's MAC change, a new local port being plugged, and a new port on a remote
  host (L2 population + static ARP), each with the unchanged objects shared between the
  two views (what an agent patching its view from the watch stream does) and, for the MAC
  change, with a view freshly decoded from JSON (no objects shared: the worst case).

Run:  .venv/bin/python bench/bench_desired.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from dvr.agent.desired import DesiredStateCache, HostInputs, compute_desired_state
from dvr.model.hostview import (
    ArpEntry,
    FixedIp,
    HostMac,
    HostView,
    L2Entry,
    NetworkView,
    PortView,
    RemoteHost,
    RouterInterfaceView,
    RouterView,
    SubnetView,
    host_view_from_dict,
)

HOST = "bench-host"


def mac(prefix: int, index: int) -> str:
    high, middle, low = (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF
    return f"fa:16:{prefix:02x}:{high:02x}:{middle:02x}:{low:02x}"


def uuid(kind: int, index: int) -> str:
    """Distinct in the first 11 characters, like random UUIDs (device names use them)."""
    return f"{index:08x}-{kind:02x}00-4000-8000-000000000000"


def peer_name(index: int) -> str:
    return f"peer-{index:04d}"


def peer_ip(index: int) -> str:
    return f"198.18.{index // 250}.{index % 250 + 1}"


def build_view(routers: int, subnets_per_router: int, ports_per_subnet: int, peers: int,
               local_per_subnet: int) -> tuple[HostView, dict[str, str]]:
    subnet_count = routers * subnets_per_router
    networks: list[NetworkView] = []
    ports: list[PortView] = []
    plugged: dict[str, str] = {}
    arp_by_subnet: dict[str, list[ArpEntry]] = {}
    port_index = 0
    remote_index = 0
    for s in range(subnet_count):
        net_id, subnet_id = uuid(1, s), uuid(2, s)
        base = (10 << 24) | (s << 8)  # 10.x.y.0/24 per subnet (addresses never leave memory)
        cidr = f"{base >> 24}.{(base >> 16) & 255}.{(base >> 8) & 255}.0/24"
        prefix = cidr.rsplit(".", 1)[0]
        remote: dict[int, list[L2Entry]] = {}
        for k in range(ports_per_subnet):
            port_id = uuid(3, port_index)
            port_mac = mac(0x3E, port_index)
            ip = f"{prefix}.{10 + k}"
            arp_by_subnet.setdefault(subnet_id, []).append(ArpEntry(subnet_id, ip, port_mac))
            if k < local_per_subnet:
                ports.append(PortView(port_id, net_id, port_mac, (FixedIp(subnet_id, ip),),
                                      "compute:nova", f"vm-{port_index}", HOST))
                plugged[port_id] = f"tap{port_id[:11]}"
            else:
                peer = remote_index % peers
                remote_index += 1
                remote.setdefault(peer, []).append(L2Entry(port_mac, (ip,)))
            port_index += 1
        networks.append(NetworkView(
            id=net_id, name=f"net-{s}", network_type="vxlan", segmentation_id=1000 + s,
            mtu=1450, external=False, physical_network=None,
            subnets=(SubnetView(subnet_id, net_id, cidr, f"{prefix}.1", 4),),
            remote_hosts=tuple(RemoteHost(peer_name(p), peer_ip(p), tuple(entries))
                               for p, entries in sorted(remote.items())),
        ))
    router_views = []
    for r in range(routers):
        interfaces = []
        arp: list[ArpEntry] = []
        for j in range(subnets_per_router):
            s = r * subnets_per_router + j
            network = networks[s]
            subnet = network.subnets[0]
            interfaces.append(RouterInterfaceView(
                port_id=uuid(4, s), subnet_id=subnet.id, network_id=network.id,
                mac_address=mac(0x3D, s), ip_address=subnet.gateway_ip or "", cidr=subnet.cidr,
                mtu=1450))
            arp.extend(arp_by_subnet[subnet.id])
        router_views.append(RouterView(
            id=uuid(5, r), name=f"router-{r}", distributed=True, ha=False, admin_state_up=True,
            interfaces=tuple(sorted(interfaces, key=lambda i: i.subnet_id)),
            arp_entries=tuple(sorted(arp, key=lambda a: (a.subnet_id, a.ip_address))),
            routes=(), gateway=None, snat_host=None, snat_ports=(), floating_ips=()))
    view = HostView(
        host=HOST, revision=1, agent_mode="dvr", host_mac="fa:16:3f:ff:ff:01",
        tunnel_ip="198.18.200.1",
        ports=tuple(sorted(ports, key=lambda p: p.id)),
        networks=tuple(sorted(networks, key=lambda n: n.id)),
        routers=tuple(sorted(router_views, key=lambda r: r.id)),
        peer_host_macs=tuple(HostMac(peer_name(p), mac(0x3F, p)) for p in range(peers)),
    )
    return view, plugged


# --- one-port changes -------------------------------------------------------------------------


def local_mac_change(view: HostView, plugged: dict[str, str], flip: bool):
    port = view.ports[len(view.ports) // 2]
    new_mac = "fa:16:3e:ee:ee:01" if flip else port.mac_address
    ports = tuple(replace(p, mac_address=new_mac) if p.id == port.id else p for p in view.ports)
    return replace(view, ports=ports, revision=view.revision + 1), plugged


def local_port_plugged(view: HostView, plugged: dict[str, str], flip: bool):
    if not flip:
        return view, plugged
    template = view.ports[len(view.ports) // 2]
    new_port = replace(template, id="ffffffff-0000-0000-0000-00000000000a",
                       mac_address="fa:16:3e:ee:ee:02",
                       fixed_ips=(replace(template.fixed_ips[0], ip_address="10.0.0.250"),))
    ports = tuple(sorted(view.ports + (new_port,), key=lambda p: p.id))
    return (replace(view, ports=ports, revision=view.revision + 1),
            {**plugged, new_port.id: "tapffffffff-00"})


def remote_port_added(view: HostView, plugged: dict[str, str], flip: bool):
    if not flip:
        return view, plugged
    network = view.networks[len(view.networks) // 2]
    subnet = network.subnets[0]
    entry = L2Entry("fa:16:3e:ee:ee:03", ("10.9.9.9",))
    if network.remote_hosts:
        first = network.remote_hosts[0]
        remote = (replace(first, entries=first.entries + (entry,)),) + network.remote_hosts[1:]
    else:
        remote = (RemoteHost(peer_name(0), peer_ip(0), (entry,)),)
    networks = tuple(replace(n, remote_hosts=remote) if n.id == network.id else n
                     for n in view.networks)
    router = next(r for r in view.routers if any(i.subnet_id == subnet.id for i in r.interfaces))
    arp = tuple(sorted(router.arp_entries + (ArpEntry(subnet.id, "10.9.9.9",
                                                      "fa:16:3e:ee:ee:03"),),
                       key=lambda a: (a.subnet_id, a.ip_address)))
    routers = tuple(replace(r, arp_entries=arp) if r.id == router.id else r for r in view.routers)
    return replace(view, networks=networks, routers=routers, revision=view.revision + 1), plugged


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    return (f"median {statistics.median(samples):8.2f} ms   min {min(samples):8.2f}   "
            f"max {max(samples):8.2f}   (n={len(samples)})")


def bench_incremental(view: HostView, plugged: dict[str, str], change, repeat: int,
                      via_json: bool) -> tuple[list[float], bool, int]:
    cache = DesiredStateCache()
    state = cache.update(view, HostInputs(plugged=plugged))
    vlans = dict(state.local_vlans)
    variants = [change(view, plugged, flip) for flip in (True, False)]
    if via_json:
        variants = [(host_view_from_dict(v.to_dict()), p) for v, p in variants]
    samples = []
    recomputed = 0
    for i in range(repeat):
        changed_view, changed_plugged = variants[i % 2]
        inputs = HostInputs(plugged=changed_plugged, previous_local_vlans=vlans)
        started = time.perf_counter()
        cache.update(changed_view, inputs)
        samples.append((time.perf_counter() - started) * 1000)
        recomputed = max(recomputed, len(cache.last_stats.recomputed))
    # the result is still exactly the full computation's
    last_view, last_plugged = variants[(repeat - 1) % 2]
    inputs = HostInputs(plugged=last_plugged, previous_local_vlans=vlans)
    equal = cache.update(last_view, inputs) == compute_desired_state(last_view, inputs)
    return samples, equal, recomputed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routers", type=int, default=200)
    parser.add_argument("--subnets-per-router", type=int, default=2)
    parser.add_argument("--ports-per-subnet", type=int, default=5)
    parser.add_argument("--local-per-subnet", type=int, default=1)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--agent-gc", action="store_true",
                        help="run under the garbage-collector settings dvr-agent uses "
                             "(dvr.gc_tuning), applied before the view is built")
    args = parser.parse_args()
    if args.agent_gc:
        from dvr.gc_tuning import tune_garbage_collector

        tune_garbage_collector()

    view, plugged = build_view(args.routers, args.subnets_per_router, args.ports_per_subnet,
                               args.peers, args.local_per_subnet)
    state = compute_desired_state(view, HostInputs(plugged=plugged))
    flows = {b.name: len(b.flows) for b in state.bridges}
    ports = {b.name: len(b.ports) for b in state.bridges}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{platform.system()} {platform.release()}, load average {os.getloadavg()[0]:.2f}, "
          f"gc thresholds {gc.get_threshold()}")
    print(f"view: {len(view.routers)} routers, {len(view.networks)} networks/subnets, "
          f"{args.ports_per_subnet * len(view.networks)} ports ({len(view.ports)} local), "
          f"{len(view.peer_host_macs)} peer hosts")
    print(f"state: flows {flows}, ports {ports}, {len(state.namespaces)} namespaces, "
          f"{sum(len(n.neighbors) for n in state.namespaces)} neighbors")
    full = timed(lambda: compute_desired_state(view, HostInputs(plugged=plugged)), args.repeat)
    print(f"full compute{'':39s}{summary(full)}")
    cases = [
        ("local port MAC change", local_mac_change, False),
        ("local port MAC change (JSON view)", local_mac_change, True),
        ("new local port plugged", local_port_plugged, False),
        ("new port on a remote host", remote_port_added, False),
    ]
    for label, change, via_json in cases:
        samples, equal, recomputed = bench_incremental(view, plugged, change,
                                                       max(args.repeat * 10, 50), via_json)
        print(f"incremental: {label:38s} {summary(samples)}  pieces<= {recomputed}"
              f"  equal-to-full={equal}")


if __name__ == "__main__":
    main()
