"""`make bench-scale`: what a real host adds to the figures of the control plane alone.

With ``--agents loop`` the simulated hosts take every view as applied.  A real host also
reconciles it: the full ``HostDataplane`` (desired-state compute, diff, apply) on its own
CPU, in parallel with every other host, so its reconcile adds once to each latency figure.
Measured here on a sample of hosts' views fetched from the server, each reconciled by a
fresh ``HostDataplane`` on the fake drivers, in this thread's CPU milliseconds:

- ``first_sync``: the host's first view (an agent's start: the sync of all);
- ``resync``: the same view fetched again (after a server restart the agent gets its full
  view again, unchanged);
- ``change``: the view after one small change, a port created on one of the host's
  networks (a tenant network when it has one) bound to another host (what most hosts a
  port creation wakes see); the port is deleted again.

Nothing starts at import; ``summary`` and ``with_host_compute`` are pure.
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
from benchlib import percentile

from dvr.agent.config import AgentConfig
from dvr.agent.dataplane import HostDataplane
from dvr.agent.drivers.fake import fake_drivers
from dvr.client import ServerClient
from dvr.model.hostview import HostView

KINDS = ("first_sync", "resync", "change")
# the figure (results.json key without the _N suffix) -> the reconcile a real host adds to it
ADDS_TO = {"sync_all_s": "first_sync", "restart_resync_s": "resync",
           "fanout_small_p99_s": "change", "fanout_big_p99_s": "change"}


def reconcile_cpu_ms(dataplane: HostDataplane, view: HostView) -> float:
    """This thread's CPU for one reconcile (ms); a reconcile with errors is no measurement."""
    started = time.thread_time()
    outcome = dataplane.reconcile(view)
    spent = (time.thread_time() - started) * 1000
    if outcome.errors:
        raise RuntimeError(f"reconcile of {view.host} failed: {outcome.errors[:3]}")
    return spent


def changed_network(view: HostView, every_host_network: str) -> str:
    """The network of the change: a tenant network of the view, else the every-host one."""
    tenant = sorted(n.id for n in view.networks
                    if not n.external and n.id != every_host_network)
    return tenant[0] if tenant else every_host_network


def measure_host(client: ServerClient, api: httpx.Client, spec: tuple[str, str, str],
                 elsewhere: str, every_host_network: str) -> dict[str, Any]:
    """The three reconciles of one host (``spec``: name, mode, tunnel IP), the change's port
    bound to host ``elsewhere``."""
    host, mode, local_ip = spec
    config = AgentConfig(host=host, server=client.server, mode=mode,
                         local_ip=local_ip, datapath="system").validate()
    dataplane = HostDataplane(config, fake_drivers())
    view = client.host_view(host)
    figures: dict[str, Any] = {"host": host, "mode": mode, "ports": len(view.ports),
                               "networks": len(view.networks), "routers": len(view.routers)}
    figures["first_sync"] = reconcile_cpu_ms(dataplane, view)
    figures["resync"] = reconcile_cpu_ms(dataplane, client.host_view(host))
    body = {"port": {"network_id": changed_network(view, every_host_network),
                     "binding:host_id": elsewhere, "device_owner": "compute:nova",
                     "port_security_enabled": False}}
    response = api.post("/v2.0/ports", json=body)
    response.raise_for_status()
    try:
        figures["change"] = reconcile_cpu_ms(dataplane, client.host_view(host))
    finally:
        api.delete(f"/v2.0/ports/{response.json()['port']['id']}").raise_for_status()
    return figures


def host_compute(url: str, token: str, hosts: list[tuple[str, str, str]],
                 computes: list[str], every_host_network: str, sample: int,
                 rng: random.Random) -> dict[str, Any]:
    """``sample`` hosts' reconciles (``measure_host``) and their ``summary``."""
    chosen = sample_hosts(hosts, sample, rng)
    with (ServerClient(url, token, timeout=120) as client,
          httpx.Client(base_url=url, headers={"X-Auth-Token": token}, timeout=120) as api):
        measured = [measure_host(client, api, spec,
                                 rng.choice([h for h in computes if h != spec[0]]),
                                 every_host_network)
                    for spec in chosen]
    return {**summary(measured), "hosts": measured}


def sample_hosts(hosts: list[tuple[str, str, str]], sample: int,
                 rng: random.Random) -> list[tuple[str, str, str]]:
    """``sample`` hosts (name, mode, tunnel IP) at random, one of each agent mode among them
    (the few ``dvr_snat`` hosts have the most to compute: every router's SNAT namespace)."""
    by_mode: dict[str, list[tuple[str, str, str]]] = {}
    for spec in hosts:
        by_mode.setdefault(spec[1], []).append(spec)
    chosen = [rng.choice(specs) for _, specs in sorted(by_mode.items())][:sample]
    rest = [spec for spec in hosts if spec not in chosen]
    return chosen + rng.sample(rest, min(len(rest), sample - len(chosen)))


def summary(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 and max CPU ms of each kind of reconcile over the sampled hosts."""
    figures: dict[str, Any] = {"sampled": len(measured)}
    for kind in KINDS:
        values = [m[kind] for m in measured]
        figures[f"{kind}_ms_p50"] = percentile(values, 50)
        figures[f"{kind}_ms_max"] = max(values, default=None)
    return figures


def with_host_compute(keys: dict[str, Any], compute: dict[str, Any]) -> dict[str, Any]:
    """The latency figures (unsuffixed keys) with the slowest sampled host's reconcile of
    the matching kind added (``ADDS_TO``); None where either is missing."""
    added = {}
    for key, kind in ADDS_TO.items():
        value, extra_ms = keys.get(key), compute.get(f"{kind}_ms_max")
        added[key] = None if value is None or extra_ms is None else value + extra_ms / 1000
    return added
