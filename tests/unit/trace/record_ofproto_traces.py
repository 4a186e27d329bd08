"""Record real ``ovs-appctl ofproto/trace`` texts for the unit tests (run as root).

    sudo .venv/bin/python tests/unit/trace/record_ofproto_traces.py

For every host of ``east_west_cloud()`` it starts a private OVS (``HostEnv``: its own
namespace and daemons, names prefixed ``dvrt<random>``), builds br-int/br-tun exactly as
the desired state says (VIF and router ports as internal ports, VXLAN ports with their
options, a ``br-phy`` carrying the tunnel IP so native tunnelling can route), installs the
desired flows, and asks the real switch for every switch pass of a few traces.  Then it
deletes flows on compute-2 (by cookie, the way an operator would) and asks again.  The
texts land in ``data/ofproto_traces.json`` keyed by ``variant|host|bridge|flow``.
Everything created is torn down at the end (by PID and by name).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repo root, for tests.unit...

from dvr.agent.desired.openflow import render_flow  # noqa: E402
from dvr.agent.desired.state import BridgeState, DesiredState  # noqa: E402
from dvr.lab.hostenv import HostEnv  # noqa: E402
from dvr.trace.probes import AppctlSwitchProbe  # noqa: E402
from dvr.trace.tracer import trace_packet  # noqa: E402
from dvr.trace.verify import ofproto_flow, switch_passes  # noqa: E402
from tests.unit.trace.trace_scenarios import (  # noqa: E402
    RECORDED_REQUESTS,
    deleted_variants,
    east_west_hosts,
)

OUTPUT = HERE / "data" / "ofproto_traces.json"


def flow_lines(bridge: BridgeState) -> str:
    return "\n".join(render_flow(f.table, f.priority, f.cookie, f.match, f.actions)
                     for f in sorted(bridge.flows)) + "\n"


def build_switch(env: HostEnv, state: DesiredState, tunnel_ip: str) -> None:
    env.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev")
    env.run(["ip", "addr", "add", f"{tunnel_ip}/24", "dev", "br-phy"])
    env.run(["ip", "link", "set", "br-phy", "up"])
    for bridge in state.bridges:
        env.vsctl("add-br", bridge.name, "--", "set", "bridge", bridge.name,
                  f"datapath_type={bridge.datapath_type}", f"fail_mode={bridge.fail_mode}")
    for bridge in state.bridges:
        for port in bridge.ports:
            args = ["add-port", bridge.name, port.name, "--", "set", "interface", port.name,
                    f"type={port.type or 'internal'}"]
            args += [f"options:{key}={value}" for key, value in port.options]
            if port.tag is not None:
                args += ["--", "set", "port", port.name, f"tag={port.tag}"]
            env.vsctl(*args)
        lines = flow_lines(bridge)
        subprocess.run(["ovs-ofctl", "del-flows", bridge.name], env=env.env(), check=True)
        subprocess.run(["ovs-ofctl", "add-flows", bridge.name, "-"], input=lines, text=True,
                       env=env.env(), check=True)


def record(variant: str, probe: AppctlSwitchProbe, hosts, out: dict[str, str]) -> None:
    for request in RECORDED_REQUESTS:
        trace = trace_packet(hosts, request)
        for direction in (trace, trace.reply):
            if direction is None:
                continue
            for indexes, tunnel in switch_passes(direction.steps):
                first = direction.steps[indexes[0]]
                flow = ofproto_flow(first.in_port, first.packet_in, tunnel)
                key = f"{variant}|{first.host}|{first.bridge}|{flow}"
                out[key] = probe.trace(first.host, first.bridge, flow)


def main() -> int:
    hosts = east_west_hosts()
    tag = f"dvrt{secrets.token_hex(2)}"
    root = Path("/tmp") / tag
    envs = {name: HostEnv(f"{tag}-{name[-1]}", root / name) for name in hosts}
    out: dict[str, str] = {}
    try:
        for name, env in envs.items():
            env.start()
            build_switch(env, hosts[name].state, hosts[name].view.tunnel_ip or "")
        probe = AppctlSwitchProbe(
            {name: env.rundir for name, env in envs.items()},
            lambda host, argv: (envs[host].command(argv), envs[host].env()))
        record("intact", probe, hosts, out)
        for variant, deletions in deleted_variants(hosts).items():
            for host, bridge, spec in deletions:
                subprocess.run(["ovs-ofctl", "del-flows", bridge, spec], env=envs[host].env(),
                               check=True)
            record(variant, probe, hosts, out)
            for host, _bridge, _spec in deletions:  # restore for the next variant
                build_flows_again(envs[host], hosts[host].state)
        version = subprocess.run(["ovs-vswitchd", "--version"], text=True,
                                 capture_output=True).stdout.splitlines()[0]
        OUTPUT.parent.mkdir(exist_ok=True)
        OUTPUT.write_text(json.dumps({"ovs_version": version, "traces": out}, indent=1,
                                     sort_keys=True) + "\n")
        print(f"recorded {len(out)} traces into {OUTPUT}")
    finally:
        for env in envs.values():
            env.stop()
        if root.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
    return 0


def build_flows_again(env: HostEnv, state: DesiredState) -> None:
    for bridge in state.bridges:
        lines = flow_lines(bridge)
        subprocess.run(["ovs-ofctl", "del-flows", bridge.name], env=env.env(), check=True)
        subprocess.run(["ovs-ofctl", "add-flows", bridge.name, "-"], input=lines, text=True,
                       env=env.env(), check=True)


if __name__ == "__main__":
    sys.exit(main())
