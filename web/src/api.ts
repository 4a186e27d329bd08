// Shapes of the server's JSON (see src/dvr/web/routes.py) and the calls that fetch them.

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
}

export interface Topology {
  revision: number;
  hosts: Host[];
  networks: Network[];
  routers: Router[];
  vms: Vm[];
  floating_ips: FloatingIp[];
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
  reply: { verdict: string; reason: string | null; summary: string } | null;
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

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.NeutronError?.message ?? `${response.status} ${response.statusText}`;
    throw new ApiError(message);
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
}

/** Follow /dvr/v1/events (Server-Sent Events); the browser reconnects by itself. */
export function followChanges(listener: ChangeListener): EventSource {
  const source = new EventSource("/dvr/v1/events");
  listener.state("connecting");
  source.addEventListener("open", () => listener.state("live"));
  source.addEventListener("error", () => listener.state("reconnecting"));
  source.addEventListener("revision", (event) => {
    listener.revision(JSON.parse((event as MessageEvent).data).revision);
  });
  source.addEventListener("tick", () => listener.tick());
  return source;
}
