"""Implementations of the tracer's ports (``verify.SwitchProbe``, ``verify.NamespaceProbe``)
and what a lab tells the tracer about its external segment: I/O lives here.

``AppctlSwitchProbe`` runs ``ovs-appctl -t <rundir>/ovs-vswitchd.<pid>.ctl ofproto/trace
<bridge> <flow>`` (docs/design.md §3: with a private run directory, ovs-appctl needs the control
socket named explicitly).  ``lab_probe(lab)`` builds one for the hosts of a ``dvr lab``
(each host's run directory is its workdir; the command runs inside the host);
``local_probe(host)`` answers for the switch of the machine it runs on only.  The same
probe asks a host's kernel about a namespace (``ip -j route get``, ``nft -j list
ruleset`` through ``ip netns exec``).  ``lab_segment(lab)`` gives the lab's outside host
(its MAC read from its interface), the external bridge's uplink port and the bridge
mappings the lab gives its agents.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dvr.trace.steps import ExternalHost
from dvr.trace.verify import ProbeError

DEFAULT_RUNDIR = Path("/var/run/openvswitch")
# (host, argv) -> (argv to run, environment or None)
CommandWrapper = Callable[[str, list[str]], tuple[list[str], dict[str, str] | None]]


def vswitchd_control_socket(rundir: Path) -> Path:
    """``<rundir>/ovs-vswitchd.<pid>.ctl`` of the daemon whose pidfile is in ``rundir``."""
    pidfile = rundir / "ovs-vswitchd.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ProbeError(f"no running ovs-vswitchd in {rundir} ({exc})") from None
    return rundir / f"ovs-vswitchd.{pid}.ctl"


def _unwrapped(host: str, argv: list[str]) -> tuple[list[str], dict[str, str] | None]:
    return argv, None


class AppctlSwitchProbe:
    """``ofproto/trace`` through ovs-appctl, for hosts whose OVS run directory is known."""

    def __init__(self, rundirs: Mapping[str, Path], wrap: CommandWrapper = _unwrapped,
                 timeout: float = 15.0) -> None:
        self.rundirs = dict(rundirs)
        self.wrap = wrap
        self.timeout = timeout

    def _rundir(self, host: str) -> Path:
        rundir = self.rundirs.get(host)
        if rundir is None:
            raise ProbeError(f"cannot reach host {host!r} from here "
                             f"(known: {', '.join(sorted(self.rundirs)) or 'none'})")
        return rundir

    def _run(self, host: str, argv: list[str], what: str) -> str:
        command, env = self.wrap(host, argv)
        try:
            result = subprocess.run(command, env=env, text=True, capture_output=True,
                                    timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ProbeError(f"{what} on {host} timed out") from None
        if result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise ProbeError(f"{what} on {host} failed: "
                             f"{message[-1] if message else result.returncode}")
        return result.stdout

    def trace(self, host: str, bridge: str, flow: str, ct_next: tuple[str, ...] = ()) -> str:
        control = vswitchd_control_socket(self._rundir(host))
        options = [arg for state in ct_next for arg in ("--ct-next", state)]
        return self._run(host, ["ovs-appctl", "-t", str(control), "ofproto/trace", *options,
                                bridge, flow], "ofproto/trace")

    def route_get(self, host: str, namespace: str, destination: str, source: str,
                  in_device: str) -> str:
        self._rundir(host)
        return self._run(host, ["ip", "netns", "exec", namespace, "ip", "-j", "route", "get",
                                destination, "from", source, "iif", in_device],
                         f"ip route get in {namespace}")

    def nat_ruleset(self, host: str, namespace: str) -> str:
        self._rundir(host)
        return self._run(host, ["ip", "netns", "exec", namespace, "nft", "-j", "list",
                                "ruleset"], f"nft list ruleset in {namespace}")


def lab_probe(lab_name: str) -> AppctlSwitchProbe:
    """The switches of the hosts of lab ``lab_name`` (raises ``LabError`` if it is not up)."""
    from dvr.lab.lab import Lab

    lab = Lab(lab_name)
    record = lab.record()
    rundirs = {name: Path(host.workdir) for name, host in record.hosts.items()}

    def inside(host: str, argv: list[str]) -> tuple[list[str], dict[str, str] | None]:
        command, env = lab.target_command(host, argv)
        return command, env

    return AppctlSwitchProbe(rundirs, inside)


def local_probe(host: str | None = None, rundir: Path = DEFAULT_RUNDIR) -> AppctlSwitchProbe:
    """The switch of this machine, answering for ``host`` (default: this hostname)."""
    return AppctlSwitchProbe({host or socket.gethostname(): rundir})


@dataclass(frozen=True)
class LabSegment:
    """What the tracer needs to know of a lab's external segment."""

    external_hosts: tuple[ExternalHost, ...] = ()
    uplinks: Mapping[str, str] = field(default_factory=dict)  # bridge -> its uplink port
    bridge_mappings: Mapping[str, str] = field(default_factory=dict)  # physnet -> bridge


def lab_segment(lab_name: str) -> LabSegment:
    """The outside host of lab ``lab_name`` (raises ``LabError`` if it is not up)."""
    from dvr.lab import fabric
    from dvr.lab.lab import Lab
    from dvr.lab.topology import EXTERNAL_PHYSNET, OUTSIDE_HOST

    lab = Lab(lab_name)
    record = lab.record()
    hosts: tuple[ExternalHost, ...] = ()
    if record.outside_cidr:
        command, env = lab.target_command(
            OUTSIDE_HOST, ["cat", f"/sys/class/net/{fabric.OUTSIDE_LINK}/address"])
        try:
            result = subprocess.run(command, env=env, text=True, capture_output=True,
                                    timeout=10)
            mac = result.stdout.strip().lower() if result.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            mac = None
        hosts = (ExternalHost(OUTSIDE_HOST, record.outside_ip, mac or None),)
    return LabSegment(hosts, {fabric.EXTERNAL_BRIDGE: fabric.HOST_EXTERNAL_UPLINK},
                      {EXTERNAL_PHYSNET: fabric.EXTERNAL_BRIDGE})
