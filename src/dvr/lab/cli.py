"""`dvr lab ...` commands."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from dvr.cli.table import format_table
from dvr.client import ServerClient
from dvr.lab.lab import Lab, LabError
from dvr.lab.security import VmSecurity
from dvr.lab.vm import DEFAULT_PLUMBING, VmPlumbing
from dvr.model.hostview import DEFAULT_TUNNEL_LAYOUT, TUNNEL_LAYOUTS


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser("lab", help="a multi-host DVR cloud on this machine")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="dvr", help="lab name (default %(default)s)")
    common.add_argument("--api-port", type=int, default=9696,
                        help="port of the lab's API on 127.0.0.1 (default %(default)s)")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return lab_sub.add_parser(name, parents=[common], **kw)

    up = command("up", help="build the lab and start the server and agents")
    up.add_argument("--computes", type=int, default=2, help="compute hosts (default 2)")
    up.add_argument("--vm-plumbing", type=VmPlumbing, choices=list(VmPlumbing),
                    default=DEFAULT_PLUMBING, metavar="{tap,veth}",
                    help="a VM's NIC and a host's uplinks to the fabric: an OVS tap port "
                         "moved into the VM (the fabric), or a veth pair (default "
                         "%(default)s; `vm add` follows the lab's choice)")
    up.add_argument("--tunnel-layout", choices=TUNNEL_LAYOUTS, default=DEFAULT_TUNNEL_LAYOUT,
                    help="the agents keep br-tun's tables on a bridge of their own (bridge, "
                         "Neutron's layout) or folded into br-int (folded: one bridge fewer "
                         "per host; default %(default)s)")
    up.set_defaults(handler=cmd_up)

    status = command("status", help="hosts, VMs, routers and how to reach the API")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    env = command("env", help='shell exports for the lab\'s API and admin token: '
                               'eval "$(dvr lab env)"')
    env.set_defaults(handler=cmd_env)

    exe = command("exec", help="run a command in a lab host or VM")
    exe.add_argument("target", help="host (compute-1, network-1, outside) or VM (blue-1)")
    exe.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD ...")
    exe.set_defaults(handler=cmd_exec)

    ping = command("ping", help="ping from a VM (or outside) to a VM, outside or an IP")
    ping.add_argument("source")
    ping.add_argument("destination")
    ping.add_argument("-c", "--count", type=int, default=3)
    ping.set_defaults(handler=cmd_ping)

    vm = lab_sub.add_parser("vm", help="add or delete a VM")
    vm_sub = vm.add_subparsers(dest="vm_command", metavar="VM_COMMAND", required=True)
    vm_add = vm_sub.add_parser("add", parents=[common], help="create a VM port and plug it")
    vm_add.add_argument("vm_name")
    vm_add.add_argument("--network", required=True)
    vm_add.add_argument("--host", required=True)
    vm_add.add_argument("--security-group", action="append", default=[], metavar="GROUP",
                        help="also put the VM in this group (name or id; repeatable); every "
                             "VM is in 'default' and 'demo-web'")
    vm_add.add_argument("--no-port-security", action="store_true",
                        help="no firewall and no anti-spoofing for this VM (no groups)")
    vm_add.set_defaults(handler=cmd_vm_add)
    vm_del = vm_sub.add_parser("del", parents=[common], help="unplug a VM, delete its port")
    vm_del.add_argument("vm_name")
    vm_del.set_defaults(handler=cmd_vm_del)
    vm_move = vm_sub.add_parser("move", parents=[common],
                                help="live-migrate a VM: replug it on HOST, rebind its port")
    vm_move.add_argument("vm_name")
    vm_move.add_argument("--host", required=True)
    vm_move.set_defaults(handler=cmd_vm_move)

    fip = command("fip", help="give a VM a floating IP on the external network (or remove it)")
    fip.add_argument("vm_name")
    fip.add_argument("--delete", action="store_true", help="remove the VM's floating IPs")
    fip.set_defaults(handler=cmd_fip)

    restart = command("restart-agent", help="restart the agent of a lab host")
    restart.add_argument("host")
    restart.add_argument("--tunnel-layout", choices=TUNNEL_LAYOUTS, default=None,
                         help="switch the running host to this layout (default: keep its own)")
    restart.set_defaults(handler=cmd_restart_agent)

    down = command("down", help="remove everything the lab made")
    down.set_defaults(handler=cmd_down)


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(name=args.name, api_port=args.api_port, out=lambda m: print(f"» {m}", flush=True))


def _guard(func):
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except LabError as exc:
            print(f"dvr lab: {exc}", file=sys.stderr)
            return 1
    return wrapper


@_guard
def cmd_up(args: argparse.Namespace) -> int:
    lab = _lab(args)
    lab.up(args.computes, args.vm_plumbing, args.tunnel_layout)
    print()
    print(render_status(lab_status(lab)))
    return 0


def lab_status(lab: Lab) -> dict:
    record = lab.record()
    with ServerClient(lab.agent_server) as client:
        hosts = {h["host"]: h for h in client.hosts()}
        routers = client.list("routers")
        ports = {p["id"]: p for p in client.list("ports", device_owner="compute:nova")}
        fips = client.list("floatingips")
    vm_by_port = {v.port_id: v for v in record.vms.values()}
    return {
        "lab": lab.name,
        "api": f"http://127.0.0.1:{record.api_port}",
        "vm_plumbing": record.vm_plumbing.value,
        "tunnel_layout": record.tunnel_layout,
        "openstack": 'eval "$(dvr lab env)"; openstack',
        "hosts": [{"host": h.name, "mode": h.mode, "tunnel_ip": h.tunnel_ip,
                   "tunnel_layout": record.layout_of(h),
                   "host_mac": hosts.get(h.name, {}).get("host_mac"),
                   "alive": bool(hosts.get(h.name, {}).get("alive")),
                   "routers": hosts.get(h.name, {}).get("routers", [])}
                  for h in record.hosts.values()],
        "vms": [{"vm": v.name, "host": v.host, "network": v.network, "ip": v.ip_address,
                 "mac": v.mac_address, "port_id": v.port_id,
                 "status": ports.get(v.port_id, {}).get("status", "MISSING")}
                for v in record.vms.values()],
        "routers": [{"id": r["id"], "name": r["name"], "distributed": r.get("distributed"),
                     "hosts": sorted(n for n, h in hosts.items()
                                     if r["id"] in h.get("routers", [])),
                     "gateway_ips": [ip["ip_address"] for ip in
                                     (r.get("external_gateway_info") or {}).get(
                                         "external_fixed_ips", [])]}
                    for r in routers],
        "floating_ips": [{"floating_ip": f["floating_ip_address"],
                          "vm": vm_by_port[f["port_id"]].name
                          if f.get("port_id") in vm_by_port else None,
                          "fixed_ip": f.get("fixed_ip_address"),
                          "host": vm_by_port[f["port_id"]].host
                          if f.get("port_id") in vm_by_port else None}
                         for f in sorted(fips, key=lambda f: f["floating_ip_address"])],
        "outside": ({"host": "outside", "netns": record.outside_netns,
                     "address": record.outside_cidr, "segment": "external (br-ex on every host)"}
                    if record.outside_cidr else None),
    }


HINT_HOST = "compute-1"  # the host the status's hints dump


def _tunnels(layout: str) -> str:
    return "br-tun folded into br-int" if layout == "folded" else "br-tun"


def render_status(status: dict) -> str:
    layouts = {h["host"]: h.get("tunnel_layout", status["tunnel_layout"])
               for h in status["hosts"]}
    folded = layouts.get(HINT_HOST, status["tunnel_layout"]) == "folded"
    tunnels = _tunnels(status["tunnel_layout"]) + "".join(
        f"; {_tunnels(layout)} on {host}" for host, layout in layouts.items()
        if layout != status["tunnel_layout"])
    lines = [f"Lab {status['lab']!r} — API {status['api']} — VM NICs: "
             f"{status['vm_plumbing']} — tunnels: {tunnels}", ""]
    lines.append(format_table(("HOST", "MODE", "TUNNEL IP", "HOST MAC", "ALIVE", "ROUTERS"), [
        (h["host"], h["mode"], h["tunnel_ip"], h["host_mac"] or "-",
         "yes" if h["alive"] else "NO", len(h["routers"])) for h in status["hosts"]]))
    lines.append("")
    lines.append(format_table(("VM", "HOST", "NETWORK", "IP", "MAC", "STATUS"), [
        (v["vm"], v["host"], v["network"], v["ip"], v["mac"], v["status"])
        for v in status["vms"]]))
    lines.append("")
    lines.append(format_table(("ROUTER", "ID", "DISTRIBUTED", "GATEWAY IP", "HOSTED ON"), [
        (r["name"], r["id"], r["distributed"], ", ".join(r["gateway_ips"]) or "-",
         ", ".join(r["hosts"]) or "-")
        for r in status["routers"]]))
    if status.get("floating_ips"):
        lines.append("")
        lines.append(format_table(("FLOATING IP", "VM", "FIXED IP", "HOST"), [
            (f["floating_ip"], f["vm"] or "-", f["fixed_ip"] or "-", f["host"] or "-")
            for f in status["floating_ips"]]))
    if status.get("outside"):
        outside = status["outside"]
        lines += ["", f"Outside host: {outside['host']} {outside['address']} on the external "
                      f"segment (br-ex on every host); `dvr lab exec outside -- CMD`"]
    lines += ["", "Try:",
              "  dvr lab ping blue-1 orange-1    # routed on compute-1, straight to compute-2",
              "  dvr trace blue-1 orange-1       # the path, flow by flow",
              f"  dvr lab exec {HINT_HOST} -- ovs-ofctl dump-flows "
              + ("br-int  # br-tun's: table 200 up" if folded else "br-tun"),
              f"  {status['openstack']} router list",
              "  dvr lab down                    # remove everything"]
    return "\n".join(lines)


def env_exports(api_url: str, token: str) -> str:
    """Shell lines that point the unchanged openstack CLI, openstacksdk's
    ``openstack.connect()`` and the dvr CLI at a server with its admin token."""
    values = {"OS_AUTH_TYPE": "admin_token", "OS_TOKEN": token, "OS_ENDPOINT": api_url,
              "DVR_SERVER": api_url, "DVR_TOKEN": token}
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


@_guard
def cmd_env(args: argparse.Namespace) -> int:
    lab = _lab(args)
    record = lab.record()
    token = lab.admin_token()
    if token is None:
        raise LabError(f"lab {lab.name!r} has no admin token ({lab.paths.admin_token})")
    print(env_exports(f"http://127.0.0.1:{record.api_port}", token), end="")
    return 0


@_guard
def cmd_status(args: argparse.Namespace) -> int:
    status = lab_status(_lab(args))
    print(json.dumps(status, indent=2) if args.json else render_status(status))
    return 0


@_guard
def cmd_exec(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise LabError("give a command: dvr lab exec NAME -- CMD ...")
    return _lab(args).exec(args.target, argv)


@_guard
def cmd_ping(args: argparse.Namespace) -> int:
    return _lab(args).ping(args.source, args.destination, args.count)


@_guard
def cmd_vm_add(args: argparse.Namespace) -> int:
    if args.no_port_security and args.security_group:
        raise LabError("--security-group needs port security (drop --no-port-security)")
    security = VmSecurity(tuple(args.security_group), not args.no_port_security)
    vm = _lab(args).vm_add(args.vm_name, args.network, args.host, security)
    print(f"{vm.name}: {vm.ip_address} ({vm.mac_address}) on {vm.host}, port {vm.port_id}")
    return 0


@_guard
def cmd_vm_del(args: argparse.Namespace) -> int:
    _lab(args).vm_del(args.vm_name)
    print(f"deleted {args.vm_name}")
    return 0


@_guard
def cmd_vm_move(args: argparse.Namespace) -> int:
    vm = _lab(args).vm_move(args.vm_name, args.host)
    print(f"{vm.name}: {vm.ip_address} ({vm.mac_address}) now on {vm.host}")
    return 0


@_guard
def cmd_fip(args: argparse.Namespace) -> int:
    lab = _lab(args)
    if args.delete:
        removed = lab.fip_delete(args.vm_name)
        if not removed:
            raise LabError(f"{args.vm_name} has no floating IP")
        print("\n".join(removed))
        return 0
    print(lab.fip_add(args.vm_name))
    return 0


@_guard
def cmd_restart_agent(args: argparse.Namespace) -> int:
    _lab(args).restart_agent(args.host, args.tunnel_layout)
    return 0


@_guard
def cmd_down(args: argparse.Namespace) -> int:
    _lab(args).down()
    return 0
