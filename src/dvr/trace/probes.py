"""Implementations of the tracer's one switch port (``verify.SwitchProbe``): I/O lives here.

``AppctlSwitchProbe`` runs ``ovs-appctl -t <rundir>/ovs-vswitchd.<pid>.ctl ofproto/trace
<bridge> <flow>`` (docs/design.md §3: with a private run directory, ovs-appctl needs the control
socket named explicitly).  ``lab_probe(lab)`` builds one for the hosts of a ``dvr lab``
(each host's run directory is its workdir; the command runs inside the host);
``local_probe(host)`` answers for the switch of the machine it runs on only.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

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

    def trace(self, host: str, bridge: str, flow: str) -> str:
        rundir = self.rundirs.get(host)
        if rundir is None:
            raise ProbeError(f"cannot reach the switch of host {host!r} from here "
                             f"(known: {', '.join(sorted(self.rundirs)) or 'none'})")
        control = vswitchd_control_socket(rundir)
        argv, env = self.wrap(host, ["ovs-appctl", "-t", str(control), "ofproto/trace",
                                     bridge, flow])
        try:
            result = subprocess.run(argv, env=env, text=True, capture_output=True,
                                    timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ProbeError(f"ofproto/trace on {host} timed out") from None
        if result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise ProbeError(f"ofproto/trace on {host} failed: "
                             f"{message[-1] if message else result.returncode}")
        return result.stdout


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
