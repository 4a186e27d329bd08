"""NAT rules -> one nftables JSON document (pure)."""

from __future__ import annotations

import json

import pytest

from dvr.agent.desired.nftables import nat_table_document, rule_expressions
from dvr.agent.desired.state import NatRule

SNAT = NatRule("postrouting", "snat:r1", oif="qg-1", saddr="192.0.2.0/24",
               snat_to="203.0.113.5")
DNAT = NatRule("prerouting", "fip:f1", iif="qg-1", daddr="203.0.113.9/32",
               dnat_to="192.0.2.9")


def test_the_document_replaces_the_table_atomically_then_adds_chains_and_rules():
    commands = nat_table_document((SNAT, DNAT))["nftables"]
    assert commands[0] == {"metainfo": {"json_schema_version": 1}}
    table = {"family": "ip", "name": "dvr"}
    assert commands[1:4] == [{"add": {"table": table}}, {"delete": {"table": table}},
                             {"add": {"table": table}}]
    chains = [c["add"]["chain"] for c in commands if "chain" in c.get("add", {})]
    assert [(c["name"], c["hook"], c["prio"], c["type"]) for c in chains] == [
        ("prerouting", "prerouting", -100, "nat"), ("output", "output", -100, "nat"),
        ("postrouting", "postrouting", 100, "nat")]
    rules = [c["add"]["rule"] for c in commands if "rule" in c.get("add", {})]
    assert [(r["chain"], r["comment"]) for r in rules] == [
        ("postrouting", "snat:r1"), ("prerouting", "fip:f1")]
    json.dumps(commands)  # plain JSON values only


def test_snat_matches_outgoing_interface_and_source_prefix():
    assert rule_expressions(SNAT) == [
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "qg-1"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": {"prefix": {"addr": "192.0.2.0", "len": 24}}}},
        {"snat": {"addr": "203.0.113.5"}},
    ]


def test_dnat_matches_incoming_interface_and_a_host_address():
    assert rule_expressions(DNAT) == [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "qg-1"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                   "right": "203.0.113.9"}},
        {"dnat": {"addr": "192.0.2.9"}},
    ]


def test_no_rules_still_makes_an_empty_table():
    commands = nat_table_document(())["nftables"]
    assert not [c for c in commands if "rule" in c.get("add", {})]
    assert len([c for c in commands if "chain" in c.get("add", {})]) == 3


@pytest.mark.parametrize("kwargs", [
    {"chain": "postrouting"},  # no target
    {"chain": "postrouting", "snat_to": "203.0.113.5", "dnat_to": "192.0.2.9"},
    {"chain": "prerouting", "snat_to": "203.0.113.5"},
    {"chain": "postrouting", "dnat_to": "192.0.2.9"},
])
def test_a_rule_rewrites_one_side_in_a_chain_where_that_works(kwargs):
    with pytest.raises(ValueError):
        NatRule(owner="snat:r", **kwargs)


def test_a_bad_address_is_refused_when_rendered():
    with pytest.raises(ValueError):
        rule_expressions(NatRule("postrouting", "snat:r", saddr="192.0.2.0/40",
                                 snat_to="203.0.113.5"))
