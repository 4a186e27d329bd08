// The "Security groups" card: for the VMs picked as a trace's ends, whether the firewall
// filters their port, their groups and each group's rules (from the topology document, which
// carries the groups as the security-group API renders them).

import type { Denial, SecurityGroup, SecurityGroupRule, Topology, Vm } from "./api";
import { el } from "./dom";
import { vmAddress } from "./layout";

const ANY = "any";

function protocolText(rule: SecurityGroupRule): string {
  const protocol = rule.protocol ?? ANY;
  const [low, high] = [rule.port_range_min, rule.port_range_max];
  if (protocol === "icmp" || protocol === "ipv6-icmp" || protocol === "1" || protocol === "58") {
    if (low === null) return protocol;
    return `${protocol} type ${low}${high !== null ? ` code ${high}` : ""}`;
  }
  if (low === null) return protocol;
  return `${protocol} ${low === high || high === null ? low : `${low}-${high}`}`;
}

function remoteText(rule: SecurityGroupRule, groupNames: ReadonlyMap<string, string>): string {
  if (rule.remote_group_id) return `group ${groupNames.get(rule.remote_group_id) ?? rule.remote_group_id.slice(0, 8)}`;
  if (rule.remote_address_group_id) return `address group ${rule.remote_address_group_id.slice(0, 8)}`;
  return rule.remote_ip_prefix ?? ANY;
}

/** One rule in a line: "ingress IPv4 tcp 80 from 0.0.0.0/0". */
export function ruleText(rule: SecurityGroupRule, groupNames: ReadonlyMap<string, string>): string {
  const way = rule.direction === "ingress" ? "from" : "to";
  return `${rule.direction} ${rule.ethertype} ${protocolText(rule)} ${way} ${remoteText(rule, groupNames)}`;
}

/** Groups in their <details> element, opened or closed by the user, stay so across redraws. */
export class SecurityPanel {
  private readonly open = new Set<string>();

  constructor(private readonly container: HTMLElement) {}

  render(topology: Topology | null, portIds: string[], denial: Denial | null): void {
    const vms = portIds
      .map((id) => topology?.vms.find((vm) => vm.id === id))
      .filter((vm): vm is Vm => vm !== undefined);
    if (!topology || !vms.length) {
      this.container.replaceChildren(
        el("p", { class: "muted", text: "Pick a VM (or a trace's ends) to see its port's security groups." }),
      );
      return;
    }
    const groups = new Map((topology.security_groups ?? []).map((g) => [g.id, g]));
    const names = new Map([...groups.values()].map((g) => [g.id, g.name || g.id.slice(0, 8)]));
    this.container.replaceChildren(...vms.map((vm) => this.port(vm, groups, names, denial)));
  }

  private port(
    vm: Vm,
    groups: ReadonlyMap<string, SecurityGroup>,
    names: ReadonlyMap<string, string>,
    denial: Denial | null,
  ): HTMLElement {
    const title = el("div", { class: "port-title" }, [
      el("strong", { text: vm.name || vm.id.slice(0, 8) }),
      el("span", { class: "muted", text: ` ${vmAddress(vm)} · ${vm.host ?? "unbound"}` }),
    ]);
    const body: HTMLElement[] = [title];
    if (denial && denial.port_id === vm.id) {
      body.push(el("p", {
        class: "port-denied",
        text: `✘ its ${denial.firewall} firewall denied the traced packet (step ${denial.step})`,
      }));
    }
    if (vm.port_security_enabled === false) {
      body.push(el("p", { class: "port-unfiltered", text: "port security off: no firewall, no anti-spoofing" }));
    } else if (!vm.security_groups.length) {
      body.push(el("p", { class: "muted", text: "no security group: everything is dropped" }));
    } else {
      body.push(...vm.security_groups.map((id) => this.group(vm.id, id, groups.get(id), names)));
    }
    return el("div", { class: `port-groups${vm.port_security_enabled === false ? " unfiltered" : ""}` }, body);
  }

  private group(
    portId: string,
    groupId: string,
    group: SecurityGroup | undefined,
    names: ReadonlyMap<string, string>,
  ): HTMLElement {
    const key = `${portId}/${groupId}`;
    const rules = group?.security_group_rules ?? [];
    const stateless = group && !group.stateful ? " · stateless" : "";
    const details = el("details", { class: "sg" }, [
      el("summary", {}, [
        el("span", { class: "sg-name", text: names.get(groupId) ?? groupId }),
        el("span", { class: "muted", text: ` ${rules.length} rule${rules.length === 1 ? "" : "s"}${stateless}` }),
      ]),
      rules.length
        ? el("ul", { class: "rules" }, rules.map((rule) =>
            el("li", { class: `rule ${rule.direction}`, text: ruleText(rule, names), title: rule.description ?? "" })))
        : el("p", { class: "muted", text: "no rules: nothing is allowed by this group" }),
    ]);
    details.dataset.group = groupId;
    details.open = this.open.has(key);
    details.addEventListener("toggle", () => {
      if (details.open) this.open.add(key);
      else this.open.delete(key);
    });
    return details;
  }
}
