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
    # what ``Dataplane.plugged_vifs()`` said when this reconcile looked (None: not reported),
    # so that a VIF plugged while the loop was busy, but already programmed, does not cause
    # another reconcile
    plugged: frozenset[str] | None = None
    local_vlans: dict[str, int] = field(default_factory=dict)  # network id -> local VLAN
    timings: dict[str, float] = field(default_factory=dict)  # phase -> ms, for the log line


class Dataplane(Protocol):
    """Everything the loop needs from this host: compute + diff + apply, in one call."""

    def reconcile(self, view: HostView) -> ApplyOutcome: ...

    def plugged_vifs(self) -> frozenset[str]:
        """What is plugged into the integration bridge, as comparable values (e.g. the
        iface-ids, or iface-id + port number so a replug counts); cheap to call."""
        ...

    # optional: ``on_local_change(callback)`` -- call ``callback()`` (from any thread) when
    # the plugged VIFs may have changed, so the loop need not wait for its next poll


def subscribe_local_changes(dataplane: Dataplane, callback: Callable[[], None]) -> bool:
    """Ask ``dataplane`` to call ``callback`` on local changes, if it can; True if it can."""
    subscribe = getattr(dataplane, "on_local_change", None)
    if subscribe is None:
        return False
    subscribe(callback)
    return True


def backoff_delay(failures: int, maximum: float) -> float:
    """0.5 s, 1 s, 2 s, ... capped at ``maximum``."""
    if failures <= 0:
        return 0.0
    return min(maximum, 0.5 * (2 ** (failures - 1)))


class WakeSignal:
    """Level-triggered wake-up: any number of pokes before a wait collapse into one.

    ``poked_at`` is when the first of the pokes that ended the last ``wait`` came (None if
    there was none): the log line reports how long the loop took to start after it.
    A ``nudge`` only ends the wait early.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._event = threading.Event()
        self.latest_revision = 0
        self._lock = threading.Lock()
        self._clock = clock
        self._pending_since: float | None = None
        self.poked_at: float | None = None

    def poke(self, revision: int | None = None) -> None:
        """Something changed: the loop must reconcile."""
        with self._lock:
            if revision is not None:
                self.latest_revision = max(self.latest_revision, revision)
            if self._pending_since is None:
                self._pending_since = self._clock()
        self._event.set()

    def nudge(self) -> None:
        """Something local may have changed: the loop looks (cheaply) before deciding."""
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait for a poke or a nudge (or ``timeout``); True if there was a poke."""
        self._event.wait(timeout)
        self._event.clear()
        with self._lock:
            self.poked_at, self._pending_since = self._pending_since, None
        return self.poked_at is not None


class AgentLoop:
    def __init__(self, config: AgentConfig, client: ServerClient, dataplane: Dataplane,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.client = client
        self.dataplane = dataplane
        self.clock = clock
        self.wake = WakeSignal(clock)
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
    def reconcile_once(self, trigger: str = "start", since: float | None = None) -> ApplyOutcome:
        """Fetch, reconcile, log, report.  ``trigger`` (why) and ``since`` (when the reason
        arose) only go into the log line."""
        started = self.clock()
        view = self.client.host_view(self.config.host)
        fetched = self.clock()
        outcome = self.dataplane.reconcile(view)
        elapsed_ms = (self.clock() - started) * 1000
        counts = " ".join(f"{k}={v}" for k, v in sorted(outcome.counts.items()))
        phases = {"fetch": (fetched - started) * 1000, **outcome.timings}
        if since is not None:
            phases = {"wait": (started - since) * 1000, **phases}
        timings = " ".join(f"{k}_ms={v:.1f}" for k, v in phases.items())
        log.info("reconcile host=%s revision=%d trigger=%s %s errors=%d %s ms=%.1f",
                 self.config.host, view.revision, trigger, counts, len(outcome.errors),
                 timings, elapsed_ms)
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
        try:
            subscribe_local_changes(self.dataplane, self.wake.nudge)
        except Exception as exc:  # polling still finds every change
            log.warning("cannot follow local changes (%s); polling every %.1fs", exc,
                        self.config.local_poll_interval)
        self.wake.poke()
        while not stop.is_set():
            fired = self.wake.wait(self.config.local_poll_interval)
            now = self.clock()
            current_vifs = self.dataplane.plugged_vifs()
            if fired or current_vifs != vifs or now - last_full >= self.config.resync_interval:
                trigger = ("watch" if fired else "vif" if current_vifs != vifs else "resync")
                vifs = current_vifs
                try:
                    outcome = self.reconcile_once(trigger, self.wake.poked_at if fired else now)
                    failures = failures + 1 if outcome.errors else 0
                    if outcome.plugged is not None:
                        vifs = outcome.plugged
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
