// The diagram: hosts as boxes holding their router instances and VMs, networks as coloured
// nodes above them, and a traced path drawn across hosts.  Positions are computed here
// (a "preset" layout), so the picture is stable: the same topology always looks the same.

import cytoscape from "cytoscape";
import type { Core, ElementDefinition, NodeSingular } from "cytoscape";

import type { Hop, Host, Topology, Trace, Vm } from "./api";
import { networkColors } from "./colors";

const VM_W = 160;
const VM_H = 46;
const ROUTER_W = 160;
const ROUTER_H = 38;
const NET_W = 190;
const NET_H = 46;
const CELL_GAP = 26;
const HOST_GAP = 90;
const ROUTER_ROW_Y = 0;
const VM_ROW_Y = 96;
const VM_ROW_STEP = VM_H + 30;
const NETWORK_BAND_Y = -190;
const UNBOUND_HOST = "(unbound)";

export const vmNodeId = (portId: string): string => `vm:${portId}`;
export const routerNodeId = (routerId: string, host: string): string => `rtr:${routerId}@${host}`;
export const hostNodeId = (host: string): string => `host:${host}`;
export const networkNodeId = (networkId: string): string => `net:${networkId}`;

export function vmAddress(vm: Vm): string {
  return vm.fixed_ips.map((f) => f.ip_address).join(", ") || "no IP";
}

function hostLabel(host: Host): string {
  if (!host.registered) return `${host.host}\nno agent registered`;
  const live = host.alive ? "alive" : "DEAD";
  const sync = host.in_sync ? "in sync" : `${host.pending_revisions} behind`;
  return (
    `${host.host} · ${host.agent_mode} · ${live}\n` +
    `host MAC ${host.host_mac ?? "—"}\n` +
    `applied rev ${host.applied_revision} (${sync})`
  );
}

function hostState(host: Host): string {
  if (!host.registered) return "unregistered";
  return host.alive ? "alive" : "dead";
}

/** Stable key of everything that affects positions: re-layout only when it changes. */
export function structureKey(topology: Topology): string {
  const parts = [
    topology.hosts.map((h) => h.host).join(","),
    topology.networks.map((n) => n.id).join(","),
    topology.routers.map((r) => `${r.id}:${r.hosts.join("+")}:${r.interfaces.map((i) => i.network_id).join("+")}`).join(","),
    topology.vms.map((v) => `${v.id}:${v.host}:${v.network_id}`).join(","),
  ];
  return parts.join("|");
}

interface Placed {
  elements: ElementDefinition[];
}

function buildElements(topology: Topology): Placed {
  const colors = networkColors(topology.networks);
  const elements: ElementDefinition[] = [];
  const hostsByName = new Map(topology.hosts.map((h) => [h.host, h]));
  const hostOrder = topology.hosts.map((h) => h.host);
  if (topology.vms.some((v) => !v.host)) hostOrder.push(UNBOUND_HOST);

  const positions = new Map<string, { x: number; y: number }>();
  let left = 0;
  for (const hostName of hostOrder) {
    const host = hostsByName.get(hostName);
    const routers = topology.routers.filter((r) => r.hosts.includes(hostName));
    const vms = topology.vms
      .filter((v) => (v.host ?? UNBOUND_HOST) === hostName)
      .sort((a, b) => a.network_id.localeCompare(b.network_id) || a.name.localeCompare(b.name));
    const columns = Math.max(1, routers.length, Math.min(3, vms.length <= 2 ? vms.length : Math.ceil(vms.length / 2)));
    const width = columns * (VM_W + CELL_GAP) - CELL_GAP;
    elements.push({
      group: "nodes",
      data: {
        id: hostNodeId(hostName),
        label: host ? hostLabel(host) : `${UNBOUND_HOST}\nports bound to no host`,
        kind: "host",
        state: host ? hostState(host) : "unregistered",
        name: hostName,
      },
      classes: "host",
    });
    const rowLeft = (count: number, cellWidth: number): number =>
      left + (width - (count * (cellWidth + CELL_GAP) - CELL_GAP)) / 2 + cellWidth / 2;
    routers.forEach((router, i) => {
      const id = routerNodeId(router.id, hostName);
      const x0 = rowLeft(routers.length, ROUTER_W);
      positions.set(id, { x: x0 + i * (ROUTER_W + CELL_GAP), y: ROUTER_ROW_Y });
      const snat = router.snat_host === hostName ? " · SNAT" : "";
      elements.push({
        group: "nodes",
        data: {
          id,
          parent: hostNodeId(hostName),
          label: `⇄ ${router.name || router.id.slice(0, 8)}${snat}`,
          kind: "router",
          routerId: router.id,
          host: hostName,
        },
        classes: "router",
      });
    });
    const vmTop = routers.length ? VM_ROW_Y : ROUTER_ROW_Y;
    vms.forEach((vm, i) => {
      const row = Math.floor(i / columns);
      const inRow = Math.min(columns, vms.length - row * columns);
      const x0 = rowLeft(inRow, VM_W);
      const id = vmNodeId(vm.id);
      positions.set(id, { x: x0 + (i % columns) * (VM_W + CELL_GAP), y: vmTop + row * VM_ROW_STEP });
      elements.push({
        group: "nodes",
        data: {
          id,
          parent: hostNodeId(hostName),
          label: `${vm.name || vm.device_id || vm.id.slice(0, 8)}\n${vmAddress(vm)}`,
          kind: "vm",
          portId: vm.id,
          color: colors.get(vm.network_id) ?? "#4b5563",
          status: vm.status,
        },
        classes: "vm",
      });
    });
    left += width + HOST_GAP;
  }

  // Networks: above the hosts, each near the middle of what connects to it, never overlapping.
  const attached = new Map<string, number[]>();
  const attach = (networkId: string, nodeId: string): void => {
    const position = positions.get(nodeId);
    if (!position) return;
    attached.set(networkId, [...(attached.get(networkId) ?? []), position.x]);
  };
  for (const vm of topology.vms) attach(vm.network_id, vmNodeId(vm.id));
  for (const router of topology.routers) {
    for (const host of router.hosts) {
      for (const itf of router.interfaces) attach(itf.network_id, routerNodeId(router.id, host));
    }
  }
  const centre = (left - HOST_GAP) / 2;
  const wanted = topology.networks
    .map((n) => {
      const xs = attached.get(n.id) ?? [];
      return { network: n, x: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : centre };
    })
    .sort((a, b) => a.x - b.x);
  const span = wanted.length * (NET_W + CELL_GAP) - CELL_GAP;
  let previous = -Infinity;
  const shift = Math.min(0, centre - span / 2 - (wanted[0]?.x ?? 0) + NET_W / 2);
  for (const { network, x } of wanted) {
    const placedX = Math.max(x + shift, previous + NET_W + CELL_GAP);
    previous = placedX;
    const id = networkNodeId(network.id);
    positions.set(id, { x: placedX, y: NETWORK_BAND_Y });
    const cidrs = network.subnets.map((s) => s.cidr).join(", ") || "no subnet";
    const vni = network.segmentation_id != null ? ` · ${network.network_type} ${network.segmentation_id}` : "";
    elements.push({
      group: "nodes",
      data: {
        id,
        label: `${network.name || network.id.slice(0, 8)}${vni}\n${cidrs}`,
        kind: "network",
        color: colors.get(network.id),
      },
      classes: network.external ? "network external" : "network",
    });
  }

  for (const vm of topology.vms) {
    elements.push({
      group: "edges",
      data: {
        id: `e:${vm.id}`,
        source: vmNodeId(vm.id),
        target: networkNodeId(vm.network_id),
        color: colors.get(vm.network_id),
      },
      classes: "attachment",
    });
  }
  for (const router of topology.routers) {
    for (const host of router.hosts) {
      for (const itf of router.interfaces) {
        elements.push({
          group: "edges",
          data: {
            id: `e:${itf.port_id}@${host}`,
            source: routerNodeId(router.id, host),
            target: networkNodeId(itf.network_id),
            color: colors.get(itf.network_id),
            label: itf.ip_address,
          },
          classes: "attachment interface",
        });
      }
    }
  }
  for (const element of elements) {
    const position = positions.get(element.data.id as string);
    if (position) element.position = position;
  }
  return { elements };
}

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "text-wrap": "wrap",
      "font-family": "Inter, system-ui, sans-serif",
      "font-size": 12,
      color: "#111827",
      "text-valign": "center",
      "text-halign": "center",
    },
  },
  {
    selector: "node.host",
    style: {
      shape: "round-rectangle",
      "background-color": "#f8fafc",
      "border-width": 2,
      "border-color": "#94a3b8",
      padding: "22px",
      "text-valign": "top",
      "text-halign": "center",
      "text-margin-y": -6,
      "font-size": 12,
      "font-weight": "bold",
      "line-height": 1.35,
      color: "#334155",
    },
  },
  { selector: 'node.host[state = "alive"]', style: { "border-color": "#16a34a" } },
  { selector: 'node.host[state = "dead"]', style: { "border-color": "#dc2626", "border-style": "dashed" } },
  { selector: 'node.host[state = "unregistered"]', style: { "border-style": "dotted" } },
  {
    selector: "node.router",
    style: {
      shape: "round-rectangle",
      width: ROUTER_W,
      height: ROUTER_H,
      "background-color": "#fef3c7",
      "border-width": 2,
      "border-color": "#b45309",
      "font-weight": "bold",
    },
  },
  {
    selector: "node.vm",
    style: {
      shape: "round-rectangle",
      width: VM_W,
      height: VM_H,
      "background-color": "#ffffff",
      "border-width": 3,
      "border-color": "data(color)",
    },
  },
  { selector: 'node.vm[status != "ACTIVE"]', style: { "border-style": "dashed" } },
  {
    selector: "node.network",
    style: {
      shape: "round-rectangle",
      width: NET_W,
      height: NET_H,
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
    selector: "edge.interface",
    style: {
      "line-style": "dashed",
      label: "data(label)",
      "font-size": 10,
      color: "#6b7280",
      "text-background-color": "#ffffff",
      "text-background-opacity": 0.85,
      "text-background-padding": "2px",
    },
  },
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
  {
    selector: "node.address",
    style: { shape: "ellipse", width: 130, height: 40, "background-color": "#e5e7eb", "border-width": 2, "border-color": "#6b7280" },
  },
];

export interface DiagramNode {
  id: string;
  kind: string;
  label: string;
}

export interface DiagramInspector {
  nodes(): DiagramNode[];
  pathNodes(): DiagramNode[];
  position(id: string): { x: number; y: number } | null; // on the canvas, in CSS pixels
  traceEdges(): { source: string; target: string; label: string }[];
}

export type VmClick = (portId: string) => void;

export class TopologyGraph {
  private readonly cy: Core;
  private key = "";
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

  /** Draw ``topology``: rebuild and re-fit when its structure changed, else update labels. */
  render(topology: Topology): void {
    const key = structureKey(topology);
    const { elements } = buildElements(topology);
    if (key !== this.key) {
      this.key = key;
      this.cy.batch(() => {
        this.cy.elements().remove();
        this.cy.add(elements);
      });
      this.cy.fit(undefined, 40);
    } else {
      this.cy.batch(() => {
        for (const element of elements) {
          const existing = this.cy.getElementById(element.data.id as string);
          if (existing.nonempty()) existing.data(element.data);
        }
      });
    }
    if (this.trace) this.showTrace(this.trace);
  }

  /** What the diagram shows, for tests and the console (read-only). */
  inspector(): DiagramInspector {
    const describe = (n: NodeSingular) => ({ id: n.id(), kind: n.data("kind"), label: n.data("label") });
    return {
      nodes: () => this.cy.nodes().map(describe),
      pathNodes: () => this.cy.nodes(".on-path").map(describe),
      position: (id: string) => {
        const node = this.cy.getElementById(id);
        return node.nonempty() ? node.renderedPosition() : null;
      },
      traceEdges: () =>
        this.cy.edges(".trace").map((e) => ({ source: e.source().id(), target: e.target().id(), label: e.data("label") })),
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
      this.cy.elements().removeClass("faded on-path drop-here");
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
    });
  }

  private hopNodes(hops: Hop[]): { nodeId: string | null; label?: string; drop?: boolean }[] {
    return hops.map((hop) => {
      if (hop.kind === "vm" && hop.id) return { nodeId: vmNodeId(hop.id) };
      if (hop.kind === "router" && hop.id && hop.host) return { nodeId: routerNodeId(hop.id, hop.host) };
      if (hop.kind === "tunnel") {
        return { nodeId: null, label: `VXLAN${hop.vni != null ? ` VNI ${hop.vni}` : ""} → ${hop.to_host ?? "?"}` };
      }
      if (hop.kind === "drop" && hop.host) {
        const inRouter = hop.id ? routerNodeId(hop.id, hop.host) : null;
        const nodeId = inRouter && this.cy.getElementById(inRouter).nonempty() ? inRouter : hostNodeId(hop.host);
        return { nodeId, label: "✘ dropped", drop: true };
      }
      if (hop.kind === "address" && hop.ip) return { nodeId: this.addressNode(hop.ip) };
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
