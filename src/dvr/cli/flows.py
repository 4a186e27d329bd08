"""`dvr flows HOST`: the desired flows of a host, optionally grouped by owning object (with
``--explain``, each firewall flow also names the security group and rule behind it)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from dvr.agent.desired.firewall_explain import RuleIndex, explain_firewall_flow
from dvr.agent.desired.state import Flow
from dvr.cli.server_state import fetch_host_state
from dvr.client import ServerClient
from dvr.hoststate import assumed_note, describe_owner


def flow_line(flow: Flow) -> str:
    return (f"cookie={flow.cookie:#018x} table={flow.table} priority={flow.priority} "
            f"{flow.match_text or '(any)'} actions={flow.actions_text}")


def show_flows(client: ServerClient, args: argparse.Namespace) -> int:
    rebuilt = fetch_host_state(client, args.host)
    view, state = rebuilt.view, rebuilt.state
    if rebuilt.assumed:
        print(assumed_note([args.host]), file=sys.stderr)
    bridges = [b for b in state.bridges if args.bridge in (None, b.name)]
    rules = RuleIndex(view)
    integration = state.bridges[0].name if state.bridges else ""

    def explain(bridge: str, flow: Flow) -> str | None:
        return explain_firewall_flow(flow, rules) if bridge == integration else None

    if args.bridge and not bridges:
        raise ValueError(f"host {args.host} has no bridge {args.bridge!r} "
                         f"(bridges: {', '.join(b.name for b in state.bridges)})")
    if args.json:
        print(json.dumps([
            {"bridge": b.name, "table": f.table, "priority": f.priority, "match": f.match_text,
             "actions": f.actions_text, "owner": f.owner, "cookie": f"{f.cookie:#x}",
             "owner_description": describe_owner(view, f.owner),
             "explanation": explain(b.name, f)}
            for b in bridges for f in sorted(b.flows)], indent=2))
        return 0
    for bridge in bridges:
        print(f"== {args.host} {bridge.name} ({len(bridge.flows)} flows, revision "
              f"{state.revision})")
        if not args.explain:
            for flow in sorted(bridge.flows):
                print("  " + flow_line(flow))
            continue
        by_owner: dict[str, list[Flow]] = defaultdict(list)
        for flow in bridge.flows:
            by_owner[flow.owner].append(flow)
        for owner in sorted(by_owner):
            print(f"  {owner} — {describe_owner(view, owner)}")
            for flow in sorted(by_owner[owner]):
                print("      " + flow_line(flow))
                why = explain(bridge.name, flow)
                if why:
                    print("          " + why)
    return 0
