"""Integration fixtures: real lab hosts (HostEnv: netns + private /run/netns + own OVS) on a
real fabric, and helpers to apply hand-written DesiredStates with the real drivers.

Every test here is marked ``root`` and skipped, with the reason, when not root or when the
OVS/iproute2 tools are missing.  Every name created starts with ``dvrt<4 hex>`` (unique per
run); finalizers stop everything and assert that no namespace or process is left behind.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane_support import (
    TwoHosts,
    assert_nothing_left,
    prerequisites_missing,
    processes_mentioning,
    root_namespaces,
)

from dvr.lab.fabric import Fabric
from dvr.lab.handmade import TwoHostNames, two_host_cloud
from dvr.lab.hostenv import HostEnv

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    reason = prerequisites_missing()
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.root)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"dvrt{secrets.token_hex(2)}"


@pytest.fixture(scope="session")
def workroot(run_id: str) -> Iterator[Path]:
    root = Path("/tmp") / run_id  # short: unix socket paths are limited to 108 bytes
    root.mkdir(parents=True, exist_ok=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def unique_names(run_id: str) -> Iterator[str]:
    """A fresh short prefix per use: ``dvrt1a2b-3``."""
    return (f"{run_id}-{n}" for n in itertools.count(1))


@pytest.fixture
def host(unique_names, workroot) -> Iterator[HostEnv]:
    """One lab host of its own (netns + private /run/netns + own OVS), nothing left after."""
    prefix = next(unique_names)
    env = HostEnv(f"{prefix}-h", workroot / prefix / "h")
    try:
        env.start()
        yield env
    finally:
        env.stop()
        assert root_namespaces(prefix) == []
        assert processes_mentioning(f"dvrhost-{prefix}") == []
        assert processes_mentioning(str(workroot / prefix)) == []


@pytest.fixture
def two_hosts(unique_names, workroot: Path) -> Iterator[TwoHosts]:
    prefix = next(unique_names)
    workdir = workroot / prefix.rsplit("-", 1)[1]
    names = TwoHostNames(host_a=f"{prefix}-a", host_b=f"{prefix}-b")
    cloud = two_host_cloud(names)
    hosts = {name: HostEnv(name, workdir / name[-1]) for name in (names.host_a, names.host_b)}
    fabric = Fabric(f"{prefix}-fab", workdir / "fab")
    lab = TwoHosts(prefix, workdir, hosts, fabric, cloud)
    try:
        fabric.start()
        for host in cloud.hosts:
            hosts[host.name].start()
            fabric.attach(hosts[host.name], host.tunnel_ip)
        yield lab
    finally:
        fabric.stop()
        for host in hosts.values():
            host.stop()
        assert_nothing_left(prefix, workdir)
        assert not workdir.exists() or not any(workdir.iterdir()), list(workdir.iterdir())
