"""NAT rules rendered to the nftables JSON schema (pure; ``libnftables-json(5)``).

``nat_table_document(rules)`` turns the NAT rules of one namespace into one JSON document
that, applied with ``nft -j -f -`` inside that namespace, creates or atomically replaces its
``ip dvr`` table (one nft transaction: add the table so that deleting it cannot fail,
delete it with everything in it, add it again with its chains and rules).  An empty rule
list still leaves the (empty) table and its chains, so "no NAT" is a state like any other.
Nothing is built as nft rule text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from dvr.agent.desired.state import NatRule

FAMILY = "ip"
TABLE = "dvr"
JSON_SCHEMA_VERSION = 1

# chain -> (hook, priority): the standard dstnat (-100) and srcnat (100) priorities
CHAINS: dict[str, tuple[str, int]] = {
    "prerouting": ("prerouting", -100),
    "output": ("output", -100),
    "postrouting": ("postrouting", 100),
}

Json = dict[str, Any]


def _table() -> Json:
    return {"family": FAMILY, "name": TABLE}


def _chain(name: str) -> Json:
    hook, priority = CHAINS[name]
    return {"family": FAMILY, "table": TABLE, "name": name, "type": "nat", "hook": hook,
            "prio": priority, "policy": "accept"}


def _equals(left: Json, right: object) -> Json:
    return {"match": {"op": "==", "left": left, "right": right}}


def _address(text: str) -> object:
    """An address as nftables JSON: the address itself, or a prefix object."""
    if "/" not in text:
        return str(ipaddress.IPv4Address(text))
    network = ipaddress.IPv4Network(text, strict=False)
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def rule_expressions(rule: NatRule) -> list[Json]:
    """The statements of one rule: its matches in a fixed order, then its NAT target."""
    expressions: list[Json] = []
    if rule.iif is not None:
        expressions.append(_equals({"meta": {"key": "iifname"}}, rule.iif))
    if rule.oif is not None:
        expressions.append(_equals({"meta": {"key": "oifname"}}, rule.oif))
    if rule.saddr is not None:
        expressions.append(_equals({"payload": {"protocol": "ip", "field": "saddr"}},
                                   _address(rule.saddr)))
    if rule.daddr is not None:
        expressions.append(_equals({"payload": {"protocol": "ip", "field": "daddr"}},
                                   _address(rule.daddr)))
    if rule.snat_to is not None:
        expressions.append({"snat": {"addr": str(ipaddress.IPv4Address(rule.snat_to))}})
    if rule.dnat_to is not None:
        expressions.append({"dnat": {"addr": str(ipaddress.IPv4Address(rule.dnat_to))}})
    return expressions


def nat_table_document(rules: Iterable[NatRule]) -> Json:
    """One namespace's NAT rules -> the document that creates/replaces its ``dvr`` table.

    Rules keep their order within a chain (nft evaluates them in order); each carries its
    owner as its comment."""
    commands: list[Json] = [
        {"metainfo": {"json_schema_version": JSON_SCHEMA_VERSION}},
        {"add": {"table": _table()}},
        {"delete": {"table": _table()}},
        {"add": {"table": _table()}},
    ]
    commands += [{"add": {"chain": _chain(name)}} for name in CHAINS]
    for rule in rules:
        commands.append({"add": {"rule": {
            "family": FAMILY, "table": TABLE, "chain": rule.chain,
            "expr": rule_expressions(rule), "comment": rule.owner,
        }}})
    return {"nftables": commands}
