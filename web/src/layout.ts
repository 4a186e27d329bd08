// Where everything goes: a pure function of the topology and a text measurer, so the same
// topology (in the same fonts) always gives the same picture.
//
// Hosts are columns, left to right in the server's order.  Each host box holds, top to bottom:
// a header band carrying the host's label (name · mode · liveness / host MAC / applied rev),
// the row of router instances, and its VMs in at most two rows; a host with neither shows a
// "no VMs, no routers" note.  A column is as wide as the widest of those (the header's text
// included), and columns are separated by a fixed gap, so host boxes and their labels never
// overlap whatever the hosts hold.  Networks sit in a band above, each near the middle of
// what attaches to it, never overlapping each other; the lines to them run straight up from
// each VM or router, then across at a height of their network's own (see ``arrangeHost``).

import type { ElementDefinition } from "cytoscape";

import type { Host, Router, Topology, Vm } from "./api";
import { networkColors } from "./colors";

export type FontWeight = "bold" | "normal";
/** Width in pixels of the widest line of ``text`` in the diagram's 12px font. */
export type MeasureText = (text: string, weight: FontWeight) => number;

export const UNBOUND_HOST = "(unbound)";
export const EMPTY_HOST_NOTE = "no VMs, no routers";

export const SIZES = {
  fontSize: 12,
  lineHeight: 1.35,
  vmMinWidth: 136,
  vmHeight: 46,
  routerMinWidth: 136,
  routerLineHeight: 17,
  routerPadding: 14,
  networkMinWidth: 190,
  networkHeight: 46,
  textPadding: 24, // horizontal room around a label inside its box
  headerHeight: 64, // three lines of 12px bold at 1.35, and a margin
  emptyHeight: 40,
  cellGap: 22,
  rowGap: 20,
  hostPadding: 14, // cytoscape's padding of a host box around what it holds
  hostGap: 44, // between neighbouring host boxes
  // Lines from a network run down, across at a height of their own network's (so colours
  // do not merge), then straight down into their host: they never cross another host's box.
  firstTurn: 22, // below the network band: the first network's horizontal run
  turnStep: 14, // each further network's run lies this much lower
  turnLevels: 8, // then the heights repeat
  turnClearance: 30, // between the lowest run and the top of the host boxes
} as const;

export const vmNodeId = (portId: string): string => `vm:${portId}`;
export const routerNodeId = (routerId: string, host: string): string => `rtr:${routerId}@${host}`;
export const hostNodeId = (host: string): string => `host:${host}`;
export const hostHeaderId = (host: string): string => `hosthead:${host}`;
export const hostEmptyId = (host: string): string => `hostempty:${host}`;
export const networkNodeId = (networkId: string): string => `net:${networkId}`;

export function vmAddress(vm: Vm): string {
  return vm.fixed_ips.map((f) => f.ip_address).join(", ") || "no IP";
}

export function hostLabel(host: Host): string {
  if (!host.registered) return `${host.host}\nno agent registered`;
  const live = host.alive ? "alive" : "DEAD";
  const sync = host.in_sync ? "in sync" : `${host.pending_revisions} behind`;
  return (
    `${host.host} · ${host.agent_mode} · ${live}\n` +
    `host MAC ${host.host_mac ?? "—"}\n` +
    `applied rev ${host.applied_revision ?? "—"} (${sync})`
  );
}

export function hostState(host: Host | undefined): string {
  if (!host?.registered) return "unregistered";
  return host.alive ? "alive" : "dead";
}

/** The router's external gateway addresses ("" without a gateway). */
export function gatewayAddresses(router: Router): string {
  return (router.gateway?.fixed_ips ?? []).map((f) => f.ip_address).join(" · ");
}

function routerLabel(router: Router, hostName: string): string {
  const gateway = gatewayAddresses(router);
  const snatText = router.gateway && !router.gateway.enable_snat ? "gw" : "SNAT";
  const snat = router.snat_host === hostName ? ` · ${snatText}${gateway ? ` ${gateway}` : ""}` : "";
  const title = `⇄ ${router.name || router.id.slice(0, 8)}${snat}`;
  // the gateway addresses, two a line: the same on every host (that is what DVR does)
  const ips = router.interfaces.map((i) => i.ip_address);
  const lines = [title];
  for (let i = 0; i < ips.length; i += 2) lines.push(ips.slice(i, i + 2).join(" · "));
  return lines.join("\n");
}

function vmLabel(vm: Vm, floating: ReadonlyMap<string, string[]>): string {
  const fips = floating.get(vm.id) ?? [];
  const fip = fips.length ? ` · FIP ${fips.join(" · ")}` : "";
  return `${vm.name || vm.device_id || vm.id.slice(0, 8)}\n${vmAddress(vm)}${fip}`;
}

/** port id -> its floating IPs. */
export function floatingByPort(topology: Topology): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const fip of topology.floating_ips ?? []) {
    if (!fip.port_id) continue;
    result.set(fip.port_id, [...(result.get(fip.port_id) ?? []), fip.floating_ip_address]);
  }
  return result;
}

/** Stable key of everything that affects which elements exist: re-fit only when it changes. */
export function structureKey(topology: Topology): string {
  const parts = [
    topology.hosts.map((h) => h.host).join(","),
    topology.networks.map((n) => n.id).join(","),
    topology.routers.map((r) => `${r.id}:${r.hosts.join("+")}:${r.interfaces.map((i) => i.network_id).join("+")}`).join(","),
    topology.vms.map((v) => `${v.id}:${v.host}:${v.network_id}`).join(","),
  ];
  return parts.join("|");
}

export interface Layout {
  elements: ElementDefinition[];
  /** Every position and size: when it is unchanged, nodes the user dragged stay put. */
  geometryKey: string;
}

const LINE_MARGIN = 8; // between a VM's line up to its network and a router box

const rowWidth = (widths: readonly number[]): number =>
  widths.reduce((sum, w) => sum + w, 0) + SIZES.cellGap * Math.max(0, widths.length - 1);

export interface HostArrangement {
  width: number; // of what the host holds, from its left edge
  routerXs: number[]; // centres of the router instances
  vmSlots: { x: number; row: number }[]; // centres and rows of the VMs, in order
}

/**
 * Where a host's routers and VMs go, horizontally.  The VMs fill at most two rows, the second
 * in the gaps of the first (a brick pattern); the routers' row, above them, is put where it
 * covers no VM's line (each VM's line runs straight up from its centre to its network), as
 * near the middle as that allows.  So no line seems to pass through a box it does not join.
 */
export function arrangeHost(routerWidths: readonly number[], vmCount: number, vmWidth: number): HostArrangement {
  const pitch = vmWidth + SIZES.cellGap;
  const first = vmCount <= 2 ? vmCount : Math.ceil((vmCount + 1) / 2);
  const second = vmCount - first; // at most first - 1: one per gap
  const offset = Math.floor((first - 1 - second) / 2);
  const slots = [
    ...Array.from({ length: first }, (_, j) => ({ x: vmWidth / 2 + j * pitch, row: 0 })),
    ...Array.from({ length: second }, (_, i) => ({ x: vmWidth / 2 + (offset + i + 0.5) * pitch, row: 1 })),
  ];
  const vmSpan = first ? first * pitch - SIZES.cellGap : 0;
  const routerSpan = rowWidth(routerWidths);
  if (!routerWidths.length) return { width: vmSpan, routerXs: [], vmSlots: slots };

  const lines = slots.map((slot) => slot.x);
  const blocked = (left: number) =>
    lines.some((x) => x > left - LINE_MARGIN + 1e-6 && x < left + routerSpan + LINE_MARGIN - 1e-6);
  const preferred = (vmSpan - routerSpan) / 2;
  const spanOf = (left: number) => Math.max(vmSpan, left + routerSpan) - Math.min(0, left);
  const [left] = [preferred, ...lines.flatMap((x) => [x - LINE_MARGIN - routerSpan, x + LINE_MARGIN])]
    .filter((candidate) => !blocked(candidate)) // right of every line is always free
    .sort((a, b) => spanOf(a) - spanOf(b) || Math.abs(a - preferred) - Math.abs(b - preferred) || a - b);
  const shift = -Math.min(0, left);
  let x = left + shift;
  const routerXs = routerWidths.map((width) => {
    const centre = x + width / 2;
    x += width + SIZES.cellGap;
    return centre;
  });
  return {
    width: spanOf(left),
    routerXs,
    vmSlots: slots.map((slot) => ({ x: slot.x + shift, row: slot.row })),
  };
}

export function layoutTopology(topology: Topology, measure: MeasureText): Layout {
  const colors = networkColors(topology.networks);
  const floating = floatingByPort(topology);
  const elements: ElementDefinition[] = [];
  const positions = new Map<string, { x: number; y: number }>();
  const sized = (id: string, x: number, y: number, width: number, height: number) => {
    positions.set(id, { x, y });
    return { width, height };
  };
  const hostsByName = new Map(topology.hosts.map((h) => [h.host, h]));
  const hostOrder = topology.hosts.map((h) => h.host);
  if (topology.vms.some((v) => !v.host)) hostOrder.push(UNBOUND_HOST);
  const anyRouter = topology.routers.some((r) => r.hosts.length > 0);

  // rows every host shares, so VMs of different hosts line up (straight trace edges)
  const headerY = SIZES.headerHeight / 2;
  const routerRowTop = SIZES.headerHeight + SIZES.rowGap;
  const routerHeights = topology.routers.map((r) => {
    const lines = routerLabel(r, "").split("\n").length;
    return lines * SIZES.routerLineHeight + SIZES.routerPadding;
  });
  const routerRowHeight = anyRouter ? Math.max(...routerHeights) : 0;
  const vmRowsTop = anyRouter ? routerRowTop + routerRowHeight + SIZES.rowGap : routerRowTop;

  let left = 0;
  for (const hostName of hostOrder) {
    const host = hostsByName.get(hostName);
    const routers = topology.routers.filter((r) => r.hosts.includes(hostName));
    const vms = topology.vms
      .filter((v) => (v.host ?? UNBOUND_HOST) === hostName)
      .sort((a, b) => a.network_id.localeCompare(b.network_id) || a.name.localeCompare(b.name));
    const header = host ? hostLabel(host) : `${UNBOUND_HOST}\nports bound to no host`;

    const routerSizes = routers.map((r) => {
      const label = routerLabel(r, hostName);
      return {
        width: Math.max(SIZES.routerMinWidth, measure(label, "bold") + SIZES.textPadding),
        height: label.split("\n").length * SIZES.routerLineHeight + SIZES.routerPadding,
      };
    });
    const vmWidth = Math.max(SIZES.vmMinWidth, ...vms.map((v) => measure(vmLabel(v, floating), "normal") + SIZES.textPadding));
    const arranged = arrangeHost(routerSizes.map((r) => r.width), vms.length, vmWidth);
    const empty = !routers.length && !vms.length;
    const emptyWidth = measure(EMPTY_HOST_NOTE, "normal") + SIZES.textPadding;
    const width = Math.ceil(
      Math.max(measure(header, "bold") + SIZES.textPadding, arranged.width, empty ? emptyWidth : 0, SIZES.vmMinWidth),
    );
    const contentLeft = left + (width - arranged.width) / 2;
    const middle = left + width / 2;

    elements.push({
      group: "nodes",
      data: {
        id: hostNodeId(hostName),
        label: header,
        kind: "host",
        state: hostState(host),
        name: hostName,
      },
      classes: "host",
    });
    elements.push({
      group: "nodes",
      data: {
        id: hostHeaderId(hostName),
        parent: hostNodeId(hostName),
        label: header,
        kind: "host-header",
        state: hostState(host),
        host: hostName,
        ...sized(hostHeaderId(hostName), middle, headerY, width, SIZES.headerHeight),
      },
      classes: "host-header",
      grabbable: false,
      selectable: false,
    });
    if (empty) {
      elements.push({
        group: "nodes",
        data: {
          id: hostEmptyId(hostName),
          parent: hostNodeId(hostName),
          label: EMPTY_HOST_NOTE,
          kind: "host-empty",
          host: hostName,
          ...sized(hostEmptyId(hostName), middle, routerRowTop + SIZES.emptyHeight / 2, width, SIZES.emptyHeight),
        },
        classes: "host-empty",
        grabbable: false,
        selectable: false,
      });
    }

    routers.forEach((router, i) => {
      const id = routerNodeId(router.id, hostName);
      const { width: w, height: h } = routerSizes[i];
      elements.push({
        group: "nodes",
        data: {
          id,
          parent: hostNodeId(hostName),
          label: routerLabel(router, hostName),
          kind: "router",
          routerId: router.id,
          host: hostName,
          ...sized(id, contentLeft + arranged.routerXs[i], routerRowTop + h / 2, w, h),
        },
        classes: "router",
      });
    });

    vms.forEach((vm, i) => {
      const id = vmNodeId(vm.id);
      const slot = arranged.vmSlots[i];
      const y = vmRowsTop + slot.row * (SIZES.vmHeight + SIZES.rowGap) + SIZES.vmHeight / 2;
      elements.push({
        group: "nodes",
        data: {
          id,
          parent: hostNodeId(hostName),
          label: vmLabel(vm, floating),
          kind: "vm",
          portId: vm.id,
          color: colors.get(vm.network_id) ?? "#4b5563",
          status: vm.status,
          unfiltered: vm.port_security_enabled === false, // port security off: no firewall
          ...sized(id, contentLeft + slot.x, y, vmWidth, SIZES.vmHeight),
        },
        classes: "vm",
      });
    });
    left += width + 2 * SIZES.hostPadding + SIZES.hostGap;
  }
  const right = left - 2 * SIZES.hostPadding - SIZES.hostGap;

  // Networks: above the hosts, each near the middle of what connects to it, never overlapping.
  const attached = new Map<string, number[]>();
  const attach = (networkId: string, nodeId: string): void => {
    const position = positions.get(nodeId);
    if (position) attached.set(networkId, [...(attached.get(networkId) ?? []), position.x]);
  };
  for (const vm of topology.vms) attach(vm.network_id, vmNodeId(vm.id));
  for (const router of topology.routers) {
    for (const host of router.hosts) {
      for (const itf of router.interfaces) attach(itf.network_id, routerNodeId(router.id, host));
    }
  }
  const centre = right / 2;
  const levels = Math.max(1, Math.min(SIZES.turnLevels, topology.networks.length));
  const networkGap = SIZES.firstTurn + SIZES.turnStep * (levels - 1) + SIZES.turnClearance;
  const networkY = -SIZES.hostPadding - networkGap - SIZES.networkHeight / 2;
  const wanted = topology.networks
    .map((network) => {
      const xs = attached.get(network.id) ?? [];
      const cidrs = network.subnets.map((s) => s.cidr).join(", ") || "no subnet";
      const vni = network.segmentation_id != null ? ` · ${network.network_type} ${network.segmentation_id}` : "";
      const label = `${network.name || network.id.slice(0, 8)}${vni}\n${cidrs}`;
      const width = Math.ceil(Math.max(SIZES.networkMinWidth, measure(label, "bold") + SIZES.textPadding));
      return { network, label, width, x: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : centre };
    })
    .sort((a, b) => a.x - b.x || a.network.id.localeCompare(b.network.id));
  // left to right, each pushed right of the previous; then the band shifted as a whole so
  // that on average each network is where it wants to be
  let previousRight = -Infinity;
  const packed = wanted.map((w) => {
    const x = Math.max(w.x, previousRight + SIZES.cellGap + w.width / 2);
    previousRight = x + w.width / 2;
    return x;
  });
  const drift = packed.length ? packed.reduce((sum, x, i) => sum + (x - wanted[i].x), 0) / packed.length : 0;
  // the height of each network's horizontal run, as a distance below the network band
  const turn = new Map(wanted.map(({ network }, i) => [network.id, -(SIZES.firstTurn + SIZES.turnStep * (i % levels))]));
  wanted.forEach(({ network, label, width }, i) => {
    const id = networkNodeId(network.id);
    elements.push({
      group: "nodes",
      data: {
        id,
        label,
        kind: "network",
        color: colors.get(network.id),
        ...sized(id, Math.round(packed[i] - drift), networkY, width, SIZES.networkHeight),
      },
      classes: network.external ? "network external" : "network",
    });
  });

  for (const vm of topology.vms) {
    elements.push({
      group: "edges",
      data: {
        id: `e:${vm.id}`,
        source: vmNodeId(vm.id),
        target: networkNodeId(vm.network_id),
        color: colors.get(vm.network_id),
        turn: turn.get(vm.network_id),
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
            turn: turn.get(itf.network_id),
            address: itf.ip_address,
          },
          classes: "attachment interface",
        });
      }
    }
  }
  const geometry: string[] = [];
  for (const element of elements) {
    const id = element.data.id as string;
    const position = positions.get(id);
    if (!position) continue;
    element.position = position;
    geometry.push(`${id}@${position.x},${position.y}:${element.data.width}x${element.data.height}`);
  }
  return { elements, geometryKey: geometry.join(";") };
}
