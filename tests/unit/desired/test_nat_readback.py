"""Reading an ``ip dvr`` table back (``nft -j list table``) as typed NAT rules."""

from __future__ import annotations

import pytest

from dvr.agent.desired.nftables import (
    UnknownNatTable,
    canonical_nat_rules,
    nat_rules_from_json,
    nat_table_document,
)
from dvr.agent.desired.state import NatRule

RULES = (
    NatRule("postrouting", "snat:x", oif="qg-abc", saddr="192.0.2.0/24", snat_to="203.0.113.10"),
    NatRule("prerouting", "router:x", iif="rfp-abc", daddr="203.0.113.50", dnat_to="192.0.2.5"),
    NatRule("postrouting", "router:x", oif="rfp-abc", saddr="192.0.2.5/32",
            snat_to="203.0.113.50"),
)


def listing_of(rules) -> dict:
    """What ``nft -j list table ip dvr`` prints after ``nat_table_document(rules)`` (the
    shape recorded from nftables 1.0.6: handles, chains, one object per rule, /32 bare)."""
    items = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
             {"table": {"family": "ip", "name": "dvr", "handle": 2}}]
    for handle, (name, prio) in enumerate((("prerouting", -100), ("output", -100),
                                           ("postrouting", 100)), start=1):
        items.append({"chain": {"family": "ip", "table": "dvr", "name": name, "handle": handle,
                                "type": "nat", "hook": name, "prio": prio,
                                "policy": "accept"}})
    document = nat_table_document(canonical_nat_rules(rules))
    for handle, command in enumerate(
            (c["add"]["rule"] for c in document["nftables"] if "rule" in c.get("add", {})),
            start=4):
        items.append({"rule": {**command, "handle": handle}})
    return {"nftables": items}


def test_rules_read_back_equal_the_canonical_desired_rules():
    back = nat_rules_from_json(listing_of(RULES))
    assert back == canonical_nat_rules(RULES)
    assert [r.chain for r in back] == ["prerouting", "postrouting", "postrouting"]
    assert back[2].saddr == "192.0.2.5"  # a /32 lists bare


def test_an_empty_table_reads_back_as_no_rules():
    assert nat_rules_from_json(listing_of(())) == ()


@pytest.mark.parametrize("damage", ["extra statement", "missing chain", "other operator"])
def test_a_table_we_did_not_write_is_unknown(damage):
    listing = listing_of(RULES)
    items = listing["nftables"]
    if damage == "extra statement":
        next(i for i in items if "rule" in i)["rule"]["expr"].append({"counter": None})
    elif damage == "missing chain":
        items.remove(next(i for i in items if "chain" in i))
    else:
        next(i for i in items if "rule" in i)["rule"]["expr"][0]["match"]["op"] = "!="
    with pytest.raises(UnknownNatTable):
        nat_rules_from_json(listing)
