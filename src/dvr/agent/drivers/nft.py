"""nftables in a network namespace: apply a JSON document, read a table back (thin).

The documents come from ``dvr.agent.desired.nftables`` (pure); this module only runs
``nft -j`` inside the namespace (``nsenter --net=<namespace file>``, so any directory of
named namespaces works, like the Linux driver's ``netns_dir``) and decides nothing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvr.agent.desired.nftables import (
    FAMILY,
    TABLE,
    UnknownNatTable,
    nat_rules_from_json,
    nat_table_document,
)
from dvr.agent.desired.state import NatRule
from dvr.agent.drivers.base import DriverError
from dvr.agent.reconcile.commands import ReplaceNatTable

TIMEOUT = 10.0


def _in_namespace(netns_path: Path | None, argv: Sequence[str]) -> list[str]:
    if netns_path is None:
        return list(argv)
    return ["nsenter", f"--net={netns_path}", *argv]


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        result = subprocess.run(argv, input=stdin, text=True, capture_output=True,
                                timeout=TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise DriverError(f"{' '.join(argv)} timed out") from error
    if result.returncode != 0:
        raise DriverError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def apply_nat_document(netns_path: Path | None, document: dict[str, Any],
                       nft: str = "nft") -> None:
    """``nft -j -f -`` with ``document`` inside the namespace: one atomic transaction."""
    _run(_in_namespace(netns_path, [nft, "-j", "-f", "-"]), json.dumps(document))


def list_table(netns_path: Path | None, family: str, table: str,
               nft: str = "nft") -> dict[str, Any] | None:
    """``nft -j list table <family> <table>`` inside the namespace; None if there is none."""
    argv = _in_namespace(netns_path, [nft, "-j", "list", "table", family, table])
    try:
        return json.loads(_run(argv))
    except DriverError as error:
        if "No such file or directory" in str(error):
            return None
        raise


class NftDriver:
    """The NAT driver: each named namespace's ``ip dvr`` table (``netns_dir`` as the Linux
    driver's)."""

    def __init__(self, netns_dir: Path = Path("/run/netns"), nft: str = "nft"):
        self.netns_dir = netns_dir
        self.nft = nft

    def observe(self, namespaces: Sequence[str]) -> dict[str, tuple[NatRule, ...] | None]:
        found: dict[str, tuple[NatRule, ...] | None] = {}
        for name in namespaces:
            path = self.netns_dir / name
            if not path.exists():
                continue
            try:
                listing = list_table(path, FAMILY, TABLE, self.nft)
            except DriverError:
                found[name] = None  # unreadable: replace it
                continue
            try:
                found[name] = () if listing is None else nat_rules_from_json(listing)
            except UnknownNatTable:
                found[name] = None
        return found

    def apply(self, op: ReplaceNatTable) -> None:
        path = self.netns_dir / op.namespace
        if not path.exists():
            raise DriverError(f"Cannot open network namespace {op.namespace!r}")
        apply_nat_document(path, nat_table_document(op.rules), self.nft)
