"""Operator commands: `dvr hosts`, `dvr routers`, `dvr flows`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dvr.cli.connect import server_client
from dvr.cli.table import format_table


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    hosts = subparsers.add_parser("hosts", help="hosts with mode, host MAC and liveness")
    hosts.add_argument("--json", action="store_true")
    hosts.set_defaults(handler=cmd_hosts)

    routers = subparsers.add_parser("routers", help="which routers each host hosts")
    routers.add_argument("--host", help="only this host")
    routers.add_argument("--json", action="store_true")
    routers.set_defaults(handler=cmd_routers)

    flows = subparsers.add_parser("flows", help="the desired flows of a host")
    flows.add_argument("host")
    flows.add_argument("--bridge", help="only this bridge (br-int, br-tun)")
    flows.add_argument("--explain", action="store_true",
                       help="group flows by the object that owns them")
    flows.add_argument("--json", action="store_true")
    flows.set_defaults(handler=cmd_flows)


def cmd_hosts(args: argparse.Namespace) -> int:
    with server_client(args) as client:
        hosts = client.hosts()
    if args.json:
        print(json.dumps(hosts, indent=2))
        return 0
    rows = [(h["host"], h["agent_mode"], h.get("host_mac") or "-", h.get("tunnel_ip") or "-",
             "yes" if h.get("alive") else "NO", h.get("applied_revision"),
             len(h.get("routers") or []))
            for h in hosts]
    print(format_table(("HOST", "MODE", "HOST MAC", "TUNNEL IP", "ALIVE", "APPLIED REV",
                        "ROUTERS"), rows))
    return 0


def router_placement(hosts: list[dict[str, Any]], routers: list[dict[str, Any]],
                     only_host: str | None) -> list[tuple[str, str, str]]:
    """(host, router id, router name) for every router instance, sorted by host."""
    names = {r["id"]: r.get("name") or "" for r in routers}
    return sorted(
        (h["host"], router_id, names.get(router_id, ""))
        for h in hosts if only_host in (None, h["host"])
        for router_id in h.get("routers") or []
    )


def cmd_routers(args: argparse.Namespace) -> int:
    with server_client(args) as client:
        hosts = client.hosts()
        routers = client.list("routers")
    if args.host and args.host not in {h["host"] for h in hosts}:
        raise ValueError(f"unknown host {args.host!r}")
    placement = router_placement(hosts, routers, args.host)
    if args.json:
        print(json.dumps([{"host": h, "router_id": r, "router_name": n}
                          for h, r, n in placement], indent=2))
        return 0
    print(format_table(("HOST", "ROUTER", "NAME"), placement))
    return 0


def cmd_flows(args: argparse.Namespace) -> int:
    from dvr.cli.flows import show_flows

    with server_client(args) as client:
        return show_flows(client, args)
