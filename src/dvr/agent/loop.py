"""The agent's level-triggered loop.

register -> host MAC -> [fetch HostView -> observe -> compute desired (pure) -> plan diff ->
apply -> report] and again whenever the server's watch says something for this host changed,
a VIF is plugged or unplugged locally, or the resync timer fires.  Events carry no payload:
they only wake the loop, which always recomputes from fresh data (DESIGN.md §1.2).

Errors never stop the loop: a failed reconcile is logged and retried with exponential
backoff; the watch thread reconnects with backoff too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from dvr.agent.config import AgentConfig
from dvr.client import ServerClient
from dvr.model.hostview import HostView

log = logging.getLogger("dvr.agent")


@dataclass(frozen=True)
class ApplyOutcome:
    """What one reconcile did to the dataplane."""

    counts: dict[str, int]
    errors: tuple[str, ...]
    ports_up: tuple[str, ...]  # local ports that are plugged and fully programmed
    vifs: dict[str, str] = field(default_factory=dict)  # port id -> OVS port name
    local_vlans: dict[str, int] = field(default_factory=dict)  # network id -> local VLAN


class Dataplane(Protocol):
    """Everything the loop needs from this host: compute + diff + apply, in one call."""

    def reconcile(self, view: HostView) -> ApplyOutcome: ...

    def plugged_vifs(self) -> frozenset[str]:
        """The iface-ids currently plugged into the integration bridge (cheap to call)."""
        ...


def backoff_delay(failures: int, maximum: float) -> float:
    """0.5 s, 1 s, 2 s, ... capped at ``maximum``."""
    if failures <= 0:
        return 0.0
    return min(maximum, 0.5 * (2 ** (failures - 1)))


class WakeSignal:
    """Level-triggered wake-up: any number of pokes before a wait collapse into one."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.latest_revision = 0
        self._lock = threading.Lock()

    def poke(self, revision: int | None = None) -> None:
        with self._lock:
            if revision is not None:
                self.latest_revision = max(self.latest_revision, revision)
        self._event.set()

    def wait(self, timeout: float) -> bool:
        fired = self._event.wait(timeout)
        self._event.clear()
        return fired


class AgentLoop:
    def __init__(self, config: AgentConfig, client: ServerClient, dataplane: Dataplane,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.client = client
        self.dataplane = dataplane
        self.clock = clock
        self.wake = WakeSignal()
        self.applied_revision = 0
        self.last_outcome: ApplyOutcome | None = None

    # -- start-up -----------------------------------------------------------------------
    def register(self, stop: threading.Event) -> str:
        """Register with the server and get this host's MAC, retrying until it works."""
        failures = 0
        while not stop.is_set():
            try:
                self.client.register_agent(self.config.host, self.config.mode,
                                           self.config.local_ip, self.config.datapath)
                mac = self.client.host_mac(self.config.host)
                log.info("registered host=%s mode=%s host_mac=%s", self.config.host,
                         self.config.mode, mac)
                return mac
            except Exception as exc:  # any failure is retried
                failures += 1
                delay = backoff_delay(failures, self.config.max_backoff)
                log.warning("register failed (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
        return ""

    # -- one pass -----------------------------------------------------------------------
    def reconcile_once(self) -> ApplyOutcome:
        started = self.clock()
        view = self.client.host_view(self.config.host)
        outcome = self.dataplane.reconcile(view)
        elapsed_ms = (self.clock() - started) * 1000
        counts = " ".join(f"{k}={v}" for k, v in sorted(outcome.counts.items()))
        log.info("reconcile host=%s revision=%d %s errors=%d ms=%.1f", self.config.host,
                 view.revision, counts, len(outcome.errors), elapsed_ms)
        for error in outcome.errors:
            log.warning("reconcile error: %s", error)
        if not outcome.errors:
            self.applied_revision = view.revision
        self.last_outcome = outcome
        self.report(outcome, view)
        return outcome

    def report(self, outcome: ApplyOutcome, view: HostView) -> None:
        local = {p.id for p in view.ports}
        up = sorted(set(outcome.ports_up) & local)
        down = sorted(local - set(outcome.ports_up))
        self.client.heartbeat(self.config.host, self.applied_revision, up, down,
                              outcome.vifs, outcome.local_vlans)

    # -- threads --------------------------------------------------------------------------
    def watch_forever(self, stop: threading.Event) -> None:
        since = 0
        failures = 0
        while not stop.is_set():
            try:
                result = self.client.watch(self.config.host, since, self.config.watch_timeout)
                failures = 0
                if result.resync or result.changes or result.revision < since:
                    self.wake.poke(result.revision)
                since = result.revision
            except Exception as exc:  # reconnect with backoff
                failures += 1
                delay = backoff_delay(failures, self.config.max_backoff)
                log.warning("watch failed (%s); reconnecting in %.1fs", exc, delay)
                stop.wait(delay)
                self.wake.poke()  # we may have missed changes: resync

    def run(self, stop: threading.Event, once: bool = False) -> None:
        if not self.register(stop):
            return
        if once:
            self.reconcile_once()
            return
        watcher = threading.Thread(target=self.watch_forever, args=(stop,),
                                   name="dvr-watch", daemon=True)
        watcher.start()
        self._main_loop(stop)

    def _main_loop(self, stop: threading.Event) -> None:
        failures = 0
        last_full = last_heartbeat = self.clock()
        vifs: frozenset[str] | None = None
        self.wake.poke()
        while not stop.is_set():
            fired = self.wake.wait(self.config.local_poll_interval)
            now = self.clock()
            current_vifs = self.dataplane.plugged_vifs()
            if fired or current_vifs != vifs or now - last_full >= self.config.resync_interval:
                vifs = current_vifs
                try:
                    outcome = self.reconcile_once()
                    failures = failures + 1 if outcome.errors else 0
                except Exception:  # the loop never dies
                    failures += 1
                    log.exception("reconcile failed")
                last_full = last_heartbeat = self.clock()
                if failures:
                    stop.wait(backoff_delay(failures, self.config.max_backoff))
                    self.wake.poke()
            elif now - last_heartbeat >= self.config.heartbeat_interval:
                self._heartbeat()
                last_heartbeat = self.clock()

    def _heartbeat(self) -> None:
        outcome = self.last_outcome
        if outcome is None:
            return
        try:
            self.client.heartbeat(self.config.host, self.applied_revision,
                                  list(outcome.ports_up), [], outcome.vifs, outcome.local_vlans)
        except Exception as exc:
            log.warning("heartbeat failed: %s", exc)
