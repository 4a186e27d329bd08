"""nftables in a network namespace: apply a JSON document, read a table back (thin).

The documents come from ``dvr.agent.desired.nftables`` (pure); this module only runs
``nft -j`` inside the namespace (``nsenter --net=<namespace file>``, so any directory of
named namespaces works, like the Linux driver's ``netns_dir``) and decides nothing.

A table read is kept until the namespace's nftables ruleset changes: each namespace read
has a ``ChangeWatch`` on nftables' notifications, and any notification (a change by
anyone, the driver's own included) means the next observation runs ``nft`` again.
"""

from __future__ import annotations

import json
import subprocess
import threading
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
from dvr.agent.drivers.netlink_watch import NETLINK_NETFILTER, NFTABLES_GROUPS, ChangeWatch
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
    driver's).  ``follow_changes`` False: every observation runs ``nft``.  ``close()`` ends
    the notification sockets."""

    def __init__(self, netns_dir: Path = Path("/run/netns"), nft: str = "nft",
                 follow_changes: bool = True):
        self.netns_dir = netns_dir
        self.nft = nft
        self.follow_changes = follow_changes
        self._lock = threading.Lock()
        # namespace -> its watch and the rules read since the watch last said nothing
        self._kept: dict[str, tuple[ChangeWatch, tuple[NatRule, ...] | None]] = {}

    def observe(self, namespaces: Sequence[str]) -> dict[str, tuple[NatRule, ...] | None]:
        found: dict[str, tuple[NatRule, ...] | None] = {}
        with self._lock:
            for gone in set(self._kept) - set(namespaces):
                self._forget(gone)
            for name in namespaces:
                path = self.netns_dir / name
                if not path.exists():
                    self._forget(name)
                    continue
                found[name] = self._rules(name, path)
        return found

    def _rules(self, name: str, path: Path) -> tuple[NatRule, ...] | None:
        """The table's rules: kept while no nftables notification came (a table that could
        not be read, None, is read again every time)."""
        if not self.follow_changes:
            return self._read(path)
        watch, rules = self._kept.get(name, (None, None))
        if watch is not None and not watch.is_for(path):
            self._forget(name)
            watch = rules = None
        if watch is None:
            try:  # listen first: a change made while reading is not missed
                watch = ChangeWatch(path, NETLINK_NETFILTER, NFTABLES_GROUPS)
            except OSError:
                return self._read(path)  # cannot watch: read every time
        if watch.drain() != [] or rules is None:
            rules = self._read(path)
        self._kept[name] = (watch, rules)
        return rules

    def _read(self, path: Path) -> tuple[NatRule, ...] | None:
        try:
            listing = list_table(path, FAMILY, TABLE, self.nft)
        except DriverError:
            return None  # unreadable: replace it
        try:
            return () if listing is None else nat_rules_from_json(listing)
        except UnknownNatTable:
            return None

    def forget(self, name: str) -> None:
        """Let go of namespace ``name`` (it is being deleted): read it afresh if it is
        seen again."""
        with self._lock:
            self._forget(name)

    def _forget(self, name: str) -> None:
        watch, _ = self._kept.pop(name, (None, None))
        if watch is not None:
            watch.close()

    def apply(self, op: ReplaceNatTable) -> None:
        path = self.netns_dir / op.namespace
        if not path.exists():
            raise DriverError(f"Cannot open network namespace {op.namespace!r}")
        try:
            apply_nat_document(path, nat_table_document(op.rules), self.nft)
        except DriverError:
            self.forget(op.namespace)  # read it afresh
            raise

    def close(self) -> None:
        with self._lock:
            for name in list(self._kept):
                self._forget(name)
