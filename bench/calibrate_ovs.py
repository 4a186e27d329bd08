"""Calibration: what this machine's userspace OVS forwards right now with no dvr at all.

One lab host (its own netns and OVS, ``dvrcal<4 hex>``), one netdev bridge with the
switch's own NORMAL flow, two "VMs" (namespaces, veth, MTU 1450, TX checksum off) on it,
``iperf3 -t SECONDS`` between them, ``--runs`` times.  Compare with path i of
bench_dataplane.py (same subnet, same host through dvr's br-int): the difference is what
dvr's pipeline costs; the absolute figure says how busy or slow the machine is today.

    sudo .venv/bin/python bench/calibrate_ovs.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

from benchlib import conditions, fmt, summary

from dvr.lab.hostenv import HostEnv


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    args = p.parse_args()
    if not (1 <= args.runs <= 10 and 1 <= args.seconds <= 60):
        p.error("--runs 1..10, --seconds 1..60")
    prefix = f"dvrcal{secrets.token_hex(2)}"
    workdir = Path("/tmp") / prefix
    env = HostEnv(f"{prefix}-h", workdir / "h")
    vms = {f"{prefix}-vm1": "192.0.2.1", f"{prefix}-vm2": "192.0.2.2"}
    results = []
    before = conditions("")
    try:
        env.start()
        env.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
        for i, (ns, ip) in enumerate(vms.items(), start=1):
            env.run(["sh", "-c", "; ".join([
                "set -e", f"ip netns add {ns}", f"ip -n {ns} link set lo up",
                f"ip link add tap{i} mtu 1450 type veth peer name v{i} mtu 1450",
                f"ip link set v{i} netns {ns}", f"ip -n {ns} link set v{i} up",
                f"ip -n {ns} addr add {ip}/24 dev v{i}",
                f"ip netns exec {ns} ethtool -K v{i} tx off >/dev/null",
                f"ip link set tap{i} up"])])
            env.vsctl("add-port", "br0", f"tap{i}")
        client_ns, server_ns = list(vms)
        time.sleep(1.0)
        for run in range(args.runs):
            server = subprocess.Popen(
                env.command(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p",
                             "5999"]), env=env.env(), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                out = env.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", vms[server_ns],
                               "-p", "5999", "-t", str(args.seconds), "-J"],
                              timeout=args.seconds + 60).stdout
            finally:
                if server.poll() is None:
                    server.terminate()
                server.wait(timeout=10)
            sent = json.loads(out)["end"]["sum_sent"]
            results.append((sent["bits_per_second"] / 1e9, float(sent["retransmits"])))
            print(f"run {run + 1}: {results[-1][0]:.3f} Gbit/s, {results[-1][1]:.0f} "
                  "retransmits", flush=True)
    finally:
        if env.is_running():
            for ns in vms:
                env.run(["ip", "netns", "del", ns], check=False)
        env.stop()
        try:
            workdir.rmdir()
        except OSError:
            pass
    print(f"before: {json.dumps(before)}\nafter:  {json.dumps(conditions(''))}")
    print(f"| one netdev bridge, NORMAL, same host | "
          f"{fmt(summary([g for g, _ in results]), ' Gbit/s', 3)} | "
          f"retransmits {fmt(summary([r for _, r in results]), '', 0)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
