// The diagram: hosts as boxes holding their router instances and VMs, networks as coloured
// nodes above them, and a traced path drawn across hosts.  Positions are computed in
// layout.ts (a "preset" layout), so the picture is stable: the same topology always looks
// the same.

import cytoscape from "cytoscape";
import type { Core, EdgeSingular, NodeSingular } from "cytoscape";

import type { Hop, Topology, Trace } from "./api";
import { hostNodeId, layoutTopology, routerNodeId, structureKey, vmNodeId } from "./layout";
import type { FontWeight, MeasureText } from "./layout";

const FONT_FAMILY = "Inter, system-ui, sans-serif";
const FONT_SIZE = 12;
const DETOUR_MARGIN = 36; // how far below the host boxes a detouring trace edge passes
const DENIED = "#be123c"; // a path a port's firewall denied (delivered paths are amber)

/** Text widths from a canvas in the diagram's font (what cytoscape draws labels with). */
function canvasMeasure(): MeasureText {
  const context = document.createElement("canvas").getContext("2d");
  const fallback = (text: string) => Math.max(...text.split("\n").map((l) => l.length)) * FONT_SIZE * 0.62;
  if (!context) return fallback;
  const cache = new Map<string, number>();
  return (text: string, weight: FontWeight) => {
    const key = `${weight}|${text}`;
    const known = cache.get(key);
    if (known !== undefined) return known;
    context.font = `${weight === "bold" ? "bold " : ""}${FONT_SIZE}px ${FONT_FAMILY}`;
    const width = Math.ceil(Math.max(...text.split("\n").map((line) => context.measureText(line).width)));
    cache.set(key, width);
    return width;
  };
}

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "text-wrap": "wrap",
      "font-family": FONT_FAMILY,
      "font-size": FONT_SIZE,
      color: "#111827",
      "text-valign": "center",
      "text-halign": "center",
    },
  },
  {
    // the box: its label is drawn by its header band (host-header), inside the box
    selector: "node.host",
    style: {
      label: "",
      shape: "round-rectangle",
      "background-color": "#f8fafc",
      "border-width": 2,
      "border-color": "#94a3b8",
      padding: "14px",
    },
  },
  { selector: 'node.host[state = "alive"]', style: { "border-color": "#16a34a" } },
  { selector: 'node.host[state = "dead"]', style: { "border-color": "#dc2626", "border-style": "dashed" } },
  { selector: 'node.host[state = "unregistered"]', style: { "border-style": "dotted" } },
  {
    selector: "node.host-header",
    style: {
      shape: "round-rectangle",
      width: "data(width)",
      height: "data(height)",
      "background-color": "#e2e8f0",
      "border-width": 0,
      "font-weight": "bold",
      "line-height": 1.35,
      "text-max-width": "data(width)",
      color: "#334155",
      events: "no",
      // an opaque band above the lines that run to the networks, so the label stays legible
      "z-compound-depth": "top",
    },
  },
  { selector: 'node.host-header[state = "alive"]', style: { "background-color": "#dcfce7", color: "#14532d" } },
  { selector: 'node.host-header[state = "dead"]', style: { "background-color": "#fee2e2", color: "#7f1d1d" } },
  {
    selector: "node.host-empty",
    style: {
      shape: "round-rectangle",
      width: "data(width)",
      height: "data(height)",
      "background-opacity": 0,
      "border-width": 1,
      "border-style": "dashed",
      "border-color": "#cbd5e1",
      "font-style": "italic",
      color: "#64748b",
      events: "no",
    },
  },
  {
    selector: "node.router",
    style: {
      shape: "round-rectangle",
      width: "data(width)",
      height: "data(height)",
      "background-color": "#fef3c7",
      "border-width": 2,
      "border-color": "#b45309",
      "font-weight": "bold",
      "line-height": 1.35,
    },
  },
  {
    selector: "node.vm",
    style: {
      shape: "round-rectangle",
      width: "data(width)",
      height: "data(height)",
      "background-color": "#ffffff",
      "border-width": 3,
      "border-color": "data(color)",
    },
  },
  { selector: 'node.vm[status != "ACTIVE"]', style: { "border-style": "dashed" } },
  { selector: "node.vm[?unfiltered]", style: { "border-style": "double", "border-width": 6, "background-color": "#f1f5f9" } },
  {
    selector: "node.network",
    style: {
      shape: "round-rectangle",
      width: "data(width)",
      height: "data(height)",
      "background-color": "data(color)",
      color: "#ffffff",
      "font-weight": "bold",
    },
  },
  {
    selector: "edge",
    style: {
      width: 2,
      "curve-style": "straight",
      "line-color": "data(color)",
      opacity: 0.55,
    },
  },
  {
    // down from the VM or router, across at the network's own height, up into the network
    selector: "edge.attachment",
    style: {
      "curve-style": "taxi",
      "taxi-direction": "vertical",
      "taxi-turn": "data(turn)",
      "taxi-turn-min-distance": 4,
    },
  },
  { selector: "edge.interface", style: { "line-style": "dashed" } },
  { selector: "node.picked-src", style: { "border-color": "#111827", "border-width": 5, "underlay-color": "#22c55e", "underlay-opacity": 0.35, "underlay-padding": 6 } },
  { selector: "node.picked-dst", style: { "border-color": "#111827", "border-width": 5, "underlay-color": "#3b82f6", "underlay-opacity": 0.35, "underlay-padding": 6 } },
  { selector: ".faded", style: { opacity: 0.3 } },
  { selector: "edge.faded", style: { opacity: 0.15 } },
  { selector: "node.network.faded", style: { opacity: 0.55 } },
  { selector: "node.host.faded", style: { opacity: 0.6 } },
  { selector: "node.on-path", style: { "underlay-color": "#f59e0b", "underlay-opacity": 0.45, "underlay-padding": 8 } },
  { selector: "node.host.on-path", style: { "border-color": "#f59e0b", "border-width": 3, "underlay-opacity": 0.12 } },
  {
    selector: "edge.trace",
    style: {
      width: 5,
      opacity: 1,
      "line-color": "#f59e0b",
      "target-arrow-color": "#f59e0b",
      "target-arrow-shape": "triangle",
      "curve-style": "bezier",
      "control-point-step-size": 60,
      label: "data(label)",
      "font-size": 12,
      "font-weight": "bold",
      color: "#92400e",
      "text-background-color": "#fffbeb",
      "text-background-opacity": 1,
      "text-background-padding": "3px",
      "text-border-color": "#f59e0b",
      "text-border-width": 1,
      "text-border-opacity": 1,
      "z-index": 99,
    },
  },
  { selector: "node.drop-here", style: { "underlay-color": "#dc2626", "underlay-opacity": 0.4, "border-color": "#dc2626" } },
  { selector: "node.host.drop-here", style: { "underlay-opacity": 0.08, "border-style": "solid" } },
  { selector: "edge.trace.dropped", style: { "line-color": "#dc2626", "target-arrow-color": "#dc2626", "target-arrow-shape": "tee", color: "#991b1b" } },
  // a path a port's firewall denied: all of it in its own colour, dashed, ending in a bar
  {
    selector: "edge.trace.denied",
    style: {
      "line-color": DENIED,
      "line-style": "dashed",
      "target-arrow-color": DENIED,
      color: "#881337",
      "text-background-color": "#fff1f2",
      "text-border-color": DENIED,
    },
  },
  { selector: "edge.trace.denied.dropped", style: { "target-arrow-shape": "tee" } },
  { selector: "node.on-path.denied-path", style: { "underlay-color": DENIED, "underlay-opacity": 0.25 } },
  { selector: "node.host.on-path.denied-path", style: { "border-color": DENIED, "underlay-opacity": 0.08 } },
  { selector: "node.drop-here.denied-path", style: { "underlay-color": DENIED, "underlay-opacity": 0.5, "border-color": DENIED } },
  {
    selector: "node.address",
    style: { shape: "ellipse", width: 130, height: 40, "background-color": "#e5e7eb", "border-width": 2, "border-color": "#6b7280" },
  },
];

export interface DiagramNode {
  id: string;
  kind: string;
  label: string;
  parent: string | null;
}

export interface DiagramBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface DiagramInspector {
  nodes(): DiagramNode[];
  pathNodes(): DiagramNode[];
  position(id: string): { x: number; y: number } | null; // on the canvas, in CSS pixels
  /** A node's extent in diagram coordinates: its body, or body and label (``withLabel``). */
  box(id: string, withLabel: boolean): DiagramBox | null;
  traceEdges(): TraceEdge[];
  /** Nodes marked as where the traced packet was dropped (or denied). */
  dropNodes(): DiagramNode[];
}

export interface TraceEdge {
  source: string;
  target: string;
  label: string;
  midpoint: { x: number; y: number };
  color: string; // as drawn (cytoscape's computed line colour)
  denied: boolean;
}

export type VmClick = (portId: string) => void;

type Point = { x: number; y: number };

function segmentCrossesBox(from: Point, to: Point, box: DiagramBox): boolean {
  const samples = 64;
  for (let i = 0; i <= samples; i++) {
    const x = from.x + ((to.x - from.x) * i) / samples;
    const y = from.y + ((to.y - from.y) * i) / samples;
    if (x > box.x1 && x < box.x2 && y > box.y1 && y < box.y2) return true;
  }
  return false;
}

const IMMUTABLE_DATA = new Set(["id", "parent", "source", "target"]);

export class TopologyGraph {
  private readonly cy: Core;
  private readonly measure: MeasureText = canvasMeasure();
  private key = "";
  private geometryKey = "";
  private trace: Trace | null = null;

  constructor(container: HTMLElement, onVmClick: VmClick) {
    this.cy = cytoscape({
      container,
      style: STYLE,
      layout: { name: "preset" },
      minZoom: 0.2,
      maxZoom: 2.5,
      wheelSensitivity: 0.3,
      boxSelectionEnabled: false,
      autoungrabify: false,
    });
    this.cy.on("tap", "node.vm", (event) => onVmClick((event.target as NodeSingular).data("portId")));
    new ResizeObserver(() => {
      this.cy.resize();
      this.cy.fit(undefined, 40);
    }).observe(container);
  }

  /**
   * Draw ``topology``: rebuild and re-fit when its structure changed; else update labels, and
   * sizes and positions when those changed (a host label that grew widens its box).
   */
  render(topology: Topology): void {
    const key = structureKey(topology);
    const { elements, geometryKey } = layoutTopology(topology, this.measure);
    if (key !== this.key) {
      this.key = key;
      this.geometryKey = geometryKey;
      this.cy.batch(() => {
        this.cy.elements().remove();
        this.cy.add(elements);
      });
      this.cy.fit(undefined, 40);
    } else {
      const moved = geometryKey !== this.geometryKey;
      this.geometryKey = geometryKey;
      this.cy.batch(() => {
        for (const element of elements) {
          const existing = this.cy.getElementById(element.data.id as string);
          if (existing.empty()) continue;
          existing.data(Object.fromEntries(Object.entries(element.data).filter(([k]) => !IMMUTABLE_DATA.has(k))));
          if (moved && element.position) existing.position(element.position);
        }
      });
    }
    if (this.trace) this.showTrace(this.trace);
  }

  /** What the diagram shows, for tests and the console (read-only). */
  inspector(): DiagramInspector {
    const describe = (n: NodeSingular): DiagramNode => ({
      id: n.id(),
      kind: n.data("kind"),
      label: n.data("label"),
      parent: n.isChild() ? n.parent().first().id() : null,
    });
    return {
      nodes: () => this.cy.nodes().map(describe),
      pathNodes: () => this.cy.nodes(".on-path").map(describe),
      position: (id: string) => {
        const node = this.cy.getElementById(id);
        return node.nonempty() ? node.renderedPosition() : null;
      },
      box: (id: string, withLabel: boolean) => {
        const node = this.cy.getElementById(id);
        if (node.empty()) return null;
        const { x1, y1, x2, y2 } = node.boundingBox({ includeLabels: withLabel, includeOverlays: false });
        return { x1, y1, x2, y2 };
      },
      traceEdges: () =>
        this.cy.edges(".trace").map((e) => ({
          source: e.source().id(),
          target: e.target().id(),
          label: e.data("label"),
          midpoint: e.midpoint(),
          color: e.style("line-color"),
          denied: e.hasClass("denied"),
        })),
      dropNodes: () => this.cy.nodes(".drop-here").map(describe),
    };
  }

  markPicked(src: string | null, dst: string | null): void {
    this.cy.nodes().removeClass("picked-src picked-dst");
    if (src) this.cy.getElementById(vmNodeId(src)).addClass("picked-src");
    if (dst) this.cy.getElementById(vmNodeId(dst)).addClass("picked-dst");
  }

  clearTrace(): void {
    this.trace = null;
    this.cy.batch(() => {
      this.cy.elements(".trace, .address").remove();
      this.cy.elements().removeClass("faded on-path drop-here denied-path");
    });
  }

  /** Highlight the hosts, router instances and VMs a trace went through, joined in order. */
  showTrace(trace: Trace): void {
    this.clearTrace();
    this.trace = trace;
    const nodes = this.hopNodes(trace.hops);
    const dropped = trace.verdict !== "delivered";
    this.cy.batch(() => {
      this.cy.elements().addClass("faded");
      let previous: string | null = null;
      let pendingLabel: string[] = [];
      let hopNumber = 1;
      for (const { nodeId, label, drop } of nodes) {
        if (label) pendingLabel.push(label);
        if (nodeId === null) continue;
        const node = this.cy.getElementById(nodeId);
        node.removeClass("faded").addClass("on-path");
        node.ancestors().removeClass("faded").addClass("on-path");
        const enclosing = previous !== null && this.cy.getElementById(previous).ancestors().contains(node);
        if (drop && (previous === nodeId || enclosing)) {
          // dropped where the packet already is (or inside the host it is on): mark it there
          this.cy.getElementById(previous ?? nodeId).addClass("drop-here");
          node.addClass("drop-here");
          pendingLabel = [];
          continue;
        }
        if (previous !== null && previous !== nodeId) {
          this.cy.add({
            group: "edges",
            data: {
              id: `trace:${hopNumber}`,
              source: previous,
              target: nodeId,
              label: [`${hopNumber}`, ...pendingLabel].join(" · "),
            },
            classes: "trace",
          });
          hopNumber += 1;
        }
        pendingLabel = [];
        previous = nodeId;
      }
      if (dropped && this.cy.nodes(".drop-here").empty()) {
        const last = this.cy.edges(".trace").last();
        if (last.nonempty()) last.addClass("dropped");
        else if (previous !== null) this.cy.getElementById(previous).addClass("drop-here");
      }
      if (trace.denied) {
        this.cy.edges(".trace").addClass("denied");
        this.cy.elements(".on-path").addClass("denied-path");
        // denied at a port: the packet reached its firewall, so it ends there
        if (trace.denied.port_id && previous === vmNodeId(trace.denied.port_id)) {
          this.cy.getElementById(previous).addClass("drop-here");
        }
      }
      // a host on the path keeps its header readable
      this.cy.nodes(".host.on-path").children(".host-header").removeClass("faded");
    });
    const traced = this.cy.edges(".trace");
    traced.forEach((edge) => this.routeAroundHosts(edge));
    // a path bent below the hosts (or to an outside address) may leave the view: show it all
    const view = this.cy.extent();
    const path = traced.union(this.cy.nodes(".address")).boundingBox({});
    if (traced.nonempty() && (path.x1 < view.x1 || path.x2 > view.x2 || path.y1 < view.y1 || path.y2 > view.y2)) {
      this.cy.fit(undefined, 40);
    }
  }

  /**
   * A trace edge that would cross a host it does not start or end in (e.g. compute-1 to
   * network-1 past compute-2) is bent to pass below the host boxes, where nothing else is.
   */
  private routeAroundHosts(edge: EdgeSingular): void {
    const from = edge.source().position();
    const to = edge.target().position();
    const own = edge.source().ancestors(".host").union(edge.target().ancestors(".host"));
    const hosts = this.cy.nodes(".host");
    const boxOf = (host: cytoscape.SingularElementArgument): DiagramBox => host.boundingBox({ includeLabels: false, includeOverlays: false });
    const crossed = hosts.filter((host) => !own.contains(host) && segmentCrossesBox(from, to, boxOf(host)));
    if (crossed.empty()) return;
    const [left, right] = [Math.min(from.x, to.x), Math.max(from.x, to.x)];
    const spanned = hosts.filter((host) => boxOf(host).x2 >= left && boxOf(host).x1 <= right);
    const bottom = Math.max(...spanned.map((host) => boxOf(host).y2));
    const length = Math.hypot(to.x - from.x, to.y - from.y);
    const normalY = Math.abs(to.x - from.x) / length; // how much a sideways bend moves it down
    if (normalY < 0.3) return; // a steep edge: bending would not clear the boxes
    const middleY = (from.y + to.y) / 2;
    // one control point: the curve's middle lies half way to it
    const distance = (2 * (bottom + DETOUR_MARGIN - middleY)) / normalY;
    edge.style({ "curve-style": "unbundled-bezier", "control-point-weights": 0.5, "control-point-distances": distance });
    if (edge.midpoint().y < middleY) edge.style("control-point-distances", -distance);
  }

  private hopNodes(hops: Hop[]): { nodeId: string | null; label?: string; drop?: boolean }[] {
    return hops.map((hop) => {
      if (hop.kind === "vm" && hop.id) return { nodeId: vmNodeId(hop.id) };
      if (hop.kind === "router" && hop.id && hop.host) return { nodeId: routerNodeId(hop.id, hop.host) };
      if (hop.kind === "tunnel") {
        return { nodeId: null, label: `VXLAN${hop.vni != null ? ` VNI ${hop.vni}` : ""} → ${hop.to_host ?? "?"}` };
      }
      if (hop.kind === "drop" && hop.host && hop.firewall && hop.port_id) {
        // in a port's firewall: drawn at that VM (egress: where it started; ingress: its target)
        const atPort = vmNodeId(hop.port_id);
        const nodeId = this.cy.getElementById(atPort).nonempty() ? atPort : hostNodeId(hop.host);
        return { nodeId, label: `✘ denied (${hop.firewall} firewall)`, drop: true };
      }
      if (hop.kind === "drop" && hop.host) {
        const inRouter = hop.id ? routerNodeId(hop.id, hop.host) : null;
        const nodeId = inRouter && this.cy.getElementById(inRouter).nonempty() ? inRouter : hostNodeId(hop.host);
        return { nodeId, label: "✘ dropped", drop: true };
      }
      if (hop.kind === "address" && hop.ip) return { nodeId: this.addressNode(hop.ip) };
      if (hop.kind === "namespace") return { nodeId: null, label: `${hop.name ?? "namespace"} on ${hop.host ?? "?"}` };
      if (hop.kind === "segment") return { nodeId: null, label: `${hop.name ?? "br-ex"} → external segment → ${hop.to_host ?? "?"}` };
      return { nodeId: null };
    }).map((n) => (n.nodeId === null || this.cy.getElementById(n.nodeId).nonempty() ? n : { ...n, nodeId: null }));
  }

  private addressNode(ip: string): string {
    const id = `addr:${ip}`;
    if (this.cy.getElementById(id).empty()) {
      const box = this.cy.nodes(".host").boundingBox();
      this.cy.add({
        group: "nodes",
        data: { id, label: ip, kind: "address" },
        classes: "address",
        position: { x: box.x2 + 120, y: (box.y1 + box.y2) / 2 },
      });
    }
    return id;
  }
}
