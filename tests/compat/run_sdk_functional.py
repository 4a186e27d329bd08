"""Run openstacksdk's own functional network tests (openstack/tests/functional/network/v2 of
the installed SDK) against a private dvr-server and print the counts by scope.

    .venv/bin/python tests/compat/run_sdk_functional.py [--out artifacts/compat] [-k EXPR]

What it sets up, like a small devstack with DVR: a dvr-server on 127.0.0.1 (a free port,
SQLite in a temporary directory), two hosts registered through /dvr/v1/agents ("controller"
in dvr_snat mode, listed first as a single-node devstack's one L3 agent is, and
"hypervisor-1" in dvr mode), an external flat network "public" (203.0.113.0/24), and a
clouds.yaml whose clouds (devstack, devstack-alt, devstack-admin, devstack-system-admin) are
auth-less with only a network endpoint, so the SDK sees no Identity, Compute or Image
service. It writes <out>/sdk-network-functional.tsv (one line per test: outcome, scope,
why), the JUnit XML and the server's log, stops the server by PID, and exits 1 when an
in-scope test failed outside the known gaps (sdk_scope.KNOWN_GAPS) or no test ran.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sdk_results import (
    PACKAGE,
    CaseResult,
    exit_status,
    report,
    results_from_junit,
    write_tsv,
)

CLOUD_NAMES = ("devstack", "devstack-alt", "devstack-admin", "devstack-system-admin")


@dataclass(frozen=True)
class SeedHost:
    host: str
    agent_mode: str
    tunnel_ip: str


# agents are listed by host name: the SDK's router-scheduling test takes the first L3 agent
SEED_HOSTS = (
    SeedHost("controller", "dvr_snat", "198.18.0.1"),
    SeedHost("hypervisor-1", "dvr", "198.18.0.2"),
)
PUBLIC_CIDR = "203.0.113.0/24"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_server(state_dir: Path, log_path: Path) -> Iterator[str]:
    """A dvr-server on a free loopback port, stopped (by its PID) on exit; yields its URL."""
    port = _free_port()
    command = [
        sys.executable, "-m", "dvr.server.main",
        "--db", f"sqlite:///{state_dir / 'dvr.db'}",
        "--listen", f"127.0.0.1:{port}",
        "--state-dir", str(state_dir),
        "--agent-down-time", "86400",  # the seeded agents stay alive without heartbeats
        "--log-level", "warning",
        "--no-auth",
    ]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_serving(process, url, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_until_serving(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dvr-server exited: {log_path.read_text()}")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"dvr-server did not start: {log_path.read_text()}")


def seed_cloud(url: str) -> None:
    """The agents and the external network a devstack has before the tests start."""
    with httpx.Client(base_url=url, timeout=30) as api:
        for seed in SEED_HOSTS:
            api.post("/dvr/v1/agents", json={
                "host": seed.host, "agent_mode": seed.agent_mode, "tunnel_ip": seed.tunnel_ip,
            }).raise_for_status()
            api.post(f"/dvr/v1/hosts/{seed.host}/heartbeat", json={}).raise_for_status()
        network = api.post("/v2.0/networks", json={"network": {
            "name": "public", "router:external": True,
            "provider:network_type": "flat", "provider:physical_network": "public",
        }})
        network.raise_for_status()
        api.post("/v2.0/subnets", json={"subnet": {
            "name": "public-subnet", "network_id": network.json()["network"]["id"],
            "ip_version": 4, "cidr": PUBLIC_CIDR, "enable_dhcp": False,
        }}).raise_for_status()


def clouds_yaml(url: str) -> str:
    """Auth-less clouds with only a network endpoint (JSON is YAML)."""
    cloud = f'{{"auth_type": "none", "network_endpoint_override": "{url}"}}'
    entries = ", ".join(f'"{name}": {cloud}' for name in CLOUD_NAMES)
    return f'{{"clouds": {{{entries}}}}}\n'


def sdk_environment(inherited: Mapping[str, str], home: Path, clouds_file: Path) -> dict[str, str]:
    """Our clouds.yaml and nothing else: no inherited OS_* / OPENSTACKSDK_* settings, and a
    HOME of our own so no user's clouds.yaml or secure.yaml is merged in."""
    env = {key: value for key, value in inherited.items()
           if not key.startswith(("OS_", "OPENSTACKSDK_")) and key != "XDG_CONFIG_HOME"}
    env.update(HOME=str(home), OS_CLIENT_CONFIG_FILE=str(clouds_file), OS_CLOUD="devstack-admin")
    return env


def run_sdk_tests(work_dir: Path, clouds_file: Path, junit: Path, select: str | None) -> None:
    """pytest on the SDK's package, isolated from this repository's pytest configuration."""
    (work_dir / "pytest.ini").write_text("[pytest]\n")
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--tb=short", "--show-capture=no",
        "-c", str(work_dir / "pytest.ini"), "--rootdir", str(work_dir),
        "--junitxml", str(junit), "--pyargs", PACKAGE,
    ]
    if select:
        command += ["-k", select]
    env = sdk_environment(os.environ, work_dir, clouds_file)
    with open(work_dir / "pytest.log", "wb") as log:
        subprocess.run(command, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                       check=False, timeout=1800)
    if not junit.exists():
        tail = (work_dir / "pytest.log").read_text()[-3000:]
        raise RuntimeError(f"pytest wrote no results; the end of its output:\n{tail}")


@dataclass(frozen=True)
class CompatRun:
    server_url: str  # the private server's, stopped by now
    results: list[CaseResult]
    tsv: Path


def run(out: Path, select: str | None = None) -> CompatRun:
    """Start the server, seed it, run the SDK's tests, stop the server, write the results."""
    out = out.resolve()  # pytest runs in the temporary directory
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "sdk-network-functional.xml"
    junit.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="dvr-compat-") as tmp:
        work_dir = Path(tmp)
        with private_server(work_dir, out / "dvr-server.log") as url:
            seed_cloud(url)
            clouds_file = work_dir / "clouds.yaml"
            clouds_file.write_text(clouds_yaml(url))
            try:
                run_sdk_tests(work_dir, clouds_file, junit, select)
            finally:
                (out / "pytest.log").write_bytes((work_dir / "pytest.log").read_bytes())
    results = results_from_junit(junit.read_text())
    tsv = out / "sdk-network-functional.tsv"
    write_tsv(results, tsv)
    return CompatRun(url, results, tsv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts/compat"),
                        help="where the per-test results, JUnit XML and logs go")
    parser.add_argument("-k", dest="select", help="a pytest -k expression (default: all)")
    args = parser.parse_args(argv)
    outcome = run(args.out, args.select)
    print(f"per-test results: {outcome.tsv}")
    print(report(outcome.results))
    return exit_status(outcome.results)


if __name__ == "__main__":
    sys.exit(main())
