"""`dvr lab`: a multi-host DVR cloud on one Linux machine.

The lab plays the parts around dvr: it runs the unchanged server (in the root namespace,
on 127.0.0.1:<port> and a unix socket), builds hosts (each a network namespace with a
private /run/netns and its own OVS daemons, see ``hostenv``) on an underlay fabric, runs
the unchanged agent in every host, creates every cloud object through the server's API,
and plugs VMs (namespaces) into br-int as a hypervisor would.  It records what it made in
``lab.json`` after every step, so `down` can remove it all, even after a crash half-way.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dvr.agent.config import credential_toml
from dvr.client import ServerClient, ServerError, read_token_file
from dvr.lab import fabric as fabric_mod
from dvr.lab.hostenv import HostEnv, cleanup, delete_netns
from dvr.lab.procs import ProcessRef, is_alive, poll_until, start_daemon, stop_process
from dvr.lab.security import (
    DEMO_WEB,
    LAB_VM,
    VmSecurity,
    ensure_demo_web,
    find_group,
    port_body,
)
from dvr.lab.state import (
    HostRecord,
    LabPaths,
    LabRecord,
    VmRecord,
    url_reaches_lab,
    write_private_file,
)
from dvr.lab.topology import (
    EXTERNAL_PHYSNET,
    OUTSIDE_HOST,
    TENANT_MTU,
    LabTopology,
    default_topology,
    validate_lab_name,
)
from dvr.lab.vm import (
    DEFAULT_PLUMBING,
    VmPlug,
    VmPlumbing,
    plug_commands,
    unplug_commands,
    vm_namespace,
)
from dvr.model.hostview import DEFAULT_TUNNEL_LAYOUT, TUNNEL_LAYOUTS

NETNS_PREFIX = "dvrlab-"
Printer = Callable[[str], None]


class LabError(RuntimeError):
    pass


def wait_until(check: Callable[[], bool], what: str, timeout: float,
               interval: float = 0.1) -> None:
    if not poll_until(check, timeout, interval):
        raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")


def loopback_port_in_use(port: int) -> bool:
    """Whether a TCP listener already holds 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def lab_serving(server_url: str, base: Path | None = None) -> Lab | None:
    """The running lab whose API ``server_url`` is, if any (so `dvr trace --verify` against
    http://127.0.0.1:9696 checks the lab's switches without being told ``--lab``)."""
    base = base or LabPaths.base_dir()
    for record_path in sorted(base.glob("*/lab.json")):
        try:
            lab = Lab(record_path.parent.name, base=base)
            record = lab.paths.load()
        except (ValueError, OSError, TypeError):
            continue  # not a lab directory of ours, or a record being rewritten
        if (record is not None and lab.is_up(record)
                and url_reaches_lab(server_url, record.api_port, lab.paths.server_socket)):
            return Lab(lab.name, api_port=record.api_port, base=base)
    return None


class Lab:
    def __init__(self, name: str = "dvr", api_port: int = 9696, base: Path | None = None,
                 out: Printer = print):
        self.name = validate_lab_name(name)
        self.api_port = api_port
        self.paths = LabPaths.for_lab(name, base)
        self.out = out

    # -- names ------------------------------------------------------------------------------
    def host_netns(self, host: str) -> str:
        return f"{NETNS_PREFIX}{self.name}-{host}"

    @property
    def fabric_netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}-fabric"

    @property
    def outside_netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}-{OUTSIDE_HOST}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def agent_server(self) -> str:
        return f"unix:{self.paths.server_socket}"

    def record(self) -> LabRecord:
        record = self.paths.load()
        if record is None:
            raise LabError(f"lab {self.name!r} is not up (no {self.paths.record})")
        return record

    def host_env(self, record: HostRecord) -> HostEnv:
        return HostEnv(record.netns, record.workdir)

    def client(self) -> ServerClient:
        """A client over the server's unix socket: trusted, so it acts as admin."""
        return ServerClient(self.agent_server)

    def admin_token(self) -> str | None:
        """The lab server's admin token (None: the lab has none, e.g. it is not up)."""
        try:
            return read_token_file(self.paths.admin_token)
        except FileNotFoundError:
            return None

    # -- up -----------------------------------------------------------------------------------
    def up(self, computes: int = 2, plumbing: VmPlumbing = DEFAULT_PLUMBING,
           tunnel_layout: str = DEFAULT_TUNNEL_LAYOUT) -> LabRecord:
        existing = self.paths.load()
        if self.is_up(existing):
            if (existing.computes, existing.api_port, existing.vm_plumbing,
                    existing.tunnel_layout) != (computes, self.api_port, plumbing,
                                                tunnel_layout):
                raise LabError(f"lab {self.name!r} is already up with {existing.computes} "
                               f"computes on port {existing.api_port}, "
                               f"{existing.vm_plumbing.value} VM plumbing, tunnel layout "
                               f"{existing.tunnel_layout}; `dvr lab down` first")
            self.out(f"lab {self.name!r} is already up")
            return existing
        if existing is not None:
            self.out("cleaning up what an earlier run left behind")
            self.down(quiet=True)
        topology = default_topology(self.name, computes)
        if loopback_port_in_use(self.api_port):
            raise LabError(f"127.0.0.1:{self.api_port} is in use (another dvr-server or lab?); "
                           f"choose another with --api-port")
        record = LabRecord(name=self.name, api_port=self.api_port, computes=computes,
                           fabric_netns=self.fabric_netns, vm_plumbing=plumbing,
                           tunnel_layout=tunnel_layout)
        self.paths.save(record)
        started = time.monotonic()
        self._start_server(record)
        self._build_hosts(record, topology)
        self._start_agents(record)
        with self.client() as client:
            self._create_cloud(client, record, topology)
            for vm in topology.vms:
                self._add_vm(client, record, vm.name, vm.network, vm.host)
            self._wait_ports_active(client, record, list(record.vms))
        record.complete = True
        self.paths.save(record)
        self.out(f"lab {self.name!r} is up in {time.monotonic() - started:.1f}s")
        return record

    def is_up(self, record: LabRecord | None = None) -> bool:
        """Whether this lab is fully up with its server running."""
        record = record or self.paths.load()
        return record is not None and record.complete and self._server_alive(record)

    def _server_alive(self, record: LabRecord) -> bool:
        ref = record.server_process
        return ref is not None and is_alive(ref)

    def _start_server(self, record: LabRecord) -> None:
        self.out(f"starting dvr-server on {self.api_url} and {self.paths.server_socket}")
        self.paths.server_socket.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "dvr.server.main",
                "--db", f"sqlite:///{self.paths.database}",
                "--listen", f"127.0.0.1:{self.api_port}",
                "--listen", f"unix:{self.paths.server_socket}",
                "--state-dir", str(self.paths.root)]  # its admin token: <state-dir>/admin-token
        ref = start_daemon(argv, self.paths.server_log)
        record.server = ref.as_dict()
        self.paths.save(record)

        def ready() -> bool:
            if not is_alive(ref):
                raise LabError(f"dvr-server exited; see {self.paths.server_log}")
            try:
                with self.client() as c:
                    c.get("/")
                return True
            except Exception:  # not answering yet
                return False

        wait_until(ready, "dvr-server to answer", 30)
        if self.admin_token() is None:
            raise LabError(f"dvr-server made no admin token at {self.paths.admin_token}")

    def _build_hosts(self, record: LabRecord, topology: LabTopology) -> None:
        self.out("building the underlay fabric (198.18.0.0/24) and the external segment")
        fabric = fabric_mod.Fabric(self.fabric_netns, self.paths.root / "fabric",
                                   plumbing=record.vm_plumbing)
        fabric.start()
        record.outside_netns, record.outside_cidr = self.outside_netns, topology.outside_cidr
        self.paths.save(record)
        self.out(f"starting the outside host at {topology.outside_cidr} on the external segment")
        fabric.add_outside_host(record.outside_netns, record.outside_cidr)
        for index, host in enumerate(topology.hosts):
            self.out(f"starting host {host.name} ({host.mode}, tunnel {host.tunnel_ip})")
            rec = HostRecord(name=host.name, mode=host.mode, tunnel_ip=host.tunnel_ip,
                             netns=self.host_netns(host.name),
                             workdir=str(self.paths.host_dir(host.name)))
            record.hosts[host.name] = rec
            self.paths.save(record)
            env = self.host_env(rec)
            env.start()
            rec.fabric_port = fabric.attach(env, host.tunnel_ip).fabric_port
            self.paths.save(record)
            fabric.attach_external(env, index)

    def _write_agent_config(self, client: ServerClient, host: HostRecord) -> None:
        """Mint the host's own credential (admin, over the trusted socket) and write it as
        the agent's settings file, mode 0600."""
        credential = client.create_host_credential(host.name)
        if not credential.token:
            raise LabError(f"the server minted no token for {host.name}")
        write_private_file(self.paths.agent_config(host.name),
                           credential_toml(host.name, credential.token))

    def _agent_argv(self, host: HostRecord, tunnel_layout: str) -> list[str]:
        return [sys.executable, "-m", "dvr.agent.main",
                "--config", str(self.paths.agent_config(host.name)),
                "--server", self.agent_server, "--mode", host.mode,
                "--local-ip", host.tunnel_ip, "--ovs-rundir", host.workdir,
                "--heartbeat-interval", "5",
                "--bridge-mappings", f"{EXTERNAL_PHYSNET}:{fabric_mod.EXTERNAL_BRIDGE}",
                "--tunnel-layout", tunnel_layout]

    def _start_agent(self, record: LabRecord, host: HostRecord) -> None:
        env = self.host_env(host)
        ref = start_daemon(env.command(self._agent_argv(host, record.layout_of(host))),
                           Path(host.workdir) / "agent.log", env=env.env())
        host.agent = ref.as_dict()
        self.paths.save(record)

    def _start_agents(self, record: LabRecord) -> None:
        with self.client() as client:
            for host in record.hosts.values():
                self.out(f"starting dvr-agent on {host.name} with its own credential")
                self._write_agent_config(client, host)
                self._start_agent(record, host)

            def all_alive() -> bool:
                hosts = {h["host"]: h for h in client.hosts()}
                return all(hosts.get(n, {}).get("alive") and hosts[n].get("host_mac")
                           for n in record.hosts)
            wait_until(all_alive, "every agent to register", 30)

    def _create_cloud(self, client: ServerClient, record: LabRecord,
                      topology: LabTopology) -> None:
        subnets: dict[str, str] = {}
        for net in topology.networks:
            self.out(f"creating network {net.name} {net.cidr}")
            network = client.create("networks", "network", net.api_body())
            subnet = client.create("subnets", "subnet", net.subnet_body(network["id"]))
            subnets[net.name] = subnet["id"]
        self.out(f"creating distributed router {topology.router}")
        router = client.create("routers", "router",
                               {"name": topology.router, "distributed": True})
        record.router_id = router["id"]
        for net in topology.router_networks:
            client.add_router_interface(router["id"], subnets[net])
        external = topology.external_network
        self.out(f"giving {topology.router} an external gateway on {external.name}")
        external_id = client.list("networks", name=external.name)[0]["id"]
        client.update("routers", "router", router["id"], {
            "external_gateway_info": {"network_id": external_id}})
        self.paths.save(record)

    # -- VMs ----------------------------------------------------------------------------------
    def _network_and_subnet(self, client: ServerClient, network: str) -> tuple[dict, dict]:
        found = client.list("networks", name=network)
        if not found:
            raise LabError(f"no network named {network!r}")
        subnets = client.list("subnets", network_id=found[0]["id"], ip_version=4)
        if not subnets:
            raise LabError(f"network {network!r} has no IPv4 subnet")
        return found[0], subnets[0]

    def _group_ids(self, client: ServerClient, security: VmSecurity) -> list[str]:
        ids = []
        for wanted in security.wanted_groups:
            group_id = ensure_demo_web(client) if wanted == DEMO_WEB else find_group(client, wanted)
            if group_id is None:
                raise LabError(f"no security group {wanted!r}")
            ids.append(group_id)
        return ids

    def _add_vm(self, client: ServerClient, record: LabRecord, name: str, network: str,
                host: str, security: VmSecurity = LAB_VM) -> VmRecord:
        if name in record.vms:
            raise LabError(f"a VM named {name!r} exists already")
        if host not in record.hosts:
            raise LabError(f"no lab host {host!r} (hosts: {', '.join(record.hosts)})")
        net, subnet = self._network_and_subnet(client, network)
        self.out(f"creating VM {name} on {host} in {network}")
        port = client.create("ports", "port", {
            "name": name, "network_id": net["id"], "device_owner": "compute:nova",
            "device_id": name, "binding:host_id": host,
            "fixed_ips": [{"subnet_id": subnet["id"]}],
            **port_body(security, self._group_ids(client, security))})
        ip = port["fixed_ips"][0]["ip_address"]
        vm = VmRecord(name=name, host=host, network=network, port_id=port["id"],
                      ip_address=ip, mac_address=port["mac_address"])
        record.vms[name] = vm
        self.paths.save(record)
        self._plug(record, vm, net, subnet, host)
        return vm

    def _plug(self, record: LabRecord, vm: VmRecord, net: dict, subnet: dict,
              host: str) -> None:
        env = self.host_env(record.hosts[host])
        plug = VmPlug(name=vm.name, port_id=vm.port_id, mac_address=vm.mac_address,
                      ip_address=vm.ip_address, cidr=subnet["cidr"],
                      gateway_ip=subnet.get("gateway_ip"),
                      mtu=min(net.get("mtu") or TENANT_MTU, TENANT_MTU), ovsdb=env.ovsdb,
                      plumbing=record.vm_plumbing)
        for argv in plug_commands(plug):
            env.run(argv)

    def _wait_ports_active(self, client: ServerClient, record: LabRecord,
                           names: list[str]) -> None:
        wanted = {record.vms[n].port_id for n in names}

        def active() -> bool:
            return all(client.show("ports", "port", p)["status"] == "ACTIVE" for p in wanted)

        wait_until(active, f"ports of {', '.join(names)} to become ACTIVE", 30)

    def vm_add(self, name: str, network: str, host: str,
               security: VmSecurity = LAB_VM) -> VmRecord:
        record = self.record()
        with self.client() as client:
            vm = self._add_vm(client, record, name, network, host, security)
            self._wait_ports_active(client, record, [name])
        return vm

    def vm_del(self, name: str) -> None:
        record = self.record()
        vm = record.vms.get(name)
        if vm is None:
            raise LabError(f"no VM named {name!r}")
        env = self.host_env(record.hosts[vm.host])
        for argv in unplug_commands(name, vm.port_id, env.ovsdb):
            env.run(argv, check=False)
        with self.client() as client:
            try:
                client.delete("ports", vm.port_id)
            except ServerError as exc:
                if exc.status != 404:
                    raise
        del record.vms[name]
        self.paths.save(record)

    def vm_move(self, name: str, host: str) -> VmRecord:
        """Live-migrate a VM the way Nova does: plug it on ``host`` (same MAC and IP), rebind
        its port there through the API, then unplug it from the old host."""
        record = self.record()
        vm = record.vms.get(name)
        if vm is None:
            raise LabError(f"no VM named {name!r}")
        if host not in record.hosts:
            raise LabError(f"no lab host {host!r} (hosts: {', '.join(record.hosts)})")
        if host == vm.host:
            raise LabError(f"{name} is on {host} already")
        old = record.hosts[vm.host]
        with self.client() as client:
            net, subnet = self._network_and_subnet(client, vm.network)
            self.out(f"moving VM {name} from {vm.host} to {host}")
            self._plug(record, vm, net, subnet, host)
            client.update("ports", "port", vm.port_id, {"binding:host_id": host})
            old_env = self.host_env(old)
            for argv in unplug_commands(name, vm.port_id, old_env.ovsdb):
                old_env.run(argv, check=False)
            vm.host = host
            self.paths.save(record)
            self._wait_ports_active(client, record, [name])
        return vm

    # -- floating IPs -----------------------------------------------------------------------
    def _external_network(self, client: ServerClient) -> dict:
        found = client.list("networks", **{"router:external": "true"})
        if not found:
            raise LabError("the lab has no external network")
        return found[0]

    def fip_add(self, vm_name: str) -> str:
        """Create a floating IP on the external network for a VM's port; its address."""
        record = self.record()
        vm = record.vms.get(vm_name)
        if vm is None:
            raise LabError(f"no VM named {vm_name!r}")
        with self.client() as client:
            network = self._external_network(client)
            try:
                fip = client.create("floatingips", "floatingip", {
                    "floating_network_id": network["id"], "port_id": vm.port_id})
            except ServerError as exc:
                raise LabError(f"cannot give {vm_name} a floating IP: {exc}") from None
        return fip["floating_ip_address"]

    def fip_delete(self, vm_name: str) -> list[str]:
        """Delete every floating IP of a VM's port; their addresses."""
        record = self.record()
        vm = record.vms.get(vm_name)
        if vm is None:
            raise LabError(f"no VM named {vm_name!r}")
        with self.client() as client:
            fips = client.list("floatingips", port_id=vm.port_id)
            for fip in fips:
                client.delete("floatingips", fip["id"])
        return sorted(f["floating_ip_address"] for f in fips)

    # -- operations ---------------------------------------------------------------------------
    def target_command(self, target: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """The command line (and environment) that runs argv in a lab host or VM."""
        record = self.record()
        if target in record.hosts:
            env = self.host_env(record.hosts[target])
            return env.command(argv), env.env()
        if target in record.vms:
            vm = record.vms[target]
            env = self.host_env(record.hosts[vm.host])
            return env.command(["ip", "netns", "exec", vm_namespace(target), *argv]), env.env()
        if target == OUTSIDE_HOST and record.outside_netns:
            return ["ip", "netns", "exec", record.outside_netns, *argv], dict(os.environ)
        raise LabError(f"no lab host or VM named {target!r}")

    def exec(self, target: str, argv: list[str]) -> int:
        command, env = self.target_command(target, argv)
        return subprocess.run(command, env=env).returncode

    def resolve_ip(self, name_or_ip: str) -> str:
        record = self.record()
        if name_or_ip in record.vms:
            return record.vms[name_or_ip].ip_address
        if name_or_ip == OUTSIDE_HOST and record.outside_cidr:
            return record.outside_ip
        try:
            return str(ipaddress.ip_address(name_or_ip))
        except ValueError:
            raise LabError(f"{name_or_ip!r} is neither a lab VM nor an IP address") from None

    def ping(self, source: str, destination: str, count: int = 3) -> int:
        record = self.record()
        if source not in record.vms and source != OUTSIDE_HOST:
            raise LabError(f"no VM named {source!r} (a VM or {OUTSIDE_HOST!r})")
        ip = self.resolve_ip(destination)
        return self.exec(source, ["ping", "-c", str(count), "-W", "1", "-i", "0.2", ip])

    def restart_agent(self, host: str, tunnel_layout: str | None = None) -> None:
        """Restart ``host``'s agent; with ``tunnel_layout``, the agent switches the running
        host to that layout (its first pass moves br-tun's ports, docs/design.md §11)."""
        record = self.record()
        if host not in record.hosts:
            raise LabError(f"no lab host {host!r}")
        if tunnel_layout is not None and tunnel_layout not in TUNNEL_LAYOUTS:
            raise LabError(f"tunnel layout must be one of {', '.join(TUNNEL_LAYOUTS)}, "
                           f"not {tunnel_layout!r}")
        rec = record.hosts[host]
        stop_process(ProcessRef.from_dict(rec.agent))
        if tunnel_layout is not None:
            rec.tunnel_layout = "" if tunnel_layout == record.tunnel_layout else tunnel_layout
        self._start_agent(record, rec)
        self.out(f"restarted dvr-agent on {host} (tunnels: {record.layout_of(rec)})")

    # -- down -----------------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> None:
        record = self.paths.load()
        if record is None:
            if not quiet:
                self.out(f"lab {self.name!r} is not up")
            return
        for host in record.hosts.values():
            stop_process(ProcessRef.from_dict(host.agent))
        stop_process(record.server_process)
        for host in record.hosts.values():
            cleanup(host.netns, host.workdir)
        delete_netns(record.outside_netns or self.outside_netns)
        fabric_mod.cleanup_fabric(record.fabric_netns or self.fabric_netns,
                                  self.paths.root / "fabric")
        self.paths.server_socket.unlink(missing_ok=True)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        if not quiet:
            self.out(f"lab {self.name!r} is down")

