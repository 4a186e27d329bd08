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

from dvr.agent.drivers.base import DriverError

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
