"""Walk a packet through the computed pipelines across hosts (and check them for real).

Public entry points:
- ``trace_packet(hosts, request) -> Trace`` (pure): ``hosts`` maps host name ->
  ``HostData(view, state, plugged)``; ``request`` is a ``TraceRequest``;
- ``verify_trace(trace, probe, hosts) -> Trace``: every OpenFlow step checked against the
  real switch, asked through the one-method port ``SwitchProbe.trace(host, bridge, flow)``,
  and, when the probe is also a ``NamespaceProbe`` (``route_get``, ``nat_ruleset``), every
  namespace step against the kernel (implementations with I/O live in ``dvr.trace.probes``);
- north/south: ``TraceRequest.external_hosts`` names outside hosts (``ExternalHost``);
  a ``SegmentStep`` is a crossing of the external segment;
- ``render_text`` / ``trace_to_dict``: output for people and for programs;
- ``dvr.trace.cli``: the ``dvr trace`` command; ``dvr.trace.ofsim``: the OpenFlow simulator.
"""

from dvr.trace.hosts import HostData, LazyHostData
from dvr.trace.render import render_text, trace_to_dict
from dvr.trace.steps import (
    DeliveryStep,
    DropStep,
    ExternalHost,
    NamespaceStep,
    OpenFlowStep,
    SegmentStep,
    SendStep,
    Step,
    Trace,
    TraceRequest,
    TunnelStep,
    Verdict,
)
from dvr.trace.tracer import trace_packet
from dvr.trace.verify import NamespaceProbe, SwitchProbe, verify_trace

__all__ = [
    "DeliveryStep",
    "DropStep",
    "ExternalHost",
    "HostData",
    "LazyHostData",
    "NamespaceProbe",
    "NamespaceStep",
    "OpenFlowStep",
    "SegmentStep",
    "SendStep",
    "Step",
    "SwitchProbe",
    "Trace",
    "TraceRequest",
    "TunnelStep",
    "Verdict",
    "render_text",
    "trace_packet",
    "trace_to_dict",
    "verify_trace",
]
