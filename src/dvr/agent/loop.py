"""The agent's level-triggered loop.

register -> host MAC -> [fetch HostView -> observe -> compute desired (pure) -> plan diff ->
apply -> report] and again whenever the server's watch says something for this host changed,
a VIF is plugged or unplugged locally, or a heartbeat's answer shows a revision gap (a
change the watch missed; there is no resync timer).  Events carry no payload:
they only wake the loop, which always recomputes from fresh data (docs/design.md §1).

Errors never stop the loop (``dvr.agent.retry``): a transient failure is retried after a
capped, jittered exponential backoff, the watch thread reconnects the same way; an error
that retrying cannot fix is logged once and the loop waits for a change (a watch event, a
VIF, a revision gap) — meanwhile its heartbeats keep telling the server which revision it
has applied.  Only a registration the server refuses stops the agent (``AgentRefused``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dvr.agent.config import AgentConfig
from dvr.agent.pushed_views import FetchedView, PushedViews
from dvr.agent.retry import IncompleteReconcile, Retries, honoured_delay
from dvr.client import ServerClient, ServerClosing
from dvr.model.hostview import LAYOUT_CHOICES, HostView
from dvr.model.hostview_delta import HOLDS_NO_VIEW, DeltaRefused, apply

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
    # False: the pass sent what it could without observing the dataplane and left the rest
    # for later, as something new waited; the loop runs another pass at once
    verified: bool = True


class Dataplane(Protocol):
    """Everything the loop needs from this host: compute + diff + apply, in one call."""

    def reconcile(self, view: HostView) -> ApplyOutcome: ...

    def plugged_vifs(self) -> frozenset[str]:
        """What is plugged into the integration bridge, as comparable values (e.g. the
        iface-ids, or iface-id + port number so a replug counts); cheap to call."""
        ...

    # optional: ``on_local_change(callback)`` -- call ``callback()`` (from any thread) when
    # the plugged VIFs may have changed, so the loop need not wait for its next poll;
    # ``reconcile_local(view)`` -- instead of ``reconcile``
    # when only the plugged VIFs changed since the last pass (same view): it may program
    # them from what it knows without observing the whole dataplane;
    # ``interrupt_with(check, settle)`` -- ``check()`` says whether a change the server
    # told of waits: a pass may then return unverified (``ApplyOutcome.verified``);
    # ``settle(seconds, news)`` waits that long at most until ``news()``, asked again at
    # each poke or nudge (``WakeSignal.until``)


def subscribe_local_changes(dataplane: Dataplane, callback: Callable[[], None]) -> bool:
    """Ask ``dataplane`` to call ``callback`` on local changes, if it can; True if it can."""
    subscribe = getattr(dataplane, "on_local_change", None)
    if subscribe is None:
        return False
    subscribe(callback)
    return True


class AgentRefused(Exception):
    """The server refused to register this agent, and asking again will not change that."""


class WakeSignal:
    """Level-triggered wake-up: any number of pokes before a wait collapse into one.

    ``poked_at`` is when the first of the pokes that ended the last ``wait`` came (None if
    there was none): the log line reports how long the loop took to start after it.
    ``only_revisions`` says whether every one of those pokes named the revision it was
    about (a poke without one, a resync, always needs a reconcile).
    A ``nudge`` only ends the wait early.  ``until`` waits for a condition that a poke or
    a nudge may have made true, leaving them to the next ``wait``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._event = threading.Event()
        self.latest_revision = 0
        self._lock = threading.Lock()
        self._clock = clock
        self._pending_since: float | None = None
        self._pending_bare = False
        self.poked_at: float | None = None
        self.only_revisions = True
        self._stir = threading.Condition()  # notified by every poke and nudge (``until``)
        self._stirs = 0  # how many pokes and nudges came (``until``)

    def poke(self, revision: int | None = None, resync: bool = False) -> None:
        """Something changed (at ``revision``, if known; ``resync``: whatever revision the
        loop holds, e.g. the server's revisions went back): the loop must reconcile."""
        with self._lock:
            if revision is not None:
                self.latest_revision = max(self.latest_revision, revision)
            if revision is None or resync:
                self._pending_bare = True
            if self._pending_since is None:
                self._pending_since = self._clock()
        self._stirred()

    def poked(self) -> bool:
        """Whether a poke came since the last ``wait`` ended."""
        with self._lock:
            return self._pending_since is not None

    def nudge(self) -> None:
        """Something local may have changed: the loop looks (cheaply) before deciding."""
        self._stirred()

    def _stirred(self) -> None:
        self._event.set()
        with self._stir:
            self._stirs += 1
            self._stir.notify_all()

    def until(self, timeout: float, news: Callable[[], bool]) -> bool:
        """Wait up to ``timeout`` seconds until ``news()`` holds, asking again after every
        poke or nudge (each left for the next ``wait``); whether it came.  A nudge that
        changed nothing yet (an OVSDB row the switch has not numbered) does not end it."""
        deadline = time.monotonic() + timeout
        while True:
            with self._stir:
                seen = self._stirs
            if news():  # not under the lock: it may read what the nudging thread holds
                return True
            with self._stir:
                while self._stirs == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._stir.wait(remaining)

    def wait(self, timeout: float) -> bool:
        """Wait for a poke or a nudge (or ``timeout``); True if there was a poke."""
        self._event.wait(timeout)
        self._event.clear()
        with self._lock:
            self.poked_at, self._pending_since = self._pending_since, None
            self.only_revisions, self._pending_bare = not self._pending_bare, False
        return self.poked_at is not None


def registered_mac(answer: Any) -> str | None:
    """The host's DVR MAC from a registration's answer, when the server gave one (a server
    gives it once the host has one; an older one never does: then ``host-mac`` is asked,
    whose answer the agent takes as it comes too)."""
    mac = answer.get("host_mac") if isinstance(answer, dict) else None
    return mac if isinstance(mac, str) and mac else None


class AgentLoop:
    def __init__(self, config: AgentConfig, client: ServerClient, dataplane: Dataplane,
                 clock: Callable[[], float] = time.monotonic,
                 random: Callable[[], float] = random.random):
        self.config = config
        self.client = client
        self.dataplane = dataplane
        self.clock = clock
        self.random = random  # in [0, 1): the jitter of every backoff
        self.wake = WakeSignal(clock)
        self.applied_revision = 0
        self.last_outcome: ApplyOutcome | None = None
        self.view: HostView | None = None  # the last view the server sent (what deltas patch)
        self.pushed = PushedViews()
        # the report of the last pass, held back while a change waited (sent once idle)
        self.unreported: tuple[ApplyOutcome, HostView] | None = None

    # -- start-up -----------------------------------------------------------------------
    def retries(self, activity: str) -> Retries:
        return Retries(activity, self.config.max_backoff, self.random, log)

    def register(self, stop: threading.Event) -> str:
        """Register with the server and get this host's MAC, retrying until it works;
        ``AgentRefused`` if the server refuses in a way that retrying cannot fix."""
        retries = self.retries("register")
        while not stop.is_set():
            try:
                answer = self.client.register_agent(self.config.host, self.config.mode,
                                                    self.config.local_ip, self.config.datapath,
                                                    self.config.availability_zone)
                mac = registered_mac(answer) or self.client.host_mac(self.config.host)
                log.info("registered host=%s mode=%s host_mac=%s", self.config.host,
                         self.config.mode, mac)
                return mac
            except Exception as exc:
                delay = retries.failed(exc)
                if delay is None:
                    raise AgentRefused(str(exc)) from exc
                stop.wait(delay)
        return ""

    # -- one pass -----------------------------------------------------------------------
    def reconcile_once(self, trigger: str = "start", since: float | None = None) -> ApplyOutcome:
        """Fetch, reconcile, log, report.  ``trigger`` (why) and ``since`` (when the reason
        arose) only go into the log line."""
        started = self.clock()
        local = getattr(self.dataplane, "reconcile_local", None) if trigger == "vif" else None
        fetch = self.fetch_view(local_only=trigger in ("vif", "verify"))
        view = fetch.view
        fetched = self.clock()
        if local is not None and fetch.kind == "held":
            outcome = local(view)
        else:
            outcome = self.dataplane.reconcile(view)
        elapsed_ms = (self.clock() - started) * 1000
        counts = " ".join(f"{k}={v}" for k, v in sorted(outcome.counts.items()))
        phases = {"fetch": (fetched - started) * 1000, **outcome.timings}
        if since is not None:
            phases = {"wait": (started - since) * 1000, **phases}
        timings = " ".join(f"{k}_ms={v:.1f}" for k, v in phases.items())
        log.info("reconcile host=%s revision=%d trigger=%s view=%s view_bytes=%d %s errors=%d "
                 "%s ms=%.1f%s", self.config.host, view.revision, trigger, fetch.kind,
                 fetch.size, counts, len(outcome.errors), timings, elapsed_ms,
                 "" if outcome.verified else " verify=next")
        for error in outcome.errors:
            log.warning("reconcile error: %s", error)
        self.last_outcome = outcome
        if not outcome.verified:  # the next pass, at once, applies and reports the rest
            return outcome
        if not outcome.errors:
            self.applied_revision = view.revision
        self.unreported = (outcome, view)
        if not self._change_waits(outcome):  # else the next pass first: its report is newer
            self.send_report()
        return outcome

    def fetch_view(self, local_only: bool = False) -> FetchedView:
        """The host's current view: the view a watch answer brought (when it is as new as
        the view held and every revision the watch told of), the held view patched with
        the server's delta, or the full view (at start, when the server has no delta from
        the held view, or when the delta does not apply to it).  The result is held for the
        next fetch.

        ``local_only``: only something on this host changed (a VIF plugged or unplugged);
        the view held is then used as it is when the watch told of no newer revision (a
        change it has not told of yet wakes the loop again when it does)."""
        host = self.config.host
        spent = 0
        held = self.view
        if held is not None:
            newest = max(held.revision, self.wake.latest_revision)
            pushed = self.pushed.take(newest)
            if pushed is not None:
                return self._hold(pushed)
            if local_only and held.revision >= newest:
                return FetchedView(held, "held", 0)
            answer = self.client.fetch_view(host, held.revision)
            if isinstance(answer.update, HostView):
                return self._hold(FetchedView(answer.update, "full", answer.size))
            try:
                return self._hold(FetchedView(apply(held, answer.update), "delta", answer.size))
            except DeltaRefused as exc:
                log.warning("delta refused (%s): fetching the full view", exc)
                self.view = None
                self.pushed.hold(None)
                spent = answer.size
        answer = self.client.fetch_view(host, HOLDS_NO_VIEW)
        if not isinstance(answer.update, HostView):
            raise DeltaRefused("the server answered a request for the full view with a delta")
        return self._hold(FetchedView(answer.update, "full", spent + answer.size))

    def _hold(self, fetched: FetchedView) -> FetchedView:
        self.view = fetched.view
        self.pushed.hold(fetched.view)
        return fetched

    def _change_waits(self, outcome: ApplyOutcome) -> bool:
        """Whether the loop has another pass to run at once: the server told of a change,
        or the plugged VIFs are no longer those the pass saw."""
        return self.wake.poked() or (outcome.plugged is not None
                                     and self.dataplane.plugged_vifs() != outcome.plugged)

    def send_report(self) -> None:
        """Report the last pass, if not done yet."""
        if self.unreported is not None:
            outcome, view = self.unreported
            self.unreported = None
            self.report(outcome, view)

    def report(self, outcome: ApplyOutcome, view: HostView) -> None:
        local = {p.id for p in view.ports}
        up = sorted(set(outcome.ports_up) & local)
        down = sorted(local - set(outcome.ports_up))
        self.client.heartbeat(self.config.host, self.applied_revision, up, down,
                              outcome.vifs, outcome.local_vlans, **self.layout_report())

    def layout_report(self) -> dict[str, Any]:
        """The local settings that shape the dataplane, for the heartbeat: the server's
        rebuild of this host's desired state (``dvr flows``, ``dvr trace``, the web view)
        needs them.  The bridge mappings when there are some, each of ``LAYOUT_CHOICES``
        when it is not the default."""
        report: dict[str, Any] = {}
        mappings = dict(self.config.parsed_bridge_mappings())
        if mappings:
            report["bridge_mappings"] = mappings
        for name, (_, default) in LAYOUT_CHOICES.items():
            if getattr(self.config, name) != default:
                report[name] = getattr(self.config, name)
        return report

    # -- threads --------------------------------------------------------------------------
    def watch_once(self, since: int, timeout: float | None = None) -> int:
        """One watch request from ``since`` (waiting ``timeout``, by default the configured
        long poll): hand the view update it brought to the loop, poke the loop if anything
        changed; the revision to watch from next."""
        base = self.pushed.base()
        result = self.client.watch(
            self.config.host, since,
            self.config.watch_timeout if timeout is None else timeout,
            view_since=base.revision if base is not None else None)
        if result.view is not None:  # before the poke: the woken loop finds it
            self.pushed.bring(base, result.view)
        if result.resync or result.changes or result.revision < since:
            self.wake.poke(result.revision, resync=result.resync or result.revision < since)
        if result.closing is not None:
            raise ServerClosing(result.closing)
        return result.revision

    def watch_forever(self, stop: threading.Event) -> None:
        """Long-poll the server for changes from the last revision seen.  After a failed
        watch (the server restarting, unreachable, overloaded), the next one asks at once
        what changed meanwhile (timeout 0): the server's change log has every change after
        that revision, or answers ``resync`` when it no longer has them, so the agent fetches
        its view again only if something did change (a server restart sends it no view)."""
        since = 0
        retries = self.retries("watch")
        catching_up = False
        while not stop.is_set():
            if not catching_up and self.pushed.base() is None:
                self._wait_for_view(stop)
            try:
                since = self.watch_once(since, 0.0 if catching_up else None)
                retries.succeeded()
                catching_up = False
            except ServerClosing as closing:  # not a failure: ask again once it is back
                log.info("watch: %s", closing)
                stop.wait(honoured_delay(closing.retry_after, self.random))
                catching_up = True
            except Exception as exc:  # reconnect with backoff
                delay = retries.failed(exc)
                if delay is None:  # the watch is how changes arrive: ask again, but rarely
                    delay = retries.longest_delay()
                stop.wait(delay)
                catching_up = True

    def _wait_for_view(self, stop: threading.Event) -> None:
        """Before a long poll, wait (up to one long poll's time) until the loop holds a view:
        a watch that asks for the view update from it brings the next change's view with
        its answer, while one asked without it would hold no view until a change ended it
        (1,000 agents starting at once each asked for that change's update again)."""
        deadline = self.clock() + self.config.watch_timeout
        while not stop.is_set() and self.clock() < deadline:
            if self.pushed.wait_for_base(min(1.0, max(0.0, deadline - self.clock()))):
                return

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
        """Reconcile on a poke (the watch, a retry, a revision gap) or a VIF change; between
        them, heartbeat.  No timer resyncs: a change the watch missed shows as a gap between
        the server's revision for this host (in each heartbeat's answer) and what the loop
        holds, resynced after a random wait so that agents never move in lockstep."""
        retries = self.retries("reconcile")
        next_heartbeat = self.clock() + self._heartbeat_wait()
        gap_resync_at: float | None = None
        vifs: frozenset[str] | None = None
        try:
            subscribe_local_changes(self.dataplane, self.wake.nudge)
        except Exception as exc:  # polling still finds every change
            log.warning("cannot follow local changes (%s); polling every %.1fs", exc,
                        self.config.local_poll_interval)
        interrupt_with = getattr(self.dataplane, "interrupt_with", None)
        if interrupt_with is not None:
            interrupt_with(self.wake.poked, self.wake.until)
        unverified = False  # the last pass left part of its work to the next one
        self.wake.poke()
        while not stop.is_set():
            fired = self.wake.wait(0.0 if unverified else self.config.local_poll_interval) \
                and not self._applied()
            now = self.clock()
            gap = gap_resync_at is not None and now >= gap_resync_at
            current_vifs = self.dataplane.plugged_vifs()
            if fired or current_vifs != vifs or gap or unverified:
                trigger = "watch" if fired else "vif" if current_vifs != vifs else \
                    "gap" if gap else "verify"
                vifs = current_vifs
                gap_resync_at = None
                delay = None
                unverified = False
                try:
                    outcome = self.reconcile_once(trigger, self.wake.poked_at if fired else now)
                    unverified = not outcome.verified
                    if outcome.plugged is not None:
                        vifs = outcome.plugged
                    if outcome.errors:
                        delay = retries.failed(IncompleteReconcile(outcome.errors))
                    else:
                        retries.succeeded()
                except Exception as exc:  # the loop never dies
                    delay = retries.failed(exc)
                next_heartbeat = self.clock() + self._heartbeat_wait()
                if delay is not None:
                    stop.wait(delay)
                    self.wake.poke()
            elif self.unreported is not None:
                try:
                    self.send_report()
                except Exception as exc:  # the next heartbeat tells the applied revision
                    log.warning("report failed: %s", exc)
                next_heartbeat = self.clock() + self._heartbeat_wait()
            elif now >= next_heartbeat:
                server_revision = self._heartbeat()
                next_heartbeat = self.clock() + self._heartbeat_wait()
                if gap_resync_at is None and self.revision_gap(server_revision):
                    gap_resync_at = self.clock() + self.random() * self.config.resync_jitter
                    log.info("revision gap: the server has revision %d for this host, the "
                             "agent %d; resync in %.1fs", server_revision,
                             self.held_revision(), gap_resync_at - self.clock())

    def _applied(self) -> bool:
        """Whether the pokes that ended the last wait only told of revisions the last
        reconcile applied without error (a watch event for the change a VIF's reconcile
        already fetched): nothing to do."""
        outcome = self.last_outcome
        return (outcome is not None and not outcome.errors and outcome.verified
                and self.wake.only_revisions
                and self.wake.latest_revision <= self.applied_revision)

    def _heartbeat_wait(self) -> float:
        """The heartbeat interval ±10% at random: agents woken together drift apart."""
        return self.config.heartbeat_interval * (0.9 + 0.2 * self.random())

    def held_revision(self) -> int:
        """The newest revision this agent applied or was told of by the watch (and will
        fetch at once)."""
        return max(self.applied_revision, self.wake.latest_revision)

    def revision_gap(self, server_revision: int | None) -> bool:
        return server_revision is not None and server_revision > self.held_revision()

    def _heartbeat(self) -> int | None:
        """Send a heartbeat; the server's newest revision for this host, when it says."""
        outcome = self.last_outcome
        if outcome is None:
            return None
        try:
            answer = self.client.heartbeat(self.config.host, self.applied_revision,
                                           list(outcome.ports_up), [], outcome.vifs,
                                           outcome.local_vlans, **self.layout_report())
        except Exception as exc:
            log.warning("heartbeat failed: %s", exc)
            return None
        revision = answer.get("revision") if isinstance(answer, dict) else None
        return revision if isinstance(revision, int) and not isinstance(revision, bool) else None
