"""`dvr trace SRC DST`: a packet's path across hosts, from the server's data.

The server gives every host's HostView (and, when it keeps them, what the host's agent
reported: plugged VIFs and local VLANs); the agent's own pure functions turn those into
the host's desired state, and the pure tracer walks the packet through it.  Only the hosts
the packet visits are fetched.  ``--verify`` then replays every switch pass with
``ovs-appctl ofproto/trace`` on the real switch: the hosts of ``--lab NAME`` (by default the
running lab whose API ``--server`` is), or the switch of the machine the command runs on.

Exit status: 0 delivered (and, with --verify, the real switches agree), 1 dropped,
3 the real switches disagree with the computed path, 4 some steps could not be verified.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from typing import Any

from dvr.cli.connect import server_client
from dvr.cli.server_state import fetch_host_state
from dvr.client import ServerClient
from dvr.hoststate import assumed_note, describe_owner
from dvr.trace.endpoints import is_ip
from dvr.trace.hosts import HostData, LazyHostData
from dvr.trace.ofsim import CT_ESTABLISHED, CT_NEW
from dvr.trace.probes import LabSegment, lab_segment
from dvr.trace.render import render_text, trace_to_dict
from dvr.trace.steps import PROTOCOLS, ExternalHost, Trace, TraceRequest
from dvr.trace.tracer import trace_packet
from dvr.trace.verify import SwitchProbe, verify_trace

EXIT_DELIVERED = 0
EXIT_DROPPED = 1
EXIT_DISAGREES = 3
EXIT_UNVERIFIED = 4


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trace", help="trace a packet across hosts through the desired flows and namespaces",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SRC",
                        help="VM name (port name/device_id), port id, or a lab's outside host")
    parser.add_argument("destination", metavar="DST",
                        help="VM name, port id, IP address (a floating IP too) or outside")
    parser.add_argument("--proto", choices=PROTOCOLS, default="icmp")
    parser.add_argument("--dport", type=int, help="destination port (tcp/udp)")
    parser.add_argument("--ct", choices=(CT_NEW, CT_ESTABLISHED), default=CT_NEW,
                        help="the connection state the firewalls' conntrack finds (default: "
                             "new, the first packet)")
    parser.add_argument("--no-reply", action="store_true",
                        help="do not trace the answer back")
    parser.add_argument("--verify", action="store_true",
                        help="replay each OpenFlow step on the real switch (ofproto/trace) and "
                             "each namespace step in the kernel (ip route get, nft)")
    parser.add_argument("--lab", metavar="NAME",
                        help="use the dvr lab NAME: its server, and its hosts' switches for "
                             "--verify (default: the running lab serving --server)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.set_defaults(handler=cmd_trace)


# --- inputs from the server -----------------------------------------------------------------


def _port_matches(port: dict[str, Any], ident: str) -> bool:
    return ident in (port.get("name"), port.get("device_id"))


def resolve_port(ports: list[dict[str, Any]], ident: str) -> dict[str, Any] | None:
    """The port named ``ident`` (id, name or device_id); ValueError when ambiguous."""
    by_id = [p for p in ports if p.get("id") == ident]
    if by_id:
        return by_id[0]
    named = [p for p in ports if _port_matches(p, ident)]
    if len(named) > 1:
        ids = ", ".join(sorted(p["id"] for p in named))
        raise ValueError(f"{ident!r} names {len(named)} ports ({ids}): give a port id")
    return named[0] if named else None


def port_with_ip(ports: list[dict[str, Any]], ip: str) -> dict[str, Any] | None:
    target = ipaddress.ip_address(ip)
    for port in sorted(ports, key=lambda p: p["id"]):
        for fixed in port.get("fixed_ips") or []:
            if ipaddress.ip_address(fixed["ip_address"]) == target:
                return port
    return None


def build_request(ports: list[dict[str, Any]], source: str, destination: str, proto: str,
                  dport: int | None, with_reply: bool,
                  external_hosts: tuple[ExternalHost, ...] = (),
                  conntrack: str = CT_NEW) -> TraceRequest:
    """A request naming ports by id, with their hosts as hints (names resolved here).

    ``external_hosts`` (the lab's ``outside``) may be named as source or destination."""
    src = resolve_port(ports, source)
    dst = port_with_ip(ports, destination) if is_ip(destination) else resolve_port(
        ports, destination)
    return TraceRequest(
        source=src["id"] if src else source,
        destination=destination if is_ip(destination) or dst is None else dst["id"],
        proto=proto,  # type: ignore[arg-type]
        dport=dport, with_reply=with_reply,
        source_host=(src.get("binding:host_id") or None) if src else None,
        destination_host=(dst.get("binding:host_id") or None) if dst else None,
        external_hosts=external_hosts, conntrack=conntrack,
    )


def server_hosts(client: ServerClient, ports: list[dict[str, Any]],
                 assumed: set[str], segment: LabSegment | None = None) -> LazyHostData:
    """Every host the server knows of, each fetched when the walk first needs it
    (``segment``: the lab's external bridge uplinks and bridge mappings)."""
    names = {h["host"] for h in client.hosts()}
    names |= {p["binding:host_id"] for p in ports if p.get("binding:host_id")}
    segment = segment or LabSegment()

    def load(host: str) -> HostData:
        rebuilt = fetch_host_state(client, host, segment.bridge_mappings)
        if rebuilt.assumed:
            assumed.add(host)
        return HostData(rebuilt.view, rebuilt.state, rebuilt.plugged,
                        segment.uplinks or None)

    return LazyHostData(names, load)


# --- the command ------------------------------------------------------------------------------


def use_colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def exit_status(trace: Trace) -> int:
    if trace.disagreements():
        return EXIT_DISAGREES
    if trace.unverified():
        return EXIT_UNVERIFIED
    delivered = trace.delivered and (trace.reply is None or trace.reply.delivered)
    return EXIT_DELIVERED if delivered else EXIT_DROPPED


def _client(args: argparse.Namespace) -> ServerClient:
    if args.lab:
        from dvr.lab.lab import Lab, LabError

        lab = Lab(args.lab)
        try:
            lab.record()
        except LabError as exc:
            raise ValueError(str(exc)) from None
        return lab.client()
    return server_client(args)


def _lab_name(args: argparse.Namespace) -> str | None:
    """``--lab``, else the running lab whose API is ``--server`` (None: no lab)."""
    from dvr.lab.lab import lab_serving

    if args.lab:
        return str(args.lab)
    lab = lab_serving(args.server)
    return lab.name if lab else None


def _segment(lab_name: str | None) -> LabSegment:
    """The lab's outside host, uplinks and bridge mappings (nothing without a lab)."""
    from dvr.lab.lab import LabError

    if lab_name is None:
        return LabSegment()
    try:
        return lab_segment(lab_name)
    except LabError:
        return LabSegment()


def _probe(lab_name: str | None) -> SwitchProbe:
    """The real switches (and kernels) to ask: those of the lab, else this machine's own."""
    from dvr.lab.lab import LabError
    from dvr.trace.probes import lab_probe, local_probe

    try:
        return lab_probe(lab_name) if lab_name else local_probe()
    except LabError as exc:
        raise ValueError(str(exc)) from None


def cmd_trace(args: argparse.Namespace) -> int:
    assumed: set[str] = set()
    with _client(args) as client:
        lab_name = _lab_name(args)
        segment = _segment(lab_name)
        ports = client.list("ports")
        request = build_request(ports, args.source, args.destination, args.proto, args.dport,
                                not args.no_reply, segment.external_hosts, args.ct)
        hosts = server_hosts(client, ports, assumed, segment)
        trace = trace_packet(hosts, request)
        if args.verify:
            trace = verify_trace(trace, _probe(lab_name), hosts)

        def describe(host: str, owner: str) -> str:
            return describe_owner(hosts[host].view, owner) if host in hosts else owner

        if args.json:
            document = trace_to_dict(trace, request, describe)
            document["request"].update({"source": args.source,
                                        "destination": args.destination})
            document["assumed_plugged"] = sorted(assumed)
            print(json.dumps(document, indent=2))
        else:
            print(render_text(trace, request, use_colour(args.color), describe))
            if assumed:
                print(assumed_note(assumed), file=sys.stderr)
    return exit_status(trace)
