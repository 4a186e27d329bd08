"""Results of one run of openstacksdk's functional network tests: read from pytest's JUnit
XML, classified by scope (sdk_scope), tallied and written out. No I/O but the two files."""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sdk_scope import KNOWN_GAPS, Scope, verdict

PACKAGE = "openstack.tests.functional.network.v2"


class Outcome(enum.Enum):  # worst last: a test reported twice keeps its worst outcome
    PASSED = "passed"
    SKIPPED = "skipped"
    FAILED = "failed"
    ERROR = "error"


_RANK = {outcome: rank for rank, outcome in enumerate(Outcome)}


@dataclass(frozen=True)
class CaseResult:
    module: str  # test_port
    test_class: str  # TestPort
    name: str  # test_get
    outcome: Outcome
    message: str  # why it failed or was skipped (first line), "" when it passed
    scope: Scope
    scope_reason: str

    @property
    def test_id(self) -> str:
        return f"{self.module}.{self.test_class}.{self.name}"


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _raised(traceback: str | None) -> str:
    """The exception a traceback ends with (its last unindented line)."""
    lines = [line for line in (traceback or "").splitlines()
             if line.strip() and not line[0].isspace()]
    return lines[-1][:300] if lines else ""


def _outcome(case: ET.Element) -> tuple[Outcome, str]:
    for tag, outcome in (("error", Outcome.ERROR), ("failure", Outcome.FAILED)):
        child = case.find(tag)
        if child is not None:
            return outcome, _raised(child.text) or _first_line(child.get("message"))
    skipped = case.find("skipped")
    if skipped is not None:
        return Outcome.SKIPPED, _first_line(skipped.get("message"))
    return Outcome.PASSED, ""


def results_from_junit(xml_text: str) -> list[CaseResult]:
    """One result per test (classname ``<PACKAGE>.<module>.<Class>``), sorted by id."""
    best: dict[tuple[str, str, str], CaseResult] = {}
    for case in ET.fromstring(xml_text).iter("testcase"):
        qualified = case.get("classname", "").removeprefix(PACKAGE + ".")
        module, _, test_class = qualified.rpartition(".")
        if not module:  # a collection error is reported against the module itself
            module, test_class = test_class, ""
        outcome, message = _outcome(case)
        scope = verdict(module)
        result = CaseResult(module, test_class, case.get("name", ""), outcome, message,
                            scope.scope, scope.reason)
        key = (module, test_class, result.name)
        if key not in best or _RANK[outcome] > _RANK[best[key].outcome]:
            best[key] = result
    return [best[key] for key in sorted(best)]


def tally(results: Iterable[CaseResult]) -> dict[Scope, Counter[Outcome]]:
    counts: dict[Scope, Counter[Outcome]] = {scope: Counter() for scope in Scope}
    for result in results:
        counts[result.scope][result.outcome] += 1
    return counts


def in_scope_failures(results: Iterable[CaseResult]) -> list[CaseResult]:
    return [r for r in results if r.scope is Scope.IN_SCOPE
            and r.outcome in (Outcome.FAILED, Outcome.ERROR)]


def unexpected_failures(results: Iterable[CaseResult],
                        known_gaps: Mapping[str, str] = KNOWN_GAPS) -> list[CaseResult]:
    """In-scope failures outside the known gaps: what `make compat` fails on."""
    return [r for r in in_scope_failures(results) if r.module not in known_gaps]


def exit_status(results: list[CaseResult], known_gaps: Mapping[str, str] = KNOWN_GAPS) -> int:
    """1 when an in-scope test failed outside the known gaps, or nothing ran."""
    return 1 if unexpected_failures(results, known_gaps) or not results else 0


def _counts_text(counts: Counter[Outcome]) -> str:
    failed = counts[Outcome.FAILED] + counts[Outcome.ERROR]
    return f"{counts[Outcome.PASSED]} passed, {failed} failed, {counts[Outcome.SKIPPED]} skipped"


def report(results: list[CaseResult], known_gaps: Mapping[str, str] = KNOWN_GAPS) -> str:
    """Counts per scope, the in-scope failures, and a closing total line."""
    counts = tally(results)
    lines = ["openstacksdk functional network tests against dvr-server, by scope:"]
    for scope in Scope:
        lines.append(f"  {scope.value:<18} {_counts_text(counts[scope])}")
    failures = in_scope_failures(results)
    gaps = Counter(r.module for r in failures if r.module in known_gaps)
    if gaps:
        lines.append("in-scope failures in known gaps:")
        lines += [f"  {module}: {n} ({known_gaps[module]})" for module, n in sorted(gaps.items())]
    unexpected = unexpected_failures(results, known_gaps)
    if unexpected:
        lines.append("unexpected in-scope failures:")
        lines += [f"  {r.test_id}: {r.message}" for r in unexpected]
    lines.append(f"in-scope: {_counts_text(counts[Scope.IN_SCOPE])}")
    return "\n".join(lines)


def write_tsv(results: Iterable[CaseResult], path: Path) -> None:
    rows = ["test\toutcome\tscope\tscope_reason\tmessage"]
    rows += [
        "\t".join((r.test_id, r.outcome.value, r.scope.value, r.scope_reason,
                   r.message.replace("\t", " ")))
        for r in results
    ]
    path.write_text("\n".join(rows) + "\n")
