// The side and bottom panels: host cards and the traced path's steps.

import type { Denial, Topology, Trace, TraceEndpoint, TraceStep } from "./api";
import { el } from "./dom";

export function renderHosts(container: HTMLElement, topology: Topology): void {
  const routerNames = new Map(topology.routers.map((r) => [r.id, r.name || r.id.slice(0, 8)]));
  const vmCount = (host: string) => topology.vms.filter((v) => v.host === host).length;
  if (!topology.hosts.length) {
    container.replaceChildren(el("p", { class: "muted", text: "No host has registered an agent yet." }));
    return;
  }
  container.replaceChildren(
    ...topology.hosts.map((host) => {
      const state = !host.registered ? "unregistered" : host.alive ? "alive" : "dead";
      const sync = !host.registered
        ? "—"
        : host.in_sync
          ? `${host.applied_revision} (in sync)`
          : `${host.applied_revision} (${host.pending_revisions} behind)`;
      const rows: [string, string][] = [
        ["mode", host.agent_mode ?? "—"],
        ["host MAC", host.host_mac ?? "—"],
        ["tunnel IP", host.tunnel_ip ?? "—"],
        ["applied rev", sync],
        ["heartbeat", host.heartbeat_timestamp ? `${host.heartbeat_timestamp} UTC` : "—"],
        ["routers", host.routers.map((id) => routerNames.get(id) ?? id).join(", ") || "—"],
        ["VMs", String(vmCount(host.host))],
      ];
      return el("div", { class: `host-card ${state}` }, [
        el("div", { class: "host-title" }, [
          el("span", { class: "dot" }),
          el("strong", { class: "host-name", text: host.host }),
          el("span", { class: "state", text: state }),
        ]),
        el(
          "dl",
          {},
          rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]),
        ),
      ]);
    }),
  );
}

function endpointText(endpoint: TraceEndpoint): string {
  const name = endpoint.name ?? endpoint.ip ?? endpoint.id ?? "?";
  const where = endpoint.host ? ` on ${endpoint.host}` : "";
  const ip = endpoint.ip && endpoint.name ? ` (${endpoint.ip})` : "";
  return `${name}${ip}${where}`;
}

/** "qrouter-50bfa5fc-ffdc-…" is as telling as the full UUID and fits the column. */
const NAMESPACE_UUID = /^([a-z]+-)([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function whereText(step: TraceStep): { text: string; title?: string } {
  if (step.bridge && step.table !== null) return { text: `${step.bridge} table ${step.table}` };
  const short = step.bridge?.match(NAMESPACE_UUID);
  if (short) return { text: `${short[1]}${short[2]}…`, title: step.bridge! };
  return { text: step.bridge ?? step.kind };
}

export function renderTrace(pane: HTMLElement, trace: Trace, topology: Topology | null): void {
  pane.hidden = false;
  const delivered = trace.verdict === "delivered";
  const denial = trace.denied ?? trace.reply?.denied ?? null;
  const verdict = pane.querySelector<HTMLElement>("#trace-verdict")!;
  if (trace.denied) {
    verdict.textContent = `✘ denied by ${trace.denied.firewall} firewall`;
    verdict.className = "verdict denied";
  } else {
    verdict.textContent = delivered ? "✔ delivered" : `✘ ${trace.verdict}`;
    verdict.className = `verdict ${delivered ? "ok" : "bad"}`;
  }
  pane.classList.toggle("denied", denial !== null);
  pane.querySelector<HTMLElement>("#trace-denial")!.replaceChildren(...(denial ? [denialText(denial)] : []));
  const hosts = [...new Set(trace.steps.map((s) => s.host).filter((h): h is string => !!h))];
  const port = trace.dport ? ` port ${trace.dport}` : "";
  const stale = topology && topology.revision !== trace.revision ? " (older revision)" : "";
  const reason = trace.reason ? ` — ${trace.reason}` : "";
  const reply = trace.reply ? ` · reply ${trace.reply.denied ? "denied" : trace.reply.verdict}` : "";
  const assumed = trace.assumed_plugged.length
    ? ` · VIF names assumed on ${trace.assumed_plugged.join(", ")} (no agent report)`
    : "";
  pane.querySelector<HTMLElement>("#trace-summary")!.textContent =
    `${endpointText(trace.src)} → ${endpointText(trace.dst)} · ${trace.proto.toUpperCase()}${port} · ` +
    `${trace.steps.length} steps across ${hosts.join(" → ") || "no host"}${reply} · ` +
    `revision ${trace.revision}${stale}${reason}${assumed}`;
  const rows: HTMLTableRowElement[] = [];
  let direction = "";
  let host: string | null = null; // of the previous row: a new host starts a new group
  for (const step of trace.steps) {
    if (step.direction !== direction) {
      direction = step.direction;
      const title = direction === "forward" ? "request" : `reply — ${trace.reply?.summary ?? ""}`;
      const cell = el("td", { text: direction === "forward" ? `${title} — ${trace.summary}` : title });
      cell.colSpan = 7;
      rows.push(el("tr", { class: `direction ${direction}` }, [cell]));
      host = null;
    }
    rows.push(stepRow(step, step.host !== host, step.index === denial?.step));
    host = step.host;
  }
  pane.querySelector("tbody")!.replaceChildren(...rows);
}

/** "orange-1's ingress firewall on compute-2 denied it at step 14: <why>". */
function denialText(denial: Denial): HTMLElement {
  const port = denial.port_name ?? denial.port_id?.slice(0, 8) ?? "the port";
  const where = denial.host ? ` on ${denial.host}` : "";
  const reply = denial.direction === "reply" ? " (the reply)" : "";
  return el("span", {}, [
    el("strong", { text: `${port}'s ${denial.firewall} firewall${where} denied it${reply} at step ${denial.step}` }),
    `: ${denial.reason}`,
  ]);
}

function stepRow(step: TraceStep, newHost: boolean, denying: boolean): HTMLTableRowElement {
  const isTable = step.table !== null;
  const where = whereText(step);
  const cells: [string, string | null, string?][] = [
    ["num", String(step.index)],
    [newHost ? "host" : "host repeat", step.host ?? ""],
    ["where", where.text, where.title],
    ["num", step.priority !== null ? String(step.priority) : ""],
    ["code", isTable ? step.match || "(any)" : step.match],
    ["code", step.actions],
    ["owner", [step.owner_description ?? step.owner, step.summary].filter(Boolean).join(" — ")],
  ];
  return el(
    "tr",
    {
      class: `step ${step.kind}${newHost ? " host-start" : ""}${step.firewall ? " firewall" : ""}` +
        `${denying ? " denying" : ""}`,
      title: step.firewall ? `firewall (${step.firewall})` : undefined,
    },
    cells.map(([cls, text, title]) => el("td", { class: cls, text: text ?? "", title })),
  );
}

export function renderTraceError(pane: HTMLElement, message: string): void {
  pane.hidden = false;
  const verdict = pane.querySelector<HTMLElement>("#trace-verdict")!;
  verdict.textContent = "trace failed";
  verdict.className = "verdict bad";
  pane.classList.remove("denied");
  pane.querySelector<HTMLElement>("#trace-denial")!.replaceChildren();
  pane.querySelector<HTMLElement>("#trace-summary")!.textContent = message;
  pane.querySelector("tbody")!.replaceChildren();
}
