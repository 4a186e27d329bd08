"""Random API changes to a small cloud, through any of several server processes: networks
with subnets, distributed routers, ports bound to random hosts, created, moved, updated and
deleted (what wakes agents: their own ports, L2 population, router interfaces)."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dvr.client import ServerClient, ServerError


@dataclass
class Cloud:
    clients: Sequence[ServerClient]  # one per server process; each change picks one
    hosts: Sequence[str]
    seed: int
    networks: list[tuple[str, str]] = field(default_factory=list)  # (network id, subnet id)
    routers: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def build(self, networks: int, routers: int) -> None:
        """``networks`` networks with a subnet each; every other one routed, by ``routers``
        distributed routers in turn."""
        rng = random.Random(self.seed)
        for n in range(networks):
            net = rng.choice(self.clients).create("networks", "network", {"name": f"net-{n}"})
            subnet = rng.choice(self.clients).create("subnets", "subnet", {
                "network_id": net["id"], "ip_version": 4, "cidr": f"198.18.{n}.0/24"})
            self.networks.append((net["id"], subnet["id"]))
        for r in range(routers):
            router = rng.choice(self.clients).create(
                "routers", "router", {"name": f"router-{r}", "distributed": True})
            self.routers.append(router["id"])
        for i, (_, subnet_id) in enumerate(self.networks):
            if i % 2 == 0:
                rng.choice(self.clients).add_router_interface(self.routers[i // 2 % routers],
                                                              subnet_id)

    def random_changes(self, count: int, writers: int = 4) -> None:
        """``count`` changes by ``writers`` concurrent API clients (as tenants make them)."""
        with ThreadPoolExecutor(writers) as pool:
            done = [pool.submit(self._changes, count // writers + (k < count % writers),
                                random.Random(self.seed * 1000 + len(self.ports) + k))
                    for k in range(writers)]
            for future in done:
                future.result()

    def _changes(self, count: int, rng: random.Random) -> None:
        for _ in range(count):
            self._change(rng)

    def _change(self, rng: random.Random) -> None:
        """One change: mostly new ports, some moved to another host, renamed or deleted."""
        client = rng.choice(self.clients)
        with self._lock:
            roll = rng.random() if len(self.ports) >= 10 else 0.0
            if 0.85 <= roll:
                target = self.ports.pop(rng.randrange(len(self.ports)))
            elif 0.55 <= roll:
                target = rng.choice(self.ports)
        if roll < 0.55:
            network_id, _ = rng.choice(self.networks)
            port = client.create("ports", "port", {
                "network_id": network_id, "binding:host_id": rng.choice(self.hosts),
                "device_owner": "compute:nova"})
            with self._lock:
                self.ports.append(port["id"])
        elif roll < 0.75:
            self._update_unless_deleted(client, target,
                                        {"binding:host_id": rng.choice(self.hosts)})
        elif roll < 0.85:
            self._update_unless_deleted(client, target,
                                        {"name": f"renamed-{rng.randrange(10**6)}"})
        else:
            client.delete("ports", target)

    def _update_unless_deleted(self, client: ServerClient, port_id: str,
                               body: dict[str, Any]) -> None:
        """Update a port another writer may be deleting meanwhile (as two tenants may): a
        404 for a port that writer took is its answer; any other error is one."""
        try:
            client.update("ports", "port", port_id, body)
        except ServerError as exc:
            with self._lock:
                deleted_by_another = port_id not in self.ports
            if not (exc.status == 404 and deleted_by_another):
                raise
