"""``--verify``: replay each switch pass of a trace on the real switch and compare.

The tracer asks a real switch through exactly one narrow port, ``SwitchProbe.trace``:
``ovs-appctl ofproto/trace <bridge> <flow>`` on a host, returning its text.  Each *switch
pass* of the computed trace (one ingress port on one host, followed across patch ports)
is replayed once; every computed OpenFlow step of that pass is then matched against the
real lookups, in order:

- the real switch looked up the same bridge and table and hit the same cookie: **agree**
  (the cookie names the owner and hashes the flow's content, so equal cookies mean equal
  flows);
- it looked up that table but hit another flow (or none): **disagree**, naming what it
  hit instead;
- it never reached that table (it left the computed path earlier): **missing**;
- it reported an error (``>>`` lines, e.g. "native tunnel routing failed") under the
  lookup: **disagree**;
- the probe failed or its output is unreadable: **error**.

Lookups the real switch made beyond the computed path (copies of a flooded frame, since
NORMAL floods until it has learned a MAC) are ignored: they are not a disagreement.

Namespace steps are checked against the kernel when the probe also implements
``NamespaceProbe``: ``ip -j route get <dst> from <src> iif <in device>`` in the namespace
must pick the computed device and gateway, and every NAT rule the step applied must be in
the namespace's ``ip dvr`` table as ``nft -j list ruleset`` prints it (same chain, the
owner as comment, the same statements).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from dvr.agent.desired.nftables import FAMILY, TABLE, rule_expressions
from dvr.agent.desired.openflow import port_text
from dvr.agent.desired.state import Flow, NatRule
from dvr.trace.hosts import HostData
from dvr.trace.ofproto import RealTrace, parse_ofproto_trace
from dvr.trace.steps import (
    NamespaceCheck,
    NamespaceStep,
    OpenFlowStep,
    PacketView,
    RealHit,
    Step,
    StepCheck,
    Trace,
    TunnelStep,
)


class SwitchProbe(Protocol):
    """The one port through which the tracer asks a real switch."""

    def trace(self, host: str, bridge: str, flow: str, ct_next: tuple[str, ...] = ()) -> str:
        """The output of ``ovs-appctl ofproto/trace [--ct-next S ...] <bridge> <flow>`` on
        ``host``: each conntrack lookup that resumes the pipeline finds the next state of
        ``ct_next`` (OVS's default when there is none left: ``trk,new``).

        Raises ``ProbeError`` (or OSError) when the switch cannot be asked."""
        ...


@runtime_checkable
class NamespaceProbe(Protocol):
    """The port through which the tracer asks a host's kernel about one namespace."""

    def route_get(self, host: str, namespace: str, destination: str, source: str,
                  in_device: str) -> str:
        """The output of ``ip -j route get <destination> from <source> iif <in_device>``."""
        ...

    def nat_ruleset(self, host: str, namespace: str) -> str:
        """The output of ``nft -j list ruleset`` in the namespace."""
        ...


class ProbeError(RuntimeError):
    """The real switch could not be asked (host unknown, daemon down, command failed)."""


def ofproto_flow(in_port: str, packet: PacketView,
                 tunnel: tuple[str, str] | None = None) -> str:
    """The ``ofproto/trace`` flow for ``packet`` entering through ``in_port``.

    ``tunnel`` = (source IP, destination IP) of the outer header for a frame that arrives
    from a VXLAN port (its VNI is ``packet.tun_id``).
    """
    fields = [f"in_port={port_text(in_port)}"]
    if packet.tun_id is not None:
        fields.append(f"tun_id={packet.tun_id:#x}")
        if tunnel is not None:
            fields += [f"tun_src={tunnel[0]}", f"tun_dst={tunnel[1]}"]
    fields += [packet.proto, f"dl_src={packet.dl_src}", f"dl_dst={packet.dl_dst}"]
    if packet.dl_vlan is not None:
        fields.append(f"dl_vlan={packet.dl_vlan}")
    fields += [f"nw_src={packet.nw_src}", f"nw_dst={packet.nw_dst}", f"nw_ttl={packet.nw_ttl}"]
    if packet.proto == "icmp":
        fields += [f"icmp_type={packet.icmp_type or 0}", "icmp_code=0"]
    else:
        fields += [f"tp_src={packet.tp_src or 0}", f"tp_dst={packet.tp_dst or 0}"]
    return ",".join(fields)


def labelled_segments(steps: list[Step], indexes: list[int],
                      tunnel: tuple[str, str] | None
                      ) -> list[tuple[list[int], tuple[str, str] | None]]:
    """One pass as ``ofproto/trace`` can replay it.  A conntrack lookup that must find a
    ct_label (an established connection's) can only be given it in the traced flow, and a
    patch port clears it: such a pass is asked as two traces, the second starting where it
    last entered a bridge before the lookup (from the patch port, with the headers it had
    there), be it another bridge or the same one again (br-tun folded into br-int: its
    patch pair joins br-int to itself)."""
    labelled = next((i for i in indexes if isinstance(steps[i], OpenFlowStep)
                     and steps[i].ct_lookup is not None and steps[i].ct_lookup[1]), None)
    if labelled is None:
        return [(indexes, tunnel)]
    split = max(n for n in range(indexes.index(labelled) + 1)
                if n == 0 or _entered(steps[indexes[n - 1]], steps[indexes[n]]))
    if split == 0:
        return [(indexes, tunnel)]
    return [(indexes[:split], tunnel), (indexes[split:], None)]


def _entered(before: Step, step: Step) -> bool:
    """Whether ``step`` is the first lookup after the frame crossed into a bridge: its
    bridge or its in_port is not the lookup's before (resubmits keep both)."""
    assert isinstance(before, OpenFlowStep) and isinstance(step, OpenFlowStep)
    return (before.bridge, before.in_port) != (step.bridge, step.in_port)


def switch_passes(steps: tuple[Step, ...]) -> list[tuple[list[int], tuple[str, str] | None]]:
    """Indexes of the OpenFlow steps of each pass, and the tunnel it arrived through."""
    passes: dict[int, list[int]] = {}
    tunnels: dict[int, tuple[str, str] | None] = {}
    previous: Step | None = None
    for index, step in enumerate(steps):
        if isinstance(step, OpenFlowStep):
            if step.switch_pass not in passes:
                passes[step.switch_pass] = []
                tunnels[step.switch_pass] = (
                    (previous.local_ip, previous.remote_ip)
                    if isinstance(previous, TunnelStep) else None)
            passes[step.switch_pass].append(index)
        previous = step
    return [(indexes, tunnels[key]) for key, indexes in passes.items()]


def _find(hits: tuple[RealHit, ...], start: int, step: OpenFlowStep,
          wanted: Callable[[OpenFlowStep, RealHit], bool]) -> int | None:
    return next((i for i in range(start, len(hits)) if wanted(step, hits[i])), None)


def _same_lookup(step: OpenFlowStep, hit: RealHit) -> bool:
    return hit.bridge == step.bridge and hit.table == step.table


def _same_flow(step: OpenFlowStep, hit: RealHit) -> bool:
    if not _same_lookup(step, hit):
        return False
    if step.flow is None:
        return hit.miss
    return not hit.miss and (hit.cookie or 0) == step.flow.cookie


def _equally_ranked_conjunction(step: OpenFlowStep, hit: RealHit,
                                known: Mapping[int, Flow]) -> bool:
    """Whether the switch hit another conjunction of the same owner, table and priority as
    the computed step: when a packet completes several conjunctive matches of one priority
    (two rules of a port's groups admitting it), OpenFlow leaves the choice to the switch,
    and either is the same verdict."""
    real = known.get(hit.cookie) if hit.cookie is not None and not hit.miss else None
    wanted = step.flow
    return (real is not None and wanted is not None
            and real.match.conj_id is not None and wanted.match.conj_id is not None
            and (real.table, real.priority, real.owner)
            == (wanted.table, wanted.priority, wanted.owner))


def _describe_real(hit: RealHit, known: Mapping[int, Flow]) -> str:
    text = hit.describe()
    flow = known.get(hit.cookie) if hit.cookie is not None else None
    if flow is not None:
        text += f" [{flow.owner}]"
    elif not hit.miss:
        text += " [a flow the desired state does not have]"
    return text


def compare_pass(steps: list[OpenFlowStep], real: RealTrace,
                 known: Mapping[int, Flow]) -> list[StepCheck]:
    """The real switch's opinion of each computed step of one pass."""
    checks: list[StepCheck] = []
    position = 0
    diverged = False
    for step in steps:
        exact = None if diverged else _find(real.hits, position, step, _same_flow)
        if exact is not None:
            hit = real.hits[exact]
            position = exact + 1
            errors = [n.removeprefix(">>").strip() for n in hit.notes if n.startswith(">>")]
            if errors:
                checks.append(StepCheck("disagree", "the real switch reports: "
                                        + "; ".join(errors), hit))
            else:
                checks.append(StepCheck("agree", "; ".join(hit.notes), hit))
            continue
        other = None if diverged else _find(real.hits, position, step,
                                            _same_lookup)
        if other is not None:
            hit = real.hits[other]
            position = other + 1
            if _equally_ranked_conjunction(step, hit, known):
                checks.append(StepCheck(
                    "agree", f"the real switch chose {_describe_real(hit, known)}, another "
                    "rule admitting the packet at the same priority (OpenFlow leaves the "
                    "choice among complete conjunctions to the switch)", hit))
                continue
            wanted = ("no flow" if step.flow is None
                      else f"cookie {step.flow.cookie:#x}")
            checks.append(StepCheck(
                "disagree",
                f"the real switch hit {_describe_real(hit, known)} instead of {wanted}", hit))
            diverged = True
            continue
        checks.append(StepCheck(
            "missing",
            f"the real switch never looked up {step.bridge} table {step.table} on this path",
        ))
        diverged = True
    return checks


def _flows_by_cookie(trace: Trace,
                     hosts: Mapping[str, HostData] | None) -> dict[str, dict[int, Flow]]:
    """host -> cookie -> desired Flow, to name what the real switch hit instead."""
    known: dict[str, dict[int, Flow]] = {}
    for step in trace.openflow_steps():
        flows = known.get(step.host)
        if flows is None:
            flows = known[step.host] = {}
            data = hosts.get(step.host) if hosts is not None else None
            if data is not None:
                flows.update({f.cookie: f for b in data.state.bridges for f in b.flows})
        if step.flow is not None:
            flows[step.flow.cookie] = step.flow
    return known


def verify_trace(trace: Trace, probe: SwitchProbe,
                 hosts: Mapping[str, HostData] | None = None) -> Trace:
    """``trace`` (and its reply) with every OpenFlow step checked against the real switch.

    ``hosts`` (the tracer's input) lets a disagreement name the desired flow the real
    switch hit instead of the computed one.
    """
    known = _flows_by_cookie(trace, hosts)
    steps = list(trace.steps)
    segments = [segment for indexes, tunnel in switch_passes(trace.steps)
                for segment in labelled_segments(steps, indexes, tunnel)]
    for indexes, tunnel in segments:
        first = steps[indexes[0]]
        assert isinstance(first, OpenFlowStep)
        flow = ofproto_flow(first.in_port, first.packet_in, tunnel)
        pass_steps = [steps[i] for i in indexes]
        lookups = [s.ct_lookup for s in pass_steps
                   if isinstance(s, OpenFlowStep) and s.ct_lookup is not None]
        if lookups and lookups[0][1]:
            flow += f",ct_label={lookups[0][1]:#x}"
        ct_next = tuple(state for state, _ in lookups)
        checks = _checks_for(probe, first.host, first.bridge, flow, pass_steps,  # type: ignore[arg-type]
                             known.get(first.host, {}), ct_next)
        for index, check in zip(indexes, checks, strict=True):
            step = steps[index]
            assert isinstance(step, OpenFlowStep)
            steps[index] = replace(step, check=check)
    if isinstance(probe, NamespaceProbe):
        rulesets: dict[tuple[str, str], str | Exception] = {}
        for index, step in enumerate(steps):
            if isinstance(step, NamespaceStep):
                steps[index] = replace(step, check=check_namespace(probe, step, rulesets))
    reply = verify_trace(trace.reply, probe, hosts) if trace.reply is not None else None
    return replace(trace.with_steps(tuple(steps), verified=True), reply=reply)


# --- namespaces ---------------------------------------------------------------------------------


def _route_disagreement(step: NamespaceStep, text: str) -> str | None:
    """What the kernel's ``ip -j route get`` answer says differently (None: it agrees)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return f"unreadable ip route get output: {text.strip()[:80]}"
    if not isinstance(answer, list) or not answer or not isinstance(answer[0], dict):
        return f"unexpected ip route get output: {text.strip()[:80]}"
    route: dict[str, Any] = answer[0]
    computed = step.route
    if route.get("type") not in (None, "unicast"):
        return f"the kernel answers a {route.get('type')} route, not via {computed.device}"
    problems = []
    if route.get("dev") != computed.device:
        problems.append(f"device {route.get('dev')} instead of {computed.device}")
    if computed.via is not None and route.get("gateway") != computed.via:
        problems.append(f"gateway {route.get('gateway') or 'none'} instead of {computed.via}")
    return "; ".join(problems) or None


def _contains(real: object, wanted: object) -> bool:
    """``wanted`` is in ``real`` (dicts: every wanted key, recursively; else equal)."""
    if isinstance(wanted, dict):
        return isinstance(real, dict) and all(
            key in real and _contains(real[key], value) for key, value in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(real, list) and len(real) == len(wanted)
                and all(_contains(r, w) for r, w in zip(real, wanted, strict=True)))
    return real == wanted


def real_nat_rules(text: str) -> list[dict[str, Any]]:
    """The rules of the ``ip dvr`` table in ``nft -j list ruleset`` output."""
    document = json.loads(text)
    rules = []
    for item in document.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if rule and rule.get("family") == FAMILY and rule.get("table") == TABLE:
            rules.append(rule)
    return rules


def _nat_missing(rule: NatRule, real: list[dict[str, Any]]) -> bool:
    wanted = rule_expressions(rule)
    return not any(r.get("chain") == rule.chain and r.get("comment") == rule.owner
                   and _contains(r.get("expr"), wanted) for r in real)


def check_namespace(probe: NamespaceProbe, step: NamespaceStep,
                    rulesets: dict[tuple[str, str], str | Exception]) -> NamespaceCheck:
    """The kernel's opinion of one namespace step (``rulesets`` caches nft per namespace)."""
    packet = step.decision_packet
    try:
        text = probe.route_get(step.host, step.namespace, packet.nw_dst, packet.nw_src,
                               step.in_device)
    except (ProbeError, OSError) as exc:
        return NamespaceCheck("error", f"could not ask the kernel: {exc}")
    problem = _route_disagreement(step, text)
    if problem is not None:
        return NamespaceCheck("disagree", f"ip route get: {problem}")
    if not step.nat:
        return NamespaceCheck("agree", "ip route get agrees")
    key = (step.host, step.namespace)
    if key not in rulesets:
        try:
            rulesets[key] = probe.nat_ruleset(step.host, step.namespace)
        except (ProbeError, OSError) as exc:
            rulesets[key] = exc
    ruleset = rulesets[key]
    if isinstance(ruleset, Exception):
        return NamespaceCheck("error", f"could not list the nft ruleset: {ruleset}")
    try:
        real = real_nat_rules(ruleset)
    except (ValueError, AttributeError):
        return NamespaceCheck("error", "unreadable nft -j list ruleset output")
    missing = [r for r in step.nat if _nat_missing(r, real)]
    if missing:
        return NamespaceCheck("disagree", "nft: no rule " + "; ".join(
            f"{r.chain} [{r.owner}] {rule_expressions(r)}" for r in missing))
    return NamespaceCheck("agree", "ip route get and the nft ruleset agree")


def _checks_for(probe: SwitchProbe, host: str, bridge: str, flow: str,
                steps: list[OpenFlowStep], known: Mapping[int, Flow],
                ct_next: tuple[str, ...] = ()) -> list[StepCheck]:
    try:
        text = probe.trace(host, bridge, flow, ct_next)
    except (ProbeError, OSError) as exc:
        return [StepCheck("error", f"could not ask the real switch: {exc}")] * len(steps)
    real = parse_ofproto_trace(text)
    if not real.parsed:
        first_line = text.strip().splitlines()[0] if text.strip() else "(no output)"
        return [StepCheck("error", f"unreadable ofproto/trace output: {first_line}")] * len(
            steps)
    return compare_pass(steps, real, known)
