"""Agent liveness in memory: the newest heartbeat of every host, flushed to the database at
a bounded rate (docs/design.md §2, "Liveness").

A heartbeat says "alive, revision R applied, and this is what I report" (ports up/down, the
plugged VIFs, local VLANs, bridge mappings, east/west mode).  Most heartbeats say nothing
new: they only move ``seen_at``.  Those stay here and reach the database in one batched
write at most every ``flush_interval`` seconds.  A heartbeat whose *report* changed in
substance (it drives port status and the rebuild of the host's desired state), a host this
process has not written yet, and a host coming back to life are written at once.

Everything that reads liveness reads memory over the database (the newer ``seen_at``, the
newer applied revision).  Memory is per server process; with several processes on one
database, the flushed row is the cross-process truth, at most ``flush_interval`` old.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class AgentReport:
    """What an agent reports, beyond "alive": the part that must reach the database at once
    when it changes.  ``dataplane`` is None when the heartbeat reported no dataplane facts
    (then the stored ones stay)."""

    ports_up: frozenset[str] = frozenset()
    ports_down: frozenset[str] = frozenset()
    dataplane: tuple[tuple[str, Any], ...] | None = None  # freeze_dataplane(the report)


def freeze_dataplane(report: dict[str, Any] | None) -> tuple[tuple[str, Any], ...] | None:
    """A JSON object of string maps as a comparable, hashable value."""
    if report is None:
        return None
    return tuple(
        (key, tuple(sorted(value.items())) if isinstance(value, dict) else value)
        for key, value in sorted(report.items())
    )


def thaw_dataplane(frozen: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {key: dict(value) if isinstance(value, tuple) else value for key, value in frozen}


@dataclass(frozen=True)
class Heartbeat:
    host: str
    seen_at: datetime  # naive UTC, as the database stores it
    applied_revision: int | None  # None: not reported, the last known one stays
    report: AgentReport


def status_claims(report: AgentReport) -> dict[str, str]:
    """port id -> the status the report claims for it."""
    claims = {port: "DOWN" for port in report.ports_down}
    claims.update((port, "ACTIVE") for port in report.ports_up)
    return claims


@dataclass(frozen=True)
class WrittenHeartbeat:
    """What the database holds for a host after this process wrote it, and the answer."""

    claims: dict[str, str]  # port -> status, as written
    dataplane: tuple[tuple[str, Any], ...] | None
    answer: dict[str, Any]


@dataclass
class HostLiveness:
    seen_at: datetime
    applied_revision: int
    written: WrittenHeartbeat | None = None  # None: this process has not written it yet
    flushed_at: datetime | None = None  # the seen_at last written


@dataclass(frozen=True)
class UnflushedHeartbeat:
    host: str
    seen_at: datetime
    applied_revision: int
    claims: dict[str, str]  # port -> status the agent claims (re-asserted by the flush)


def write_reason(entry: HostLiveness | None, beat: Heartbeat, alive_since: datetime) -> str | None:
    """Why ``beat`` must be written at once, or None when memory suffices (pure).  A
    heartbeat that leaves out ports (the periodic one names no down ports) claims nothing
    about them."""
    if entry is None or entry.written is None:
        return "first heartbeat in this process"
    if entry.seen_at < alive_since:
        return "agent back to life"
    if beat.report.dataplane is not None and beat.report.dataplane != entry.written.dataplane:
        return "dataplane report changed"
    claims = entry.written.claims
    if any(claims.get(port) != status for port, status in status_claims(beat.report).items()):
        return "port status changed"
    return None


@dataclass
class LivenessMemory:
    """The newest heartbeat of every host seen by this process (thread-safe: read from the
    request threads, written from the event loop)."""

    _hosts: dict[str, HostLiveness] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- writes (the heartbeat path) ----------------------------------------------------------
    def remember(
        self, beat: Heartbeat, alive_since: datetime
    ) -> tuple[str | None, dict[str, Any] | None]:
        """Keep ``beat`` in memory if it needs no immediate write: (None, the last answer);
        else (why it must be written, None) and memory is left as it was."""
        with self._lock:
            entry = self._hosts.get(beat.host)
            reason = write_reason(entry, beat, alive_since)
            if reason is not None:
                return reason, None
            assert entry is not None and entry.written is not None
            entry.seen_at = max(entry.seen_at, beat.seen_at)
            if beat.applied_revision is not None:
                entry.applied_revision = beat.applied_revision
            return None, entry.written.answer

    def written(self, beat: Heartbeat, applied_revision: int, answer: dict[str, Any]) -> None:
        """``beat`` is in the database now (with ``applied_revision``)."""
        with self._lock:
            entry = self._hosts.get(beat.host)
            if entry is None:
                entry = self._hosts[beat.host] = HostLiveness(beat.seen_at, applied_revision)
            before = entry.written
            claims = {**(before.claims if before else {}), **status_claims(beat.report)}
            dataplane = beat.report.dataplane
            if dataplane is None and before is not None:
                dataplane = before.dataplane
            entry.seen_at = max(entry.seen_at, beat.seen_at)
            entry.applied_revision = applied_revision
            entry.written = WrittenHeartbeat(claims, dataplane, answer)
            entry.flushed_at = beat.seen_at

    def forget(self, host: str) -> None:
        """The host is gone from the database (deleted, or never registered)."""
        with self._lock:
            self._hosts.pop(host, None)

    def unflushed(self) -> list[UnflushedHeartbeat]:
        """Every host seen since it was last written."""
        with self._lock:
            return [
                UnflushedHeartbeat(host, e.seen_at, e.applied_revision,
                                   dict(e.written.claims) if e.written else {})
                for host, e in sorted(self._hosts.items())
                if e.flushed_at is None or e.seen_at > e.flushed_at
            ]

    def flushed(self, beats: list[UnflushedHeartbeat]) -> None:
        with self._lock:
            for beat in beats:
                entry = self._hosts.get(beat.host)
                if entry is not None:
                    entry.flushed_at = max(entry.flushed_at or beat.seen_at, beat.seen_at)

    # -- reads (memory over the database) -----------------------------------------------------
    def last_seen(self, host: str, stored: datetime) -> datetime:
        """The newer of what memory and the database (``stored``) say."""
        with self._lock:
            entry = self._hosts.get(host)
        return stored if entry is None else max(stored, entry.seen_at)

    def newest_applied(self, host: str, stored: int, stored_seen: datetime) -> int:
        """The applied revision of the newer heartbeat, memory's or the database's (it may
        go down: a restarted agent applies its first view)."""
        with self._lock:
            entry = self._hosts.get(host)
        if entry is None or entry.seen_at < stored_seen:
            return stored
        return entry.applied_revision

    def alive_hosts(self, since: datetime) -> set[str]:
        """Hosts memory has seen at or after ``since`` (the database may know more)."""
        with self._lock:
            return {host for host, e in self._hosts.items() if e.seen_at >= since}

    def newer_applied(self, stored: dict[str, tuple[int, datetime]]) -> dict[str, int]:
        """host -> applied revision, for the hosts where memory is newer than ``stored``
        (host -> (applied revision, seen_at) in the database) and differs from it."""
        with self._lock:
            return {
                host: e.applied_revision
                for host, e in self._hosts.items()
                if host in stored and e.seen_at >= stored[host][1]
                and e.applied_revision != stored[host][0]
            }
