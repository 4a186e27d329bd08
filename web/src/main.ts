// The page: load the topology, draw it, keep it live from /dvr/v1/events, trace on demand.
// A server that wants a token (401) gets one typed once; it is kept for the browser session.

import "./style.css";

import { Unauthorized, fetchTopology, fetchTrace, followChanges } from "./api";
import type { ChangeStream, Host, StreamState, Topology, Trace, TraceRequest } from "./api";
import { TopologyGraph } from "./graph";
import { vmAddress } from "./layout";
import { renderHosts, renderTrace, renderTraceError } from "./panels";
import { SecurityPanel } from "./security";
import { forgetToken, storeToken, storedToken } from "./token";

const OTHER_ADDRESS = "__address__";

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`page is missing #${id}`);
  return found as T;
}

class App {
  private topology: Topology | null = null;
  private revision = -1;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;
  private lastTrace: TraceRequest | null = null;
  private stream: ChangeStream | null = null;
  private shownTrace: Trace | null = null;
  private readonly graph: TopologyGraph;
  private readonly security = new SecurityPanel(element("ports"));
  private readonly src = element<HTMLSelectElement>("trace-src");
  private readonly dst = element<HTMLSelectElement>("trace-dst");
  private readonly ip = element<HTMLInputElement>("trace-ip");
  private readonly proto = element<HTMLSelectElement>("trace-proto");
  private readonly dport = element<HTMLInputElement>("trace-dport");

  constructor() {
    this.graph = new TopologyGraph(element("diagram"), (portId) => this.pick(portId));
    element<HTMLFormElement>("trace-form").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.runTrace();
    });
    element("trace-clear").addEventListener("click", () => this.clearTrace());
    this.proto.addEventListener("change", () => {
      this.dport.disabled = this.proto.value === "icmp";
      if (this.dport.disabled) this.dport.value = "";
      else if (!this.dport.value) this.dport.value = "22";
    });
    element<HTMLFormElement>("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn();
    });
    this.dst.addEventListener("change", () => this.syncPicks());
    this.src.addEventListener("change", () => this.syncPicks());
    (window as unknown as { dvrView: unknown }).dvrView = this.graph.inspector();
  }

  start(): void {
    void this.refresh();
    this.stream?.close();
    this.stream = followChanges({
      revision: (revision) => {
        if (revision !== this.revision) void this.refresh();
      },
      tick: () => void this.refresh(),
      state: (state) => this.showStreamState(state),
      unauthorized: () => this.askForToken(),
    });
  }

  /** The server refused us (401): stop following it and ask for the token (again). */
  private askForToken(): void {
    const login = element("login");
    if (!login.hidden) return;
    this.stream?.close();
    this.stream = null;
    const refused = storedToken() !== null;
    forgetToken();
    element("login-hint").textContent = refused
      ? "The server refused that token; give the admin token again."
      : "This server needs a token: its admin token (a lab's: `dvr lab env` prints it as OS_TOKEN).";
    login.hidden = false;
    element<HTMLInputElement>("login-token").focus();
    this.showStreamState("signed-out");
  }

  private signIn(): void {
    const input = element<HTMLInputElement>("login-token");
    const token = input.value.trim();
    if (!token) return;
    storeToken(token);
    input.value = "";
    element("login").hidden = true;
    this.start();
  }

  /** Re-read the topology (one request at a time; a change meanwhile triggers one more). */
  private async refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        try {
          const topology = await fetchTopology();
          const changed = topology.revision !== this.revision;
          this.apply(topology);
          if (changed && this.lastTrace && this.revision >= 0) await this.traceWith(this.lastTrace);
        } catch (error) {
          if (error instanceof Unauthorized) {
            this.askForToken();
            return;
          }
          this.showStreamState("reconnecting");
          console.error("topology refresh failed", error);
        }
      } while (this.refreshAgain);
    })();
    try {
      await this.refreshing;
    } finally {
      this.refreshing = null;
    }
  }

  private apply(topology: Topology): void {
    this.topology = topology;
    this.revision = topology.revision;
    this.graph.render(topology);
    renderHosts(element("hosts"), topology);
    this.fillEndpointChoices(topology);
    this.showSecurity();
    const alive = topology.hosts.filter((h: Host) => h.alive).length;
    element("counts").textContent =
      `revision ${topology.revision} · ${topology.hosts.length} hosts (${alive} alive) · ` +
      `${topology.networks.length} networks · ${topology.routers.length} routers · ${topology.vms.length} VMs`;
  }

  private fillEndpointChoices(topology: Topology): void {
    const hostOf = (host: string | null) => host ?? "unbound";
    const options = topology.vms.map((vm) => ({
      value: vm.id,
      text: `${vm.name || vm.id.slice(0, 8)} · ${vmAddress(vm)} · ${hostOf(vm.host)}`,
    }));
    const fill = (select: HTMLSelectElement, extra: { value: string; text: string }[]) => {
      const kept = select.value;
      select.replaceChildren(
        new Option("choose a VM…", ""),
        ...[...options, ...extra].map((o) => new Option(o.text, o.value)),
      );
      select.value = [...select.options].some((o) => o.value === kept) ? kept : "";
    };
    // north/south: floating IPs (to their VM), external gateways, and the outside router
    // (the external subnets' gateway) as a source or destination on the external segment
    const floating = (topology.floating_ips ?? []).map((f) => ({
      value: f.floating_ip_address,
      text: `floating IP ${f.floating_ip_address} → ${f.port_name || f.fixed_ip_address || "not associated"}`,
    }));
    const outside = topology.networks
      .filter((n) => n.external)
      .flatMap((n) => n.subnets.filter((s) => s.gateway_ip).map((s) => ({
        value: s.gateway_ip as string,
        text: `outside ${s.gateway_ip} (upstream router of ${n.name || n.id.slice(0, 8)})`,
      })));
    fill(this.src, outside);
    fill(this.dst, [...outside, ...floating, { value: OTHER_ADDRESS, text: "another address (IP)…" }]);
    this.syncPicks();
  }

  /** A click on a VM in the diagram: the first pick is the source, the next the destination. */
  private pick(portId: string): void {
    if (!this.src.value || (this.src.value && this.dst.value && this.dst.value !== OTHER_ADDRESS)) {
      this.src.value = portId;
      this.dst.value = "";
    } else if (portId !== this.src.value) {
      this.dst.value = portId;
    }
    this.syncPicks();
    if (this.src.value && this.dst.value) void this.runTrace();
  }

  private syncPicks(): void {
    element("trace-ip-row").hidden = this.dst.value !== OTHER_ADDRESS;
    const dst = this.dst.value === OTHER_ADDRESS ? null : this.dst.value || null;
    this.graph.markPicked(this.src.value || null, dst);
    this.showSecurity();
  }

  /** The picked VMs' groups, and which of them denied the trace on screen (if it is theirs). */
  private showSecurity(): void {
    const picked = [this.src.value, this.dst.value].filter((id) => this.topology?.vms.some((vm) => vm.id === id));
    const trace = this.shownTrace;
    const ends = trace && picked.includes(trace.src.id ?? "") ? trace : null;
    this.security.render(this.topology, picked, ends ? (ends.denied ?? ends.reply?.denied ?? null) : null);
  }

  private currentRequest(): TraceRequest | null {
    const dst = this.dst.value === OTHER_ADDRESS ? this.ip.value.trim() : this.dst.value;
    if (!this.src.value || !dst) return null;
    return { src: this.src.value, dst, proto: this.proto.value, dport: this.dport.value };
  }

  private async runTrace(): Promise<void> {
    const request = this.currentRequest();
    if (!request) {
      renderTraceError(element("trace-pane"), "Pick a source VM and a destination first.");
      element("layout").classList.add("tracing");
      return;
    }
    this.lastTrace = request;
    await this.traceWith(request);
  }

  private async traceWith(request: TraceRequest): Promise<void> {
    const pane = element("trace-pane");
    element<HTMLButtonElement>("trace-run").disabled = true;
    try {
      const trace: Trace = await fetchTrace(request);
      if (this.lastTrace !== request) return; // cleared or replaced meanwhile
      renderTrace(pane, trace, this.topology);
      element("layout").classList.add("tracing");
      this.graph.showTrace(trace);
      this.shownTrace = trace;
      this.showSecurity();
    } catch (error) {
      if (error instanceof Unauthorized) this.askForToken();
      this.graph.clearTrace();
      this.shownTrace = null;
      this.showSecurity();
      renderTraceError(pane, (error as Error).message);
      element("layout").classList.add("tracing");
    } finally {
      element<HTMLButtonElement>("trace-run").disabled = false;
    }
  }

  private clearTrace(): void {
    this.lastTrace = null;
    this.shownTrace = null;
    this.src.value = "";
    this.dst.value = "";
    this.syncPicks();
    this.graph.clearTrace();
    element("trace-pane").hidden = true;
    element("layout").classList.remove("tracing");
  }

  private showStreamState(state: StreamState | "signed-out"): void {
    const live = element("live");
    live.dataset.state = state;
    const texts = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…",
                    "signed-out": "token needed" };
    element("live-text").textContent = texts[state];
  }
}

new App().start();
