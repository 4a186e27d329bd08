"""dvr-server benchmarks (issue 2): port-create throughput through the API, HostView build
time at scale, and the delay from a write to its watchers being woken.  With ``--deltas``
(issue 14): the server's CPU per woken host for one change on a network every host is on,
whole views as before vs deltas from views built with the revision's shared parts.  With
``--fanout`` (issue 14): the server's CPU per host woken by each kind of write of `make
bench-scale`'s fan-out phase, in its scenario (``--hosts``), optionally under cProfile.

    .venv/bin/python bench/bench_server.py                     # SQLite and PostgreSQL
    .venv/bin/python bench/bench_server.py --backends sqlite --ports 300 --quick
    .venv/bin/python bench/bench_server.py --backends sqlite --deltas --woken 100
    .venv/bin/python bench/bench_server.py --backends sqlite --fanout --hosts 100 --rounds 3

Scale scenario (built with bulk SQL inserts that mirror what the services write): 1,000
hosts (990 `dvr`, 10 `dvr_snat`), 500 distributed routers each on 2 of 1,000 tenant
networks (/24) with a gateway to one external network (SNAT on the 10 `dvr_snat` hosts),
10,000 VM ports (10 per network, spread over the compute hosts), 2,000 floating IPs (so
~900 hosts have a FIP gateway port on the external network), host MACs for every host.
Each router's two networks are one project's, whose VMs are in its ``default`` security
group (Neutron's rules: ingress from group-mates, so each VM's host also needs the
addresses of its ~20 group-mates).
PostgreSQL runs as a private cluster with its durable defaults (fsync on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/pg.py
sys.path.insert(0, str(HERE))

import pg  # noqa: E402
from benchlib import load_average, machine  # noqa: E402

from dvr.db import tables as t  # noqa: E402
from dvr.db.migrate import upgrade_to_head  # noqa: E402
from dvr.db.session import Database  # noqa: E402
from dvr.gc_tuning import tune_garbage_collector  # noqa: E402
from dvr.model.hostview import is_dvr_serviceable  # noqa: E402
from dvr.model.hostview_delta import apply, compact_delta_dict, delta_from_dict  # noqa: E402
from dvr.server.config import ServerConfig  # noqa: E402
from dvr.server.context import ServerContext  # noqa: E402
from dvr.server.hostview import build_host_view  # noqa: E402
from dvr.server.hostview_parts import SharedViewParts  # noqa: E402
from dvr.server.hostview_served import ServedViews, view_update  # noqa: E402
from dvr.server.serialize import to_jsonable  # noqa: E402
from dvr.server.services import ports as port_service  # noqa: E402
from dvr.server.services.ipam import default_pools  # noqa: E402
from dvr.server.services.notify import current_revision  # noqa: E402


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))],
        "min": ordered[0],
        "max": ordered[-1],
    }


# -- a server process --------------------------------------------------------------------
class Server:
    def __init__(self, db_url: str, state_dir: Path) -> None:
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(state_dir / f"server-{port}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dvr.server.main", "--db", db_url, "--listen",
             f"127.0.0.1:{port}", "--state-dir", str(state_dir), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("dvr-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


# -- port-create throughput --------------------------------------------------------------
def bench_port_create(url: str, ports: int, concurrency: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=120) as client:
        network = client.post("/v2.0/networks", json={"network": {"name": "bench"}}).json()
        network_id = network["network"]["id"]
        client.post("/v2.0/subnets", json={"subnet": {
            "network_id": network_id, "cidr": "198.18.0.0/16", "ip_version": 4}})
    per_worker = ports // concurrency
    latencies: list[float] = []

    def worker(w: int) -> list[float]:
        mine = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(per_worker):
                started = time.perf_counter()
                response = client.post("/v2.0/ports", json={"port": {
                    "network_id": network_id, "device_owner": "compute:nova",
                    "binding:host_id": f"compute-{(w * per_worker + i) % 50}"}})
                assert response.status_code == 201, response.text
                mine.append(time.perf_counter() - started)
        return mine

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for result in pool.map(worker, range(concurrency)):
            latencies += result
    elapsed = time.perf_counter() - started
    latency = stats([x * 1000 for x in latencies])
    return {"ports": per_worker * concurrency, "concurrency": concurrency,
            "ports_per_s": per_worker * concurrency / elapsed,
            "latency_median_ms": latency["median"], "latency_p95_ms": latency["p95"]}


# -- the scale database ------------------------------------------------------------------
def populate(db_url: str, hosts: int = 1000, snat_hosts: int = 10, routers: int = 500,
             ports: int = 10_000, fips: int = 2_000,
             external_type: str = "vxlan", span_network: bool = False) -> dict[str, int]:
    """The scale database; ``external_type`` "flat" puts the external network on physical
    network ``public`` (as the lab and most clouds do) instead of a VXLAN segment;
    ``span_network`` adds network ``span`` (no router, no security group) with a VM port on
    every host (`make bench-scale`)."""
    database = Database.from_url(db_url)
    upgrade_to_head(database.engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    std = {"project_id": "p", "description": "", "tags": [], "created_at": now,
           "updated_at": now, "revision_number": 1}
    ids = lambda: str(uuid.uuid4())  # noqa: E731
    macs = iter(f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
                for i in range(1, 1 << 24))
    computes = [f"compute-{i:04d}" for i in range(hosts - snat_hosts)]
    snats = [f"snat-{i}" for i in range(snat_hosts)]
    rows: dict[str, list[dict]] = {k: [] for k in (
        "dvr_hosts", "dvr_host_macs", "agents", "networks", "segment_allocations", "subnets",
        "ports", "ip_allocations", "routers", "router_interfaces", "router_l3_bindings",
        "floatingips", "security_groups", "security_group_rules",
        "port_security_groups")}
    for i, host in enumerate(computes + snats):
        mode = "dvr_snat" if host.startswith("snat") else "dvr"
        rows["dvr_hosts"].append({"host": host, "agent_mode": mode,
                                  "tunnel_ip": f"198.19.{i // 250}.{i % 250 + 1}",
                                  "datapath_type": "system", "applied_revision": 0,
                                  "registered_at": now, "heartbeat_at": now})
        rows["dvr_host_macs"].append({"host": host, "mac_address":
                                      f"fa:16:3f:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:"
                                      f"{i & 255:02x}"})
        for agent_type in ("Open vSwitch agent", "L3 agent"):
            rows["agents"].append({"id": ids(), "host": host, "agent_type": agent_type,
                                   "binary": "dvr-agent", "topic": "N/A",
                                   "admin_state_up": True, "description": "",
                                   "availability_zone": None,
                                   "configurations": {"agent_mode": mode}, "created_at": now,
                                   "started_at": now, "heartbeat_timestamp": now})

    def network(name: str, external: bool, vni: int) -> str:
        network_id = ids()
        flat = external and external_type == "flat"
        segment = (("flat", "public", None, 1500) if flat else ("vxlan", None, vni, 1450))
        network_type, physnet, segmentation_id, mtu = segment
        rows["networks"].append({"id": network_id, "name": name, "admin_state_up": True,
                                 "status": "ACTIVE", "shared": False, "mtu": mtu,
                                 "external": external, "network_type": network_type,
                                 "physical_network": physnet, "segmentation_id": segmentation_id,
                                 "port_security_enabled": True, "availability_zone_hints": [],
                                 **std})
        rows["segment_allocations"].append({"network_type": network_type,
                                            "physical_network": physnet or "",
                                            "segmentation_id": segmentation_id or 0,
                                            "network_id": network_id})
        return network_id

    def subnet(network_id: str, cidr: str, gateway: str) -> str:
        import ipaddress

        subnet_id = ids()
        rows["subnets"].append({"id": subnet_id, "network_id": network_id, "name": "",
                                "ip_version": 4, "cidr": cidr, "gateway_ip": gateway,
                                "enable_dhcp": True, "ipv6_ra_mode": None,
                                "ipv6_address_mode": None,
                                "allocation_pools": default_pools(ipaddress.ip_network(cidr),
                                                                  gateway),
                                "dns_nameservers": [], "host_routes": [], "service_types": [],
                                **std})
        return subnet_id

    def port(network_id: str, subnet_id: str | None, ip: str | None, owner: str, device: str,
             host: str, port_id: str | None = None) -> str:
        port_id = port_id or ids()
        rows["ports"].append({"id": port_id, "network_id": network_id, "name": "",
                              "mac_address": next(macs), "admin_state_up": True,
                              "status": "ACTIVE", "device_id": device, "device_owner": owner,
                              "host": host, "vif_type": "ovs" if host else "distributed",
                              "vnic_type": "normal", "binding_profile": {},
                              "port_security_enabled": True, "allowed_address_pairs": [],
                              "dvr_serviceable": is_dvr_serviceable(owner),
                              **{**std, "project_id": "" if owner.startswith("network:") else "p"}})
        if ip is not None:
            rows["ip_allocations"].append({"subnet_id": subnet_id, "ip_address": ip,
                                           "port_id": port_id, "network_id": network_id})
        return port_id

    ext = network("ext", True, 99_999)  # outside the default range: the API keeps working
    ext_sub = subnet(ext, "198.18.0.0/15", "198.18.0.1")
    ext_ips = (f"198.18.{i // 250}.{i % 250 + 2}" for i in range(10**6))
    tenant = []
    for n in range(2 * routers):
        network_id = network(f"n{n}", False, 100_000 + n)
        prefix = f"10.{n // 250}.{n % 250}"
        tenant.append((network_id, subnet(network_id, f"{prefix}.0/24", f"{prefix}.1"), prefix))
    router_of_network = {}
    for r in range(routers):
        router_id, snat_host = ids(), snats[r % len(snats)]
        gw_port = port(ext, ext_sub, next(ext_ips), "network:router_gateway", router_id,
                       snat_host)
        rows["routers"].append({"id": router_id, "name": f"r{r}", "admin_state_up": True,
                                "status": "ACTIVE", "distributed": True, "ha": False,
                                "flavor_id": None, "gw_port_id": gw_port, "gw_network_id": ext,
                                "enable_snat": True, "routes": [],
                                "availability_zone_hints": [], **std})
        rows["router_l3_bindings"].append({"router_id": router_id, "host": snat_host})
        for network_id, subnet_id, prefix in tenant[2 * r: 2 * r + 2]:
            interface = port(network_id, subnet_id, f"{prefix}.1",
                             "network:router_interface_distributed", router_id, "")
            rows["router_interfaces"].append({"subnet_id": subnet_id, "router_id": router_id,
                                              "port_id": interface, "network_id": network_id})
            port(network_id, subnet_id, f"{prefix}.2", "network:router_centralized_snat",
                 router_id, snat_host)
            router_of_network[network_id] = router_id
    def default_group() -> str:
        group_id = ids()
        rows["security_groups"].append({"id": group_id, "name": "default", "stateful": True,
                                        **std})
        for direction, ethertype in (("egress", "IPv4"), ("egress", "IPv6"),
                                     ("ingress", "IPv4"), ("ingress", "IPv6")):
            rows["security_group_rules"].append({
                "id": ids(), "security_group_id": group_id, "direction": direction,
                "ethertype": ethertype, "protocol": None, "port_range_min": None,
                "port_range_max": None, "remote_ip_prefix": None,
                "remote_address_group_id": None,
                "remote_group_id": group_id if direction == "ingress" else None, **std})
        return group_id

    group_of_router = {router_id: default_group() for router_id in
                       dict.fromkeys(router_of_network.values())}
    vm_ports = []
    for k in range(ports):
        network_id, subnet_id, prefix = tenant[k % len(tenant)]
        host = computes[(k * 7919) % len(computes)]
        ip = f"{prefix}.{10 + k // len(tenant)}"
        vm_id = port(network_id, subnet_id, ip, "compute:nova", f"vm-{k}", host)
        rows["port_security_groups"].append(
            {"port_id": vm_id, "security_group_id": group_of_router[router_of_network[network_id]]}
        )
        vm_ports.append((vm_id, ip, router_of_network[network_id], host))
    fip_hosts = set()
    step = max(1, ports // fips)
    for i in range(min(fips, ports // step)):
        vm_id, fixed_ip, router_id, host = vm_ports[step * i + i % step]
        fip_id = ids()
        fip_port = port(ext, ext_sub, next(ext_ips), "network:floatingip", fip_id, "")
        address = rows["ip_allocations"][-1]["ip_address"]
        rows["floatingips"].append({"id": fip_id, "floating_network_id": ext,
                                    "floating_ip_address": address, "floating_port_id": fip_port,
                                    "fixed_port_id": vm_id, "fixed_ip_address": fixed_ip,
                                    "router_id": router_id, "status": "ACTIVE", **std})
        if host not in fip_hosts:
            fip_hosts.add(host)
            port(ext, ext_sub, next(ext_ips), "network:floatingip_agent_gateway", host, host)
    if span_network:
        span = network("span", False, 100_000 + 2 * routers)
        span_sub = subnet(span, "10.200.0.0/16", "10.200.0.1")
        for i, host in enumerate(computes + snats):
            port(span, span_sub, f"10.200.{i // 250}.{i % 250 + 2}", "compute:nova",
                 f"span-vm-{i}", host)
    with database.engine.begin() as conn:
        for name in ("dvr_hosts", "dvr_host_macs", "agents", "networks", "segment_allocations",
                     "subnets", "ports", "ip_allocations", "routers", "router_interfaces",
                     "router_l3_bindings", "floatingips", "security_groups",
                     "security_group_rules", "port_security_groups"):
            table = t.metadata.tables[name]
            batch = rows[name]
            for start in range(0, len(batch), 2000):
                conn.execute(insert(table), batch[start:start + 2000])
        if database.is_postgres:
            conn.execute(text("ANALYZE"))
    with database.engine.connect() as conn:
        if not database.is_postgres:
            conn.exec_driver_sql("ANALYZE")
    database.dispose()
    return {"hosts": hosts, "routers": routers, "vm_ports": ports,
            "all_ports": len(rows["ports"]), "floating_ips": len(rows["floatingips"]),
            "fip_gateway_hosts": len(fip_hosts)}


def bench_hostview(db_url: str, sample: list[str], repeat: int) -> dict[str, object]:
    database = Database.from_url(db_url)
    tune_garbage_collector()  # as dvr-server runs the builds
    timings, cpu, to_json, sizes = [], [], [], {}
    by_kind: dict[str, dict[str, list[float]]] = {}
    for host in sample:
        kind = by_kind.setdefault("snat" if host.startswith("snat") else "compute",
                                  {"build_ms": [], "build_cpu_ms": []})
        for _ in range(repeat):
            with database.read() as conn:
                started, cpu_started = time.perf_counter(), time.thread_time()
                view = build_host_view(conn, host)
                timings.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - cpu_started) * 1000)
                kind["build_ms"].append(timings[-1])
                kind["build_cpu_ms"].append(cpu[-1])
            started = time.perf_counter()
            json.dumps(to_jsonable(view))
            to_json.append((time.perf_counter() - started) * 1000)
        sizes[host] = {"ports": len(view.ports), "networks": len(view.networks),
                       "routers": len(view.routers),
                       "remote_hosts": sum(len(n.remote_hosts) for n in view.networks),
                       "arp_entries": sum(len(r.arp_entries) for r in view.routers),
                       "json_bytes": len(json.dumps(view.to_dict()))}
    database.dispose()
    return {"build_ms": stats(timings), "build_cpu_ms": stats(cpu),
            "to_json_ms": stats(to_json), "views": sizes,
            "by_kind": {k: {m: stats(v) for m, v in d.items()} for k, d in by_kind.items()}}


def bench_hostview_http(url: str, sample: list[str], repeat: int) -> dict[str, float]:
    timings = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for host in sample:
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(f"/dvr/v1/hosts/{host}/view")
                response.raise_for_status()
                timings.append((time.perf_counter() - started) * 1000)
    return stats(timings)


# -- one change on a network every host is on: whole views vs deltas --------------------
def bench_deltas(db_url: str, woken: int, rounds: int) -> dict[str, object]:
    """A port bound to one host on the external network (a VXLAN network with a FIP gateway
    port on every compute host, so the change wakes ~1,000 hosts); for ``woken`` of the
    hosts it wakes, the server's work for each, measured as the serving thread's CPU time:
    *before*, the whole view built alone and encoded (what every woken agent fetched);
    *after*, the view built from the revision's shared parts, diffed with the view the host
    was served before the change, and the delta encoded.  ``rounds`` alternate the two
    (each "after" round starts from the shared parts of the revision before the change)."""
    database = Database.from_url(db_url)
    tune_garbage_collector()
    context = ServerContext.create(ServerConfig(db_url=db_url, no_auth=True), database)
    served = ServedViews()
    with database.write() as conn:  # populate()'s rows came without a change: revision 0,
        # which ``since`` reads as "holds no view"
        conn.execute(text("UPDATE server_state SET revision = revision + 1 WHERE id = 1"))
        ext = conn.execute(text("SELECT id FROM networks WHERE name = 'ext'")).scalar_one()
    # every host holds its view from before the change (built for all: like agents at rest)
    shared = SharedViewParts()
    hosts = [h for h, in context.run_read(lambda tx: tx.conn.execute(
        text("SELECT host FROM dvr_hosts ORDER BY host")).all())]
    for host in hosts:
        served.remember(context.run_read(lambda tx, h=host: build_host_view(tx.conn, h, shared)))
    base = context.run_read(lambda tx: current_revision(tx.conn))
    held = {h: served.served(h, base) for h in hosts}
    body = {"network_id": ext, "device_owner": "compute:nova", "port_security_enabled": False,
            "binding:host_id": "compute-0000"}
    _, revision, concerned = context.run_write(lambda tx: port_service.create(tx, body))
    step = max(1, len(concerned) // woken)
    sample = sorted(concerned)[::step][:woken]

    def measure(work) -> tuple[list[float], list[float], list[int]]:  # noqa: ANN001
        cpu, wall, sizes = [], [], []
        for host in sample:
            started, cpu_started = time.perf_counter(), time.thread_time()
            sizes.append(len(context.run_read(lambda tx, h=host: work(tx, h))))
            cpu.append((time.thread_time() - cpu_started) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
        return cpu, wall, sizes

    def whole_view(tx, host: str) -> bytes:  # noqa: ANN001
        return json.dumps(to_jsonable(build_host_view(tx.conn, host))).encode()

    def delta(tx, host: str, parts: SharedViewParts) -> bytes:  # noqa: ANN001
        view = build_host_view(tx.conn, host, parts)
        update = view_update(served, view, held[host].revision)
        if update is view:
            raise RuntimeError(f"no delta for {host}")
        return json.dumps(compact_delta_dict(to_jsonable(update))).encode()

    before: dict[str, list] = {"cpu": [], "wall": [], "bytes": []}
    after: dict[str, list] = {"cpu": [], "wall": [], "bytes": []}
    for _ in range(rounds):
        # this round's, following the parts of the views served before the change (as in
        # the server): the first host of the round builds the shared parts
        parts = SharedViewParts(newest=shared.at(base))
        for figures, work in ((before, whole_view),
                              (after, lambda tx, h, p=parts: delta(tx, h, p))):
            cpu, wall, sizes = measure(work)
            figures["cpu"] += cpu
            figures["wall"] += wall
            figures["bytes"] += sizes
    # the agent's side: decode and apply one delta
    raw = context.run_read(lambda tx: delta(tx, sample[-1], SharedViewParts()))
    started = time.perf_counter()
    patched = apply(held[sample[-1]], delta_from_dict(json.loads(raw)))
    apply_ms = (time.perf_counter() - started) * 1000
    assert patched == context.run_read(lambda tx: build_host_view(tx.conn, sample[-1]))
    database.dispose()
    mean = statistics.fmean
    return {
        "change": "a port bound to compute-0000 on the external VXLAN network",
        "revision": revision, "hosts_woken": len(concerned), "hosts_measured": len(sample),
        "rounds": rounds,
        "view_build_ms_per_host_before": mean(before["cpu"]),
        "view_build_ms_per_host_after": mean(after["cpu"]),
        "wall_ms_per_host_before": mean(before["wall"]),
        "wall_ms_per_host_after": mean(after["wall"]),
        "cpu_ms_before": stats(before["cpu"]), "cpu_ms_after": stats(after["cpu"]),
        "full_bytes_median": statistics.median(before["bytes"]),
        "delta_bytes_median": statistics.median(after["bytes"]),
        "agent_decode_and_apply_ms": apply_ms,
    }


# -- the fan-out of `make bench-scale`: CPU per woken host -------------------------------
def bench_fanout(db_url: str, hosts: int, rounds: int, profile: Path | None) -> dict[str, object]:
    """The server's work for each host a write wakes, in `make bench-scale`'s scenario
    (``bench_scale.prepare``: populate() for ``hosts`` hosts plus network ``span``): every host
    holds its view (as agents at rest); then ``rounds`` times, for each fan-out kind (a port
    created on a tenant network, ~12 hosts woken; on ``span``, every host), the port is
    created and deleted, and after each write every woken host's ``view?since=R`` is answered
    as the server does (the view from the revision's shared parts, the delta to the view the
    host was served, rendered), timed as this process's CPU (``time.process_time``); then
    every host's full view (``view`` without ``since``: what an agent starting, or `make
    bench-scale`'s check of a host not woken, asks for).
    ``profile``: cProfile the answers into that file and print the top functions."""
    import cProfile
    import pstats

    from bench_scale import prepare

    from dvr.server.api.dvr_protocol import view_answer
    from dvr.server.jsonbody import FastJSONResponse

    scale, host_rows, networks = prepare(db_url, hosts)
    database = Database.from_url(db_url)
    tune_garbage_collector()
    context = ServerContext.create(ServerConfig(db_url=db_url, no_auth=True), database)
    render = FastJSONResponse(None).render

    def answer(host: str, since: int | None) -> bytes:
        body = context.run_read(lambda tx: view_answer(context, tx, host, since))
        if since is not None and body["full"]:
            raise RuntimeError(f"no delta for {host}")
        return render(body)

    holds = {}  # host -> the revision of the view it holds (as agents at rest)
    for host, _, _ in host_rows:
        view = context.run_read(lambda tx, h=host: build_host_view(tx.conn, h, context.view_parts))
        context.served_views.remember(view)
        holds[host] = view.revision
    computes = [h for h, mode, _ in host_rows if mode == "dvr"]
    tenant = [i for name, i in sorted(networks.items()) if name not in ("ext", "span")]
    profiler = cProfile.Profile() if profile else None
    figures: dict[str, dict[str, list]] = {k: {"ms": [], "bytes": [], "woken": []}
                                           for k in ("small", "big")}
    for r in range(rounds):
        for kind, network_id in (("small", tenant[(37 * r) % len(tenant)]),
                                 ("big", networks["span"])):
            body = {"network_id": network_id, "device_owner": "compute:nova",
                    "port_security_enabled": False,
                    "binding:host_id": computes[(13 * r) % len(computes)]}
            created: dict[str, str] = {}

            def create(tx, body=body, created=created):  # noqa: ANN001, ANN202
                created["id"] = port_service.create(tx, body)

            def delete(tx, created=created):  # noqa: ANN001, ANN202
                port_service.delete_row(tx, created["id"])

            for write in (create, delete):
                _, revision, woken = context.run_write(write)
                figures[kind]["woken"].append(len(woken))
                for host in sorted(woken):
                    if profiler:
                        profiler.enable()
                    started = time.process_time()
                    raw = answer(host, holds[host])
                    holds[host] = revision
                    figures[kind]["ms"].append((time.process_time() - started) * 1000)
                    if profiler:
                        profiler.disable()
                    figures[kind]["bytes"].append(len(raw))
    # a full view for every host (an agent that starts, or `make bench-scale`'s checks),
    # from the newest revision's shared parts
    full_ms, full_bytes = [], []
    for host, _, _ in host_rows:
        if profiler:
            profiler.enable()
        started = time.process_time()
        raw = answer(host, None)
        full_ms.append((time.process_time() - started) * 1000)
        if profiler:
            profiler.disable()
        full_bytes.append(len(raw))
    # the deltas are right: the last views served are the views built afresh
    for host, _, _ in host_rows:
        fresh = context.run_read(lambda tx, h=host: build_host_view(tx.conn, h))
        served = context.served_views.served(host, fresh.revision)
        assert served is None or served == fresh, host
    database.dispose()
    if profiler and profile:
        profiler.dump_stats(str(profile))
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(40)
    mean = statistics.fmean
    return {"scenario": scale, "rounds": rounds,
            **{f"{kind}_{k}": v for kind, f in figures.items() for k, v in {
                "writes": len(f["woken"]), "woken_median": statistics.median(f["woken"]),
                "answers": len(f["ms"]), "cpu_ms_per_host": mean(f["ms"]),
                "cpu_ms": stats(f["ms"]), "cpu_s_per_write": sum(f["ms"]) / 1000 / len(f["woken"]),
                "delta_bytes_median": statistics.median(f["bytes"])}.items()},
            "full_cpu_ms_per_host": mean(full_ms), "full_cpu_ms": stats(full_ms),
            "full_bytes_median": statistics.median(full_bytes)}


# -- write -> watcher woken --------------------------------------------------------------
async def bench_wakeup(url: str, trials: int, watchers: int) -> dict[str, object]:
    hosts = [f"watch-{i:03d}" for i in range(watchers)]
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=watchers + 10)) as client:
        network = (await client.post("/v2.0/networks", json={"network": {}})).json()["network"]
        await client.post("/v2.0/subnets", json={"subnet": {
            "network_id": network["id"], "cidr": "198.18.0.0/16", "ip_version": 4}})
        revision = (await client.get(f"/dvr/v1/hosts/{hosts[0]}/watch",
                                     params={"since": 0, "timeout": 0})).json()["revision"]
        woken: dict[str, asyncio.Queue] = {h: asyncio.Queue() for h in hosts}
        cursors = dict.fromkeys(hosts, revision)

        async def watcher(host: str) -> None:
            while True:
                response = await client.get(f"/dvr/v1/hosts/{host}/watch",
                                            params={"since": cursors[host], "timeout": 30})
                arrived = time.perf_counter()
                body = response.json()
                cursors[host] = body["revision"]
                if body["changes"]:
                    await woken[host].put(arrived)

        tasks = [asyncio.create_task(watcher(h)) for h in hosts]
        await asyncio.sleep(1.0)  # every watcher is parked
        to_watcher, after_response, write_ms = [], [], []
        for trial in range(trials):
            host = hosts[trial % len(hosts)]
            started = time.perf_counter()
            response = await client.post("/v2.0/ports", json={"port": {
                "network_id": network["id"], "binding:host_id": host,
                "device_owner": "compute:nova"}})
            answered = time.perf_counter()
            assert response.status_code == 201
            arrived = await asyncio.wait_for(woken[host].get(), 30)
            to_watcher.append((arrived - started) * 1000)
            after_response.append((arrived - answered) * 1000)
            write_ms.append((answered - started) * 1000)
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
    return {"watchers": watchers, "write_start_to_watcher_ms": stats(to_watcher),
            "write_response_to_watcher_ms": stats(after_response), "write_ms": stats(write_ms)}


# -- main --------------------------------------------------------------------------------
BACKENDS = ("sqlite", "postgres")
RESULTS_JSON = HERE / "results.json"
DELTA_KEYS = ("view_build_ms_per_host_before", "view_build_ms_per_host_after",
              "delta_bytes_median", "full_bytes_median")


def delta_summary(report: dict[str, Any], command: str) -> dict[str, object]:
    """The ``control_plane_deltas`` section of results.json: the headline keys (of the first
    backend measured) and every backend's figures."""
    runs = {k: v for k, v in report.items() if k in BACKENDS}
    first = next(v for v in runs.values() if "skipped" not in v)
    return {"command": command, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **{k: first[k] for k in DELTA_KEYS}, "machine": report["machine"],
            "load_average_before": report["load_average_before"],
            "load_average_after": report["load_average_after"], **runs}


def run_backend(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """The figures (``--deltas``: of deltas; else of the server) on one backend."""
    cluster = None
    if name == "postgres":
        reason = pg.unavailable_reason()
        if reason:
            return {"skipped": reason}
        cluster = pg.start_cluster(durable=True)

    def fresh_url(tag: str) -> str:
        if cluster is None:
            return f"sqlite:///{workdir / f'{tag}.db'}"
        import sqlalchemy as sa

        admin = sa.create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {tag}")
        admin.dispose()
        return cluster.url(tag)

    try:
        figures = (fanout_figures if args.fanout else delta_figures if args.deltas
                   else server_figures)
        return figures(fresh_url, args, workdir)
    finally:
        if cluster is not None:
            cluster.stop()


def server_figures(fresh_url: Callable[[str], str], args: argparse.Namespace,
                   workdir: Path) -> dict[str, object]:
    result: dict[str, object] = {}
    url = fresh_url("throughput")
    server = Server(url, workdir)
    try:
        result["port_create"] = [bench_port_create(server.url, args.ports, c)
                                 for c in args.concurrency]
        result["wakeup"] = asyncio.run(bench_wakeup(server.url, args.trials, args.watchers))
    finally:
        server.stop()
    if not args.quick:
        url = fresh_url("scale")
        started = time.perf_counter()
        result["scale"] = populate(url, external_type=args.external_type)
        result["populate_s"] = time.perf_counter() - started
        sample = [f"compute-{i:04d}" for i in range(0, 990, 99)] + ["snat-0"]
        result["hostview"] = bench_hostview(url, sample, args.repeat)
        server = Server(url, workdir)
        try:
            result["hostview_http_ms"] = bench_hostview_http(server.url, sample, args.repeat)
            result["wakeup_at_scale"] = asyncio.run(
                bench_wakeup(server.url, args.trials, args.watchers))
        finally:
            server.stop()
    return result


def delta_figures(fresh_url: Callable[[str], str], args: argparse.Namespace,
                  workdir: Path) -> dict[str, object]:
    url = fresh_url("deltas")
    started = time.perf_counter()
    scale = populate(url)
    return {"scale": scale, "populate_s": time.perf_counter() - started,
            **bench_deltas(url, args.woken, args.rounds)}


def fanout_figures(fresh_url: Callable[[str], str], args: argparse.Namespace,
                   workdir: Path) -> dict[str, object]:
    return bench_fanout(fresh_url("fanout"), args.hosts, args.rounds, args.profile)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres",
                        help="comma-separated: sqlite, postgres (default %(default)s)")
    parser.add_argument("--ports", type=int, default=1000, help="ports per throughput run")
    parser.add_argument("--concurrency", default="1,8", help="client threads, comma-separated")
    parser.add_argument("--trials", type=int, default=50, help="write->watcher trials")
    parser.add_argument("--watchers", type=int, default=50, help="parked long-polls")
    parser.add_argument("--repeat", type=int, default=10, help="HostView builds per host")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-port scenario")
    parser.add_argument("--external-type", choices=("vxlan", "flat"), default="vxlan",
                        help="segment of the scenario's external network (default vxlan)")
    parser.add_argument("--deltas", action="store_true",
                        help="only the whole-view vs delta comparison (issue 14)")
    parser.add_argument("--woken", type=int, default=100,
                        help="--deltas: woken hosts measured (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="--deltas: alternating before/after rounds; --fanout: writes "
                             "of each kind (default %(default)s)")
    parser.add_argument("--fanout", action="store_true",
                        help="only the server CPU per host a write wakes, in `make "
                             "bench-scale`'s scenario (issue 14)")
    parser.add_argument("--hosts", type=int, default=100,
                        help="--fanout: hosts of the scenario (default %(default)s)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="--fanout: cProfile the answers into this file")
    parser.add_argument("--update-results", action="store_true",
                        help=f"--deltas: store the figures under 'control_plane_deltas' in "
                             f"{RESULTS_JSON.name}")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    unknown = set(args.backends.split(",")) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(BACKENDS)}")
    report: dict[str, object] = {"machine": machine(), "load_average_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="dvr-bench-server-") as tmp:
        for backend in args.backends.split(","):
            report[backend] = run_backend(backend, args, Path(tmp))
            print(json.dumps({backend: report[backend]}, indent=1), flush=True)
    report["load_average_after"] = load_average()
    print(json.dumps(report, indent=1))
    if args.deltas and args.update_results:
        doc = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        doc["control_plane_deltas"] = delta_summary(report, " ".join(sys.argv))
        RESULTS_JSON.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
