// Shapes of the server's JSON (see src/dvr/web/routes.py) and the calls that fetch them.

import { authHeaders } from "./token";

export interface FixedIp {
  subnet_id: string;
  ip_address: string;
}

export interface Host {
  host: string;
  registered: boolean;
  agent_mode: string | null;
  host_mac: string | null;
  tunnel_ip: string | null;
  alive: boolean;
  heartbeat_timestamp: string | null;
  applied_revision: number | null;
  pending_revisions: number;
  in_sync: boolean;
  routers: string[];
}

export interface Subnet {
  id: string;
  name: string;
  cidr: string;
  gateway_ip: string | null;
  ip_version: number;
}

export interface Network {
  id: string;
  name: string;
  network_type: string;
  segmentation_id: number | null;
  mtu: number;
  external: boolean;
  subnets: Subnet[];
}

export interface RouterInterface {
  port_id: string;
  subnet_id: string;
  network_id: string;
  ip_address: string;
  mac_address: string;
  cidr: string;
}

export interface RouterGateway {
  network_id: string;
  port_id: string;
  fixed_ips: FixedIp[];
  enable_snat: boolean;
}

export interface Router {
  id: string;
  name: string;
  distributed: boolean;
  hosts: string[];
  snat_host: string | null;
  interfaces: RouterInterface[];
  gateway: RouterGateway | null;
}

export interface FloatingIp {
  id: string;
  floating_ip_address: string;
  floating_network_id: string;
  router_id: string | null;
  port_id: string | null; // the associated port (null: not associated)
  port_name: string | null;
  fixed_ip_address: string | null;
  host: string | null; // the associated port's host: where its plumbing lives
  status: string;
}

export interface Vm {
  id: string;
  name: string;
  device_id: string;
  host: string | null;
  network_id: string;
  mac_address: string;
  fixed_ips: FixedIp[];
  status: string;
  port_security_enabled: boolean; // false: no firewall, no anti-spoofing for this port
  security_groups: string[]; // ids (see Topology.security_groups)
}

/** A rule as the security-group API renders it. */
export interface SecurityGroupRule {
  id: string;
  security_group_id: string;
  direction: "ingress" | "egress";
  ethertype: string;
  protocol: string | null; // a name or a number; null: any
  port_range_min: number | null; // ICMP: the type
  port_range_max: number | null; // ICMP: the code
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
  remote_address_group_id: string | null;
  description: string | null;
}

/** A security group as the security-group API renders it. */
export interface SecurityGroup {
  id: string;
  name: string;
  description: string | null;
  project_id: string;
  stateful: boolean;
  security_group_rules: SecurityGroupRule[];
}

export interface Topology {
  revision: number;
  hosts: Host[];
  networks: Network[];
  routers: Router[];
  vms: Vm[];
  floating_ips: FloatingIp[];
  security_groups: SecurityGroup[];
}

export type HopKind = "vm" | "router" | "namespace" | "tunnel" | "segment" | "drop" | "address";

export interface Hop {
  kind: HopKind;
  host: string | null;
  id?: string | null; // vm port id or router id (a namespace hop: its owner's id)
  name?: string | null;
  to_host?: string | null; // tunnel, segment: receiving host (or outside host)
  vni?: number | null;
  ip?: string | null; // address: an IP that is not a VM port
  firewall?: FirewallSide | null; // drop: in the firewall of port_id, on this side
  port_id?: string | null;
}

export type FirewallSide = "egress" | "ingress";

/** Where a path ended in a port's firewall (the sender's for egress, the receiver's for ingress). */
export interface Denial {
  step: number; // index of the drop step
  direction: "forward" | "reply";
  host: string | null;
  firewall: FirewallSide;
  port_id: string | null;
  port_name: string | null;
  reason: string;
}

export interface TraceStep {
  index: number;
  direction: "forward" | "reply";
  host: string | null;
  kind: string; // "send", "flow", "router", "tunnel", "segment", "deliver", "drop"
  bridge: string | null;
  table: number | null;
  priority: number | null;
  match: string | null;
  actions: string | null;
  owner: string | null;
  owner_description: string | null;
  summary: string;
  firewall: FirewallSide | null; // a lookup in br-int's firewall tables
}

export interface TraceEndpoint {
  kind: "vm" | "address" | "outside" | "unknown";
  id: string | null;
  name: string | null;
  host: string | null;
  ip: string | null;
  mac: string | null;
}

export interface Trace {
  src: TraceEndpoint;
  dst: TraceEndpoint;
  proto: string;
  dport: number | null;
  revision: number;
  verdict: string; // "delivered" | "dropped"
  reason: string | null;
  summary: string;
  denied: Denial | null; // the request ended in a port's firewall
  reply: { verdict: string; reason: string | null; summary: string; denied: Denial | null } | null;
  hops: Hop[]; // the forward path's places, in order
  steps: TraceStep[]; // both directions
  assumed_plugged: string[]; // hosts whose VIF names were assumed, not reported
}

export interface TraceRequest {
  src: string;
  dst: string;
  proto: string;
  dport: string;
}

export class ApiError extends Error {}

/** The server wants a (valid) token: 401. */
export class Unauthorized extends ApiError {}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { headers: { Accept: "application/json", ...authHeaders() } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.NeutronError?.message ?? `${response.status} ${response.statusText}`;
    throw response.status === 401 ? new Unauthorized(message) : new ApiError(message);
  }
  return body as T;
}

export function fetchTopology(): Promise<Topology> {
  return getJson<Topology>("/dvr/v1/topology");
}

export function fetchTrace(request: TraceRequest): Promise<Trace> {
  const params = new URLSearchParams({ src: request.src, dst: request.dst, proto: request.proto });
  if (request.dport) params.set("dport", request.dport);
  return getJson<Trace>(`/dvr/v1/trace?${params}`);
}

export type StreamState = "connecting" | "live" | "reconnecting";

export interface ChangeListener {
  revision(revision: number): void;
  tick(): void;
  state(state: StreamState): void;
  unauthorized(): void; // the stream stopped: it needs a (valid) token
}

export interface ChangeStream {
  close(): void;
}

interface ServerEvent {
  event: string;
  data: string;
  retry: number | null;
}

/** Server-Sent Events parsed from one block of lines (the text between blank lines). */
export function parseEvent(block: string): ServerEvent {
  const found: ServerEvent = { event: "message", data: "", retry: null };
  const data: string[] = [];
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue; // a comment
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") found.event = value;
    else if (field === "data") data.push(value);
    else if (field === "retry" && /^\d+$/.test(value)) found.retry = Number(value);
  }
  found.data = data.join("\n");
  return found;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Follow /dvr/v1/events (Server-Sent Events) with fetch, so the request carries the token
 * as a header (EventSource cannot send one); reconnects after the server's `retry` delay. */
export function followChanges(listener: ChangeListener): ChangeStream {
  const abort = new AbortController();
  let retryMs = 2000;
  const deliver = (event: ServerEvent) => {
    if (event.retry !== null) retryMs = event.retry;
    if (event.event === "revision") listener.revision(JSON.parse(event.data).revision);
    else if (event.event === "tick") listener.tick();
  };
  const follow = async (): Promise<"ended" | "unauthorized"> => {
    const response = await fetch("/dvr/v1/events", {
      headers: { Accept: "text/event-stream", ...authHeaders() },
      signal: abort.signal,
    });
    if (response.status === 401) return "unauthorized";
    if (!response.ok || !response.body) throw new ApiError(`events: ${response.status}`);
    listener.state("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "ended";
      buffered = (buffered + value).replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        deliver(parseEvent(buffered.slice(0, end)));
        buffered = buffered.slice(end + 2);
      }
    }
  };
  void (async () => {
    listener.state("connecting");
    while (!abort.signal.aborted) {
      try {
        if ((await follow()) === "unauthorized") {
          listener.unauthorized();
          return;
        }
      } catch (error) {
        if (abort.signal.aborted) return;
        console.error("event stream failed", error);
      }
      listener.state("reconnecting");
      await sleep(retryMs);
    }
  })();
  return { close: () => abort.abort() };
}
