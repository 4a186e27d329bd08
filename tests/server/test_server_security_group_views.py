"""What hosts see of security groups (the firewall part of the HostView), and exactly who
is told when a group, a rule, an address group or a port's membership changes."""

import pytest

from dvr.model.hostview import AddressPair, AddressSetView, SecurityGroupRuleView


@pytest.fixture
def world(api):
    """h1: vm1 in A; h2: vm2 in B, whose rule lets A in; h3: vm3 in C (unrelated).  Each VM
    on a network of its own, so that L2 population tells nobody else about its ports."""
    for n, host in enumerate(("h1", "h2", "h3", "h4"), start=1):
        api.register(host, "dvr", f"192.0.2.{n}")
    w = {}
    for name in ("A", "B", "C"):
        w[name] = api.create("security_group", name=name)["id"]
    w["b_rule"] = create_rule(api, w["B"], remote_group_id=w["A"])["id"]
    for n, (vm, host, group) in enumerate(
        (("vm1", "h1", "A"), ("vm2", "h2", "B"), ("vm3", "h3", "C"), ("vm4", "", "C"))
    ):
        network = api.network(f"net-{vm}")
        api.subnet(network["id"], f"10.{n}.0.0/24")
        w[f"net-{vm}"] = network["id"]
        w[vm] = api.port(network["id"], host=host, security_groups=[w[group]])
    w["net"] = w["net-vm4"]  # a network no bound port is on
    return w


def create_rule(api, group_id, **attrs):
    body = {"security_group_rule": {"security_group_id": group_id, "direction": "ingress",
                                    **attrs}}
    return api.call("POST", "/v2.0/security-group-rules", body, expect=201)[
        "security_group_rule"
    ]


def notified(api, action):
    before = api.revision()
    action()
    return api.notified_since(before)


def ip_of(port):
    return port["fixed_ips"][0]["ip_address"]


def test_view_carries_port_security_groups_pairs_and_typed_rules(api, world):
    port = api.update("port", world["vm2"]["id"], allowed_address_pairs=[
        {"ip_address": "192.0.2.50"}, {"ip_address": "192.0.2.0/28",
                                        "mac_address": "fa:16:3e:00:00:09"},
    ])
    icmp = create_rule(api, world["B"], protocol="icmp", port_range_min=8, port_range_max=0)
    tcp = create_rule(api, world["B"], protocol="tcp", port_range_min=80, port_range_max=81,
                      remote_ip_prefix="0.0.0.0/0")
    icmp6 = create_rule(api, world["B"], protocol="icmp", ethertype="IPv6")
    view = api.view("h2")
    [vm2] = [p for p in view.ports if p.id == port["id"]]
    assert vm2.port_security_enabled and vm2.security_group_ids == (world["B"],)
    assert vm2.allowed_address_pairs == (
        AddressPair("fa:16:3e:00:00:09", "192.0.2.0/28"),
        AddressPair(port["mac_address"], "192.0.2.50"),
    )
    [group] = view.security_groups
    assert group.id == world["B"] and group.stateful
    rules = {r.id: r for r in group.rules}
    assert list(rules) == sorted(rules)
    assert rules[icmp["id"]] == SecurityGroupRuleView(
        icmp["id"], "ingress", "IPv4", protocol=1, icmp_type=8, icmp_code=0
    )
    assert rules[tcp["id"]] == SecurityGroupRuleView(
        tcp["id"], "ingress", "IPv4", protocol=6, port_range_min=80, port_range_max=81
    )
    assert rules[icmp6["id"]].protocol == 58
    assert rules[world["b_rule"]].remote_group_id == world["A"]
    # A's members, wherever they are bound (vm1 on h1), as host CIDRs
    assert view.address_sets == (
        AddressSetView(world["A"], "security_group", (f"{ip_of(world['vm1'])}/32",)),
    )


def test_network_owned_ports_are_not_filtered(api, world):
    router_port = api.port(world["net"], host="h1", owner="network:router_centralized_snat")
    [view_port] = [p for p in api.view("h1").ports if p.id == router_port["id"]]
    assert not view_port.port_security_enabled and view_port.security_group_ids == ()


def test_address_sets_of_remote_groups_and_address_groups(api, world):
    ag = api.create("address_group", name="ag", addresses=["203.0.113.0/24", "2001:db8::1"])
    create_rule(api, world["B"], remote_address_group_id=ag["id"], ethertype="IPv6")
    api.update("port", world["vm1"]["id"], allowed_address_pairs=[{"ip_address": "192.0.2.99"}])
    unbound = api.port(world["net"], security_groups=[world["A"]])
    sets = {s.id: s for s in api.view("h2").address_sets}
    assert sets[ag["id"]] == AddressSetView(
        ag["id"], "address_group", ("2001:db8::1/128", "203.0.113.0/24")
    )
    assert set(sets[world["A"]].cidrs) == {
        f"{ip_of(world['vm1'])}/32", "192.0.2.99/32", f"{ip_of(unbound)}/32"
    }
    assert [s.kind for s in api.view("h2").address_sets] == ["address_group", "security_group"]
    assert api.view("h3").address_sets == ()


def test_port_security_off_shows_no_groups(api, world):
    api.update("port", world["vm3"]["id"], port_security_enabled=False, security_groups=[])
    view = api.view("h3")
    [vm3] = view.ports
    assert not vm3.port_security_enabled and view.security_groups == ()


# -- who is told -----------------------------------------------------------------------------
def test_rule_change_tells_the_hosts_of_the_groups_members(api, world):
    assert notified(api, lambda: create_rule(api, world["A"], protocol="tcp")) == {"h1"}
    rule_id = create_rule(api, world["C"], protocol="udp")["id"]
    assert notified(api, lambda: api.delete("security_group_rule", rule_id)) == {"h3"}


def test_membership_change_tells_the_port_host_and_the_remote_groups_users(api, world):
    # vm3 joins A: h3 (its own port) and h2 (B lets A in); h1 sees nothing new
    joined = notified(api, lambda: api.update(
        "port", world["vm3"]["id"], security_groups=[world["A"], world["C"]]
    ))
    assert joined == {"h3", "h2"}
    unbound = notified(api, lambda: api.port(world["net"], security_groups=[world["A"]]))
    assert unbound == {"h2"}
    assert notified(api, lambda: api.port(world["net"], host="h4",
                                          security_groups=[world["C"]])) == {"h4"}
    # C is nobody's remote group: binding a member tells only the host it lands on
    assert notified(api, lambda: api.update("port", world["vm4"]["id"],
                                            **{"binding:host_id": "h1"})) == {"h1", "h4"}


def test_member_address_change_tells_the_remote_groups_users(api, world):
    pairs = [{"ip_address": "192.0.2.77"}]
    changed = notified(api, lambda: api.update("port", world["vm1"]["id"],
                                               allowed_address_pairs=pairs))
    assert changed == {"h1", "h2"}
    assert notified(api, lambda: api.delete("port", world["vm1"]["id"])) == {"h1", "h2"}


def test_address_group_change_tells_the_hosts_whose_rules_use_it(api, world):
    ag = api.create("address_group", name="ag", addresses=["203.0.113.0/24"])
    assert notified(api, lambda: create_rule(api, world["C"],
                                             remote_address_group_id=ag["id"])) == {"h3"}
    path = f"/v2.0/address-groups/{ag['id']}/add_addresses"
    body = {"addresses": ["198.18.0.0/15"]}
    assert notified(api, lambda: api.call("PUT", path, body, expect=200)) == {"h3"}
    assert notified(api, lambda: api.update("address_group", ag["id"], name="x")) == set()


def test_group_delete_tells_the_users_of_rules_referencing_it(api, world):
    api.delete("port", world["vm1"]["id"])
    assert notified(api, lambda: api.delete("security_group", world["A"])) == {"h2"}
    assert notified(api, lambda: api.update("security_group", world["C"], name="c2")) == {"h3"}
    assert notified(api, lambda: api.create("security_group", name="new")) == set()


def test_a_new_member_of_a_self_referencing_group_tells_every_members_host(api, world):
    """The default group lets its own members in: each member's host sees a new member."""
    [default] = api.list("security_group", name="default")
    for vm in ("vm1", "vm2"):
        api.update("port", world[vm]["id"], security_groups=[default["id"]])
    got = notified(api, lambda: api.port(world["net-vm3"], host="h3"))  # default group
    assert got == {"h1", "h2", "h3"}
