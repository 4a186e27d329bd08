"""An OVN 23.03 reference lab, built like dvr's lab so the two can be measured side by side.

Same machine, same fabric (``dvr.lab.fabric``: a Linux bridge in its own namespace, each
host's tunnel IP on its ``br-phy``, MTU 1500, TX checksum offload off towards OVS), same
hosts (``dvr.lab.hostenv``: a namespace with its own ovsdb-server and userspace
ovs-vswitchd, ``datapath_type=netdev``), same plumbing of the VMs and of the hosts' uplinks
(``dvr.lab.plumbing``: tap or veth).
What differs is the control plane and the encapsulation:

- central: NB and SB ``ovsdb-server``s and ``ovn-northd`` in the root namespace, with the
  lab's own rundir; the databases listen on unix sockets in that rundir (a socket path
  reaches them from every host namespace, where 127.0.0.1 would be the host's own
  loopback) and on ``127.0.0.1:<port>`` for a person's ``ovn-nbctl``;
- every host: ``ovn-controller`` inside the host, on the host's own OVS, Geneve between
  hosts (``ovn-encap-ip`` = the host's tunnel IP);
- logical topology: switches ``blue`` and ``orange`` with dvr's lab CIDRs, one logical
  router ``r`` between them (OVN routes it in the source host's datapath pass), the VMs
  where the dvr bench puts them; with ``firewall``, every VM in a port group with the
  stateful ACLs of a default security group (dvr's lab VMs are in security groups);
  ``idle_vms``: more VMs on a switch of their own (``idle``, no router), so that each host
  polls as many VM NICs as in the dvr lab it is compared with.

The VMs' MTU is 1442, not dvr's 1450: Geneve with OVN's option carries 58 bytes of
overhead against VXLAN's 50, and 1442 is what Neutron's OVN driver gives a tenant network
on a 1500-byte underlay.

Everything started is recorded (by PID and start time) in ``<workdir>/ovnlab.json`` before
it is used; ``down()`` stops it by PID and removes every namespace and file, also after a
crash (a new ``OvnLab`` on the same workdir finds the record).

    sudo .venv/bin/python bench/ovnlab.py up|down [--workdir DIR] [--vm-plumbing tap|veth]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dvr.lab.fabric import Fabric, cleanup_fabric
from dvr.lab.hostenv import HostEnv, HostEnvError, cleanup
from dvr.lab.procs import ProcessRef, poll_until, start_daemon, stop_process
from dvr.lab.topology import UNDERLAY, UNDERLAY_FIRST_HOST
from dvr.lab.vm import DEFAULT_PLUMBING, VmPlug, VmPlumbing, plug_commands, vm_namespace

OVN_SHARE = Path("/usr/share/ovn")
MANIFEST = "ovnlab.json"
GENEVE_MTU = 1442  # 1500 - 58 (outer Ethernet, IPv4, UDP, Geneve, OVN's 8-byte option)
ROUTER = "r"
PORT_GROUP = "pg_default"  # with ``firewall``: every VM port, like a default security group


@dataclass(frozen=True)
class OvnNetwork:
    name: str
    cidr: str

    @property
    def gateway_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.cidr).hosts()))

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen


@dataclass(frozen=True)
class OvnVm:
    name: str
    network: str
    host: str
    index: int  # its address: the index-th host address of the subnet after the first 9

    def mac(self, network_index: int) -> str:
        return f"0a:00:00:{network_index:02x}:00:{self.index:02x}"


NETWORKS = (OvnNetwork("blue", "192.0.2.0/24"), OvnNetwork("orange", "198.51.100.0/24"))
HOSTS = ("compute-1", "compute-2")
# the dvr bench's placement (bench_dataplane: the default lab plus blue-3 on compute-2)
VMS = (OvnVm("blue-1", "blue", "compute-1", 1), OvnVm("blue-2", "blue", "compute-2", 2),
       OvnVm("blue-3", "blue", "compute-2", 3), OvnVm("orange-1", "orange", "compute-2", 1))


def tunnel_ip(host_index: int) -> str:
    return str(UNDERLAY.network_address + UNDERLAY_FIRST_HOST + host_index)


# the switch of ``idle_vms`` (not routed: they only make the hosts' VM NICs as many as dvr's)
IDLE_NETWORK = OvnNetwork("idle", "198.19.22.0/24")


def network(name: str) -> OvnNetwork:
    return next(n for n in (*NETWORKS, IDLE_NETWORK) if n.name == name)


def vm_ip(vm: OvnVm) -> str:
    return str(ipaddress.ip_network(network(vm.network).cidr).network_address + 9 + vm.index)


def port_args(switch: str, port: str, mac: str, ip: str) -> list[str]:
    """``ovn-nbctl`` arguments (one transaction) adding a VM's port with its addresses."""
    return ["lsp-add", switch, port, "--", "lsp-set-addresses", port, f"{mac} {ip}"]


class OvnLabError(RuntimeError):
    pass


class OvnLab:
    def __init__(self, name: str, workdir: Path, plumbing: VmPlumbing = DEFAULT_PLUMBING,
                 nb_port: int = 16641, firewall: bool = False,
                 out: Callable[[str], None] = print,
                 idle_vms: Sequence[tuple[str, str]] = ()):
        self.name = name
        self.firewall = firewall  # stateful ACLs on every VM, like dvr's security groups
        # (name, host) of VMs on the ``idle`` switch: as many VM NICs per host as dvr's lab
        self.idle_vms = tuple(OvnVm(vm, IDLE_NETWORK.name, host, index)
                              for index, (vm, host) in enumerate(idle_vms, start=1))
        self.workdir = workdir.absolute()
        self.plumbing = plumbing
        self.nb_port = nb_port
        self.out = out

    # -- names and paths ---------------------------------------------------------------------
    @property
    def central(self) -> Path:
        return self.workdir / "central"

    def socket(self, db: str) -> Path:
        return self.central / f"{db}.sock"

    def host_netns(self, host: str) -> str:
        return f"ovnlab-{self.name}-{host}"

    @property
    def fabric_netns(self) -> str:
        return f"ovnlab-{self.name}-fabric"

    def host_env(self, host: str) -> HostEnv:
        return HostEnv(self.host_netns(host), self.workdir / "hosts" / host)

    def nbctl(self, *args: str) -> str:
        return _run(["ovn-nbctl", f"--db=unix:{self.socket('nb')}", "--timeout=30",
                     *args]).stdout

    def vm_command(self, vm: str, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """The command line (and environment) that runs argv in VM ``vm``."""
        placed = {v.name: v for v in VMS}[vm]
        env = self.host_env(placed.host)
        return env.command(["ip", "netns", "exec", vm_namespace(vm), *argv]), env.env()

    def vm_ip(self, vm: str) -> str:
        return vm_ip({v.name: v for v in VMS}[vm])

    # -- the record ---------------------------------------------------------------------------
    def _manifest(self) -> dict:
        try:
            return json.loads((self.workdir / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}

    def _record(self, key: str, ref: ProcessRef) -> None:
        data = self._manifest()
        data.setdefault("processes", {})[key] = ref.as_dict()
        (self.workdir / MANIFEST).write_text(json.dumps(data, indent=1))

    def _daemon(self, key: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        ref = start_daemon(argv, self.workdir / "logs" / f"{key}.log", env=env)
        self._record(key, ref)

    # -- up -------------------------------------------------------------------------------------
    def up(self) -> None:
        self.down(quiet=True)  # whatever an earlier run left
        self.workdir.mkdir(parents=True)
        (self.workdir / MANIFEST).write_text(json.dumps({
            "name": self.name, "plumbing": self.plumbing.value,
            "hosts": {h: self.host_netns(h) for h in HOSTS}, "fabric": self.fabric_netns}))
        try:
            self._start_central()
            self._start_hosts()
            self._create_topology()
        except BaseException:
            self.out(f"the OVN lab failed; what it looked like:\n{self.diagnosis()}")
            self.down(quiet=True)
            raise

    def diagnosis(self) -> str:
        """What a failed start looked like: chassis and bindings, the daemons' last words."""
        parts = []
        for argv in (["ovn-sbctl", f"--db=unix:{self.socket('sb')}", "--timeout=5", "show"],
                     ["ovn-nbctl", f"--db=unix:{self.socket('nb')}", "--timeout=5", "show"]):
            result = subprocess.run(argv, text=True, capture_output=True, check=False)
            parts.append(f"$ {' '.join(argv[:1] + argv[2:])}\n{result.stdout}{result.stderr}")
        logs = [*sorted((self.workdir / "logs").glob("*.log")),
                *sorted((self.workdir / "hosts").glob("*/ovn-controller.log")),
                *sorted((self.workdir / "hosts").glob("*/ovs-vswitchd.log"))]
        for log in logs:
            try:
                tail = log.read_text(errors="replace").splitlines()[-15:]
            except OSError:
                continue
            parts.append(f"--- {log}\n" + "\n".join(tail))
        return "\n".join(parts)

    def _start_central(self) -> None:
        self.out("starting OVN NB/SB ovsdb-servers and ovn-northd")
        self.central.mkdir(parents=True)
        for index, db in enumerate(("nb", "sb")):
            path = self.central / f"{db}.db"
            _run(["ovsdb-tool", "create", str(path), str(OVN_SHARE / f"ovn-{db}.ovsschema")])
            self._daemon(f"ovsdb-{db}", [
                "ovsdb-server", str(path), f"--remote=punix:{self.socket(db)}",
                f"--remote=ptcp:{self.nb_port + index}:127.0.0.1",
                f"--unixctl={self.central / f'ovsdb-{db}.ctl'}", "--no-chdir"])
        for db in ("nb", "sb"):
            _wait(self.socket(db).exists, f"the {db} database socket")
        self._daemon("ovn-northd", [
            "ovn-northd", f"--ovnnb-db=unix:{self.socket('nb')}",
            f"--ovnsb-db=unix:{self.socket('sb')}",
            f"--unixctl={self.central / 'ovn-northd.ctl'}", "--no-chdir"])

    def _start_hosts(self) -> None:
        fabric = Fabric(self.fabric_netns, self.workdir / "fabric", plumbing=self.plumbing)
        fabric.start()
        for index, host in enumerate(HOSTS):
            ip = tunnel_ip(index)
            self.out(f"starting OVN host {host} (tunnel {ip}, Geneve)")
            env = self.host_env(host)
            env.start()
            fabric.attach(env, ip)
            env.vsctl("--may-exist", "add-br", "br-int", "--", "set", "bridge", "br-int",
                      "datapath_type=netdev", "fail_mode=secure",
                      "other_config:disable-in-band=true")
            env.vsctl("set", "Open_vSwitch", ".", f"external_ids:system-id={host}",
                      f"external_ids:ovn-remote=unix:{self.socket('sb')}",
                      "external_ids:ovn-encap-type=geneve", f"external_ids:ovn-encap-ip={ip}",
                      "external_ids:ovn-bridge=br-int",
                      "external_ids:ovn-bridge-datapath-type=netdev")
            # ovn-controller takes no --unixctl: its control socket goes to OVN_RUNDIR
            rundir = env.workdir
            self._daemon(f"ovn-controller-{host}", env.command([
                "ovn-controller", env.ovsdb, f"--log-file={rundir / 'ovn-controller.log'}",
                "--no-chdir"]), env=env.env() | {"OVN_RUNDIR": str(rundir)})

    def _create_topology(self) -> None:
        self.out(f"logical router {ROUTER} between switches "
                 f"{' and '.join(n.name for n in NETWORKS)}")
        self.nbctl("lr-add", ROUTER)
        for index, net in enumerate(NETWORKS):
            self.nbctl("ls-add", net.name)
            self.nbctl("lrp-add", ROUTER, f"{ROUTER}-{net.name}", f"0a:00:00:{index:02x}:ff:01",
                       f"{net.gateway_ip}/{net.prefixlen}")
            port = f"{net.name}-{ROUTER}"
            self.nbctl("lsp-add", net.name, port, "--", "lsp-set-type", port, "router",
                       "--", "lsp-set-addresses", port, "router",
                       "--", "lsp-set-options", port, f"router-port={ROUTER}-{net.name}")
        if self.idle_vms:
            self.nbctl("ls-add", IDLE_NETWORK.name)
        for vm in self.vms:
            self._add_vm(vm)
        if self.firewall:
            self._add_default_group()
        self.out("waiting for every host to program its ports")
        self.nbctl("--wait=hv", "sync")
        _wait(lambda: all(self.nbctl("lsp-get-up", vm.name).strip() == "up"
                          for vm in self.vms), "every VM port to be up", timeout=60)

    @property
    def vms(self) -> tuple[OvnVm, ...]:
        """Every VM of the lab: the measured ones, then the idle ones."""
        return VMS + self.idle_vms

    def _add_default_group(self) -> None:
        """Every VM in one port group with the ACLs Neutron's OVN driver makes of a default
        security group: all IPv4 out, IPv4 in from the group's members, both stateful
        (``allow-related``), any other IP dropped: the firewall dvr's lab VMs have."""
        group = PORT_GROUP
        self.out(f"port group {group}: stateful ACLs like a default security group")
        self.nbctl("pg-add", group, *(vm.name for vm in self.vms))
        for direction, port, extra in (("from-lport", "inport", ""),
                                       ("to-lport", "outport", f" && ip4.src == ${group}_ip4")):
            self.nbctl("acl-add", group, direction, "1002",
                       f"{port} == @{group} && ip4{extra}", "allow-related")
            self.nbctl("acl-add", group, direction, "1001", f"{port} == @{group} && ip", "drop")

    def _add_vm(self, vm: OvnVm) -> None:
        switches = (*NETWORKS, IDLE_NETWORK)
        index = next(i for i, n in enumerate(switches) if n.name == vm.network)
        net = switches[index]
        mac = vm.mac(index)
        self.out(f"VM {vm.name} ({vm_ip(vm)}) on {vm.host}, {self.plumbing.value} NIC")
        self.nbctl(*port_args(net.name, vm.name, mac, vm_ip(vm)))
        env = self.host_env(vm.host)
        plug = VmPlug(name=vm.name, port_id=vm.name, mac_address=mac, ip_address=vm_ip(vm),
                      cidr=net.cidr, gateway_ip=net.gateway_ip, mtu=GENEVE_MTU,
                      ovsdb=env.ovsdb, plumbing=self.plumbing)
        for argv in plug_commands(plug):
            env.run(argv)

    def new_port_args(self, switch: str, port: str, mac: str, ip: str) -> list[str]:
        """``ovn-nbctl`` arguments (one transaction) adding a port after ``up()``: with its
        addresses and, with ``firewall``, in the VMs' port group (as Neutron's OVN driver
        puts a new port in its security group's port group in the same transaction)."""
        args = port_args(switch, port, mac, ip)
        if self.firewall:
            args += ["--", "pg-set-ports", PORT_GROUP, *(vm.name for vm in self.vms), port]
        return args

    # -- down -----------------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> None:
        """Stop what the record names (controllers first), remove hosts, fabric, files."""
        manifest = self._manifest()
        if not manifest and not self.workdir.exists():
            return
        if not quiet:
            self.out(f"taking the OVN lab {self.name!r} down")
        processes = manifest.get("processes", {})
        for key in sorted(processes, key=lambda k: not k.startswith("ovn-controller")):
            stop_process(ProcessRef.from_dict(processes[key]))
        for host, netns in manifest.get("hosts", {}).items():
            cleanup(netns, self.workdir / "hosts" / host)
        if manifest.get("fabric"):
            cleanup_fabric(manifest["fabric"], self.workdir / "fabric")
        shutil.rmtree(self.workdir, ignore_errors=True)


def _run(argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), text=True, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise OvnLabError(f"{' '.join(argv)} failed ({result.returncode}): "
                          f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def _wait(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    if not poll_until(check, timeout, 0.1):
        raise OvnLabError(f"timed out after {timeout:.0f}s waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("up", "down"))
    p.add_argument("--name", default="ovn")
    p.add_argument("--workdir", type=Path, default=Path("/var/lib/dvr-lab-ovn/ovn"))
    p.add_argument("--vm-plumbing", type=VmPlumbing, choices=list(VmPlumbing),
                   default=DEFAULT_PLUMBING)
    args = p.parse_args(argv)
    lab = OvnLab(args.name, args.workdir, args.vm_plumbing)
    try:
        lab.up() if args.action == "up" else lab.down()
    except (OvnLabError, HostEnvError) as exc:
        print(f"ovnlab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
