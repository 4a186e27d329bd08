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


# --- reading a table back (the inverse of ``nat_table_document``) -------------------------------


class UnknownNatTable(ValueError):
    """A ``dvr`` table whose content this module did not write (it is to be replaced)."""


def _address_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "prefix" in value:
        prefix = value["prefix"]
        return f"{prefix['addr']}/{prefix['len']}"
    raise UnknownNatTable(f"address {value!r}")


def _rule_from_json(rule: Json) -> NatRule:
    fields: dict[str, Any] = {}
    for expression in rule.get("expr", []):
        if "match" in expression:
            match = expression["match"]
            left, right = match.get("left", {}), match.get("right")
            if match.get("op") != "==":
                raise UnknownNatTable(f"operator {match.get('op')!r}")
            if "meta" in left and left["meta"].get("key") in ("iifname", "oifname"):
                fields[left["meta"]["key"][:3]] = right
            elif "payload" in left and left["payload"].get("field") in ("saddr", "daddr"):
                fields[left["payload"]["field"]] = _address_text(right)
            else:
                raise UnknownNatTable(f"match {match!r}")
        elif "snat" in expression:
            fields["snat_to"] = expression["snat"].get("addr")
        elif "dnat" in expression:
            fields["dnat_to"] = expression["dnat"].get("addr")
        else:
            raise UnknownNatTable(f"statement {expression!r}")
    try:
        return NatRule(chain=rule["chain"], owner=rule.get("comment", ""), **fields)
    except (TypeError, ValueError) as error:
        raise UnknownNatTable(str(error)) from error


def nat_rules_from_json(listing: Json) -> tuple[NatRule, ...]:
    """The typed rules of ``nft -j list table ip dvr`` output, in chain order.

    Raises ``UnknownNatTable`` when the table holds anything ``nat_table_document`` would not
    have written (another chain, another kind of rule): then it must be replaced."""
    chains: set[str] = set()
    rules: dict[str, list[NatRule]] = {name: [] for name in CHAINS}
    for item in listing.get("nftables", []):
        if "chain" in item:
            chain = item["chain"]
            hook, priority = CHAINS.get(chain.get("name"), (None, None))
            if hook is None or chain.get("hook") != hook or chain.get("prio") != priority \
                    or chain.get("type") != "nat":
                raise UnknownNatTable(f"chain {chain!r}")
            chains.add(chain["name"])
        elif "rule" in item:
            rule = _rule_from_json(item["rule"])
            if rule.chain not in rules:
                raise UnknownNatTable(f"rule in chain {rule.chain!r}")
            rules[rule.chain].append(rule)
    if chains != set(CHAINS):
        raise UnknownNatTable(f"chains {sorted(chains)}")
    return tuple(rule for name in CHAINS for rule in rules[name])


def canonical_nat_rules(rules: Iterable[NatRule]) -> tuple[NatRule, ...]:
    """Rules in the order the table lists them (by chain, each chain's rules in order) and
    with addresses as nft prints them: what ``nat_rules_from_json`` returns once applied."""
    by_chain: dict[str, list[NatRule]] = {name: [] for name in CHAINS}
    for rule in rules:
        by_chain[rule.chain].append(NatRule(
            chain=rule.chain, owner=rule.owner, iif=rule.iif, oif=rule.oif,
            saddr=_canonical(rule.saddr), daddr=_canonical(rule.daddr),
            snat_to=rule.snat_to, dnat_to=rule.dnat_to))
    return tuple(rule for name in CHAINS for rule in by_chain[name])


def _canonical(address: str | None) -> str | None:
    if address is None:
        return None
    value = _address(address)
    return value if isinstance(value, str) else _address_text(value)
