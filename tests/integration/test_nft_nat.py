"""NAT rules through real nftables: a rendered document applied inside a namespace we
create (and delete), read back with ``nft -j list table``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dvr.agent.desired.nftables import FAMILY, TABLE, nat_table_document, rule_expressions
from dvr.agent.desired.state import NatRule
from dvr.agent.drivers import netns
from dvr.agent.drivers.nft import apply_nat_document, list_table

RULES = (
    NatRule("prerouting", "fip:f1", iif="qg-test", daddr="203.0.113.9", dnat_to="192.0.2.9"),
    NatRule("postrouting", "snat:r1", oif="qg-test", saddr="192.0.2.0/24",
            snat_to="203.0.113.5"),
    NatRule("output", "fip:f1", daddr="203.0.113.9", dnat_to="192.0.2.9"),
)


@pytest.fixture
def namespace(workroot: Path, unique_names: Iterator[str]) -> Iterator[Path]:
    if shutil.which("nft") is None or shutil.which("nsenter") is None:
        pytest.skip("nft or nsenter is not installed")
    path = workroot / "netns" / next(unique_names)
    netns.create_named(path)
    yield path
    netns.delete_named(path)
    assert not path.exists()


def _rules(listing: dict) -> list[tuple[str, str, list]]:
    return [(r["rule"]["chain"], r["rule"].get("comment"), r["rule"]["expr"])
            for r in listing["nftables"] if "rule" in r]


def _chains(listing: dict) -> dict[str, tuple[str, str, int]]:
    return {c["chain"]["name"]: (c["chain"]["type"], c["chain"]["hook"], c["chain"]["prio"])
            for c in listing["nftables"] if "chain" in c}


def test_a_document_is_applied_and_reads_back_as_written(namespace: Path):
    assert list_table(namespace, FAMILY, TABLE) is None
    apply_nat_document(namespace, nat_table_document(RULES))
    listing = list_table(namespace, FAMILY, TABLE)
    assert listing is not None
    assert _chains(listing) == {"prerouting": ("nat", "prerouting", -100),
                                "output": ("nat", "output", -100),
                                "postrouting": ("nat", "postrouting", 100)}
    by_chain = sorted(_rules(listing), key=lambda r: r[0])
    assert by_chain == sorted(((r.chain, r.owner, rule_expressions(r)) for r in RULES),
                              key=lambda r: r[0])


def test_applying_again_replaces_the_table_instead_of_adding_to_it(namespace: Path):
    apply_nat_document(namespace, nat_table_document(RULES))
    apply_nat_document(namespace, nat_table_document(RULES[1:2]))
    listing = list_table(namespace, FAMILY, TABLE)
    assert listing is not None
    assert [(chain, owner) for chain, owner, _ in _rules(listing)] == [
        ("postrouting", "snat:r1")]
    apply_nat_document(namespace, nat_table_document(()))
    assert _rules(list_table(namespace, FAMILY, TABLE) or {"nftables": []}) == []
