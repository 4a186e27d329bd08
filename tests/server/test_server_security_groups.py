"""Security groups, rules, the default-rule template, address groups, port security and
allowed address pairs: Neutron's semantics and error types, against a real server."""

import pytest
from server_helpers import UPPER_POOL

ANY_V4, ANY_V6 = "IPv4", "IPv6"


@pytest.fixture
def net(api):
    network = api.network("blue")
    subnet = api.subnet(network["id"], "198.51.100.0/24", allocation_pools=UPPER_POOL)
    return network, subnet


def default_group(api, project=None):
    params = {"name": "default"} | ({"project_id": project} if project else {})
    [group] = api.list("security_group", **params)
    return group


def rule(api, group_id, expect=201, **attrs):
    body = {"security_group_rule": {"security_group_id": group_id, "direction": "ingress",
                                    **attrs}}
    response = api.call("POST", "/v2.0/security-group-rules", body)
    return response


def rule_error(api, group_id, **attrs):
    body = {"security_group_rule": {"security_group_id": group_id, "direction": "ingress",
                                    **attrs}}
    return api.error("POST", "/v2.0/security-group-rules", body)


def shape(rules):
    return sorted(
        (r["direction"], r["ethertype"], r["protocol"], r["remote_group_id"],
         r["remote_ip_prefix"])
        for r in rules
    )


# -- groups and the default group ------------------------------------------------------------
def test_default_group_is_created_on_first_list_with_neutrons_rules(api):
    group = default_group(api)
    assert group["description"] == "Default security group" and group["stateful"] is True
    me = group["id"]
    assert shape(group["security_group_rules"]) == [
        ("egress", ANY_V4, None, None, None),
        ("egress", ANY_V6, None, None, None),
        ("ingress", ANY_V4, None, me, None),
        ("ingress", ANY_V6, None, me, None),
    ]
    assert default_group(api)["id"] == me  # once per project
    other = default_group(api, project="p2")
    assert other["id"] != me and other["project_id"] == "p2"


def test_default_group_cannot_be_deleted_or_renamed(api):
    group = default_group(api)
    status, error = api.error("DELETE", f"/v2.0/security-groups/{group['id']}")
    assert (status, error["type"]) == (409, "SecurityGroupCannotRemoveDefault")
    status, error = api.error(
        "PUT", f"/v2.0/security-groups/{group['id']}", {"security_group": {"name": "x"}}
    )
    assert (status, error["type"]) == (409, "SecurityGroupCannotUpdateDefault")
    updated = api.update("security_group", group["id"], description="mine")
    assert updated["description"] == "mine"
    status, error = api.error("POST", "/v2.0/security-groups",
                              {"security_group": {"name": "default"}})
    assert (status, error["type"]) == (409, "SecurityGroupDefaultAlreadyExists")


def test_new_group_gets_the_templates_non_default_rules_and_tags(api):
    group = api.create("security_group", name="web", description="d", stateful=False)
    assert group["stateful"] is False and group["description"] == "d"
    assert shape(group["security_group_rules"]) == [
        ("egress", ANY_V4, None, None, None),
        ("egress", ANY_V6, None, None, None),
    ]
    path = f"/v2.0/security-groups/{group['id']}/tags"
    api.call("PUT", path, {"tags": ["b", "a"]}, expect=200)
    assert api.show("security_group", group["id"])["tags"] == ["a", "b"]
    assert [g["id"] for g in api.list("security_group", tags="a")] == [group["id"]]
    names = [g["name"] for g in api.list("security_group", sort_key="name", sort_dir="desc")]
    assert names == ["web", "default"]
    status, error = api.error("GET", "/v2.0/security-groups/" + "0" * 8 + "-0000-4000-8000-"
                              + "0" * 12)
    assert (status, error["type"]) == (404, "SecurityGroupNotFound")


# -- rules -----------------------------------------------------------------------------------
def test_rules_normalize_protocols_ports_and_prefixes(api):
    group = api.create("security_group", name="g")
    tcp = rule(api, group["id"], protocol="TCP", port_range_min=80, port_range_max=81,
               remote_ip_prefix="192.0.2.77/24")["security_group_rule"]
    assert (tcp["protocol"], tcp["remote_ip_prefix"], tcp["ethertype"]) == (
        "tcp", "192.0.2.0/24", "IPv4"
    )
    numbered = rule(api, group["id"], protocol=132, port_range_min=5, port_range_max=5)
    assert numbered["security_group_rule"]["protocol"] == "132"
    icmp = rule(api, group["id"], protocol="icmp", port_range_min=8, port_range_max=0)
    assert icmp["security_group_rule"]["port_range_min"] == 8
    v6 = rule(api, group["id"], protocol="ipv6-icmp", ethertype="ipv6",
              remote_ip_prefix="2001:db8::1")["security_group_rule"]
    assert (v6["ethertype"], v6["remote_ip_prefix"]) == ("IPv6", "2001:db8::1/128")
    shown = api.show("security_group", group["id"])["security_group_rules"]
    assert {tcp["id"], v6["id"]} <= {r["id"] for r in shown}
    listed = api.list("security_group_rule", security_group_id=group["id"])
    assert len(listed) == len(shown) == 6
    api.delete("security_group_rule", tcp["id"])
    status, error = api.error("GET", f"/v2.0/security-group-rules/{tcp['id']}")
    assert (status, error["type"]) == (404, "SecurityGroupRuleNotFound")


def test_duplicate_rules_conflict_whatever_the_spelling(api):
    group = api.create("security_group", name="g")
    first = rule(api, group["id"], protocol="tcp", port_range_min=22, port_range_max=22)
    first_id = first["security_group_rule"]["id"]
    for spelling in ("6", 6, "TCP"):
        status, error = rule_error(api, group["id"], protocol=spelling, port_range_min=22,
                                   port_range_max=22, description="other")
        assert (status, error["type"]) == (409, "SecurityGroupRuleExists")
        assert first_id in error["message"]
    status, error = rule_error(api, group["id"], direction="egress")  # the template's
    assert (status, error["type"]) == (409, "SecurityGroupRuleExists")
    status, error = rule_error(api, group["id"], direction="egress",
                               remote_ip_prefix="0.0.0.0/0")
    assert (status, error["type"]) == (409, "SecurityGroupRuleExists")


@pytest.mark.parametrize(
    ("attrs", "status", "type_name"),
    [
        ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, 400,
         "SecurityGroupInvalidPortRange"),
        ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 80}, 400,
         "SecurityGroupInvalidPortValue"),
        ({"protocol": "udp", "port_range_min": 80}, 400, "SecurityGroupInvalidPortRange"),
        ({"port_range_min": 80, "port_range_max": 80}, 400,
         "SecurityGroupProtocolRequiredWithPorts"),
        ({"protocol": "icmp", "port_range_min": 256}, 400, "SecurityGroupInvalidIcmpValue"),
        ({"protocol": "icmp", "port_range_max": 3}, 400, "SecurityGroupMissingIcmpType"),
        ({"protocol": "gre", "port_range_min": 1, "port_range_max": 1}, 400,
         "SecurityGroupInvalidProtocolForPort"),
        ({"protocol": "icmpv6"}, 400, "SecurityGroupEthertypeConflictWithProtocol"),
        ({"remote_ip_prefix": "2001:db8::/64"}, 400, "SecurityGroupRuleParameterConflict"),
        ({"protocol": 256}, 400, "HTTPBadRequest"),
        ({"protocol": "bogus"}, 400, "HTTPBadRequest"),
        ({"protocol": True}, 400, "HTTPBadRequest"),
        ({"port_range_min": 70000, "protocol": "tcp"}, 400, "HTTPBadRequest"),
        ({"ethertype": "IPv5"}, 400, "HTTPBadRequest"),
        ({"direction": "sideways"}, 400, "HTTPBadRequest"),
        ({"remote_ip_prefix": "300.1.1.1/8"}, 400, "HTTPBadRequest"),
        ({"remote_group_id": "not-a-uuid"}, 400, "HTTPBadRequest"),
        ({"remote_group_id": "7d8e1e0e-7f4b-4a5e-9d1e-2b1c3d4e5f60"}, 404,
         "SecurityGroupNotFound"),
        ({"remote_address_group_id": "7d8e1e0e-7f4b-4a5e-9d1e-2b1c3d4e5f60"}, 404,
         "AddressGroupNotFound"),
        ({"port_range_min": "\u0663", "protocol": "tcp"}, 400, "HTTPBadRequest"),
    ],
)
def test_invalid_rules_are_refused_with_neutrons_errors(api, attrs, status, type_name):
    group = api.create("security_group", name="g")
    assert rule_error(api, group["id"], **attrs)[:1] == (status,)
    assert rule_error(api, group["id"], **attrs)[1]["type"] == type_name


def test_rule_remotes_are_mutually_exclusive_and_unknown_group_is_404(api):
    group = api.create("security_group", name="g")
    status, error = rule_error(api, group["id"], remote_group_id=group["id"],
                               remote_ip_prefix="192.0.2.0/24")
    assert (status, error["type"]) == (400, "SecurityGroupMultipleRemoteEntites")
    missing = "7d8e1e0e-7f4b-4a5e-9d1e-2b1c3d4e5f60"
    status, error = rule_error(api, missing)
    assert (status, error["type"]) == (404, "SecurityGroupNotFound")


def test_rules_on_the_default_group_and_remote_group_cascade(api):
    default = default_group(api)
    web = api.create("security_group", name="web")
    added = rule(api, default["id"], protocol="tcp", port_range_min=80, port_range_max=80,
                 remote_group_id=web["id"])["security_group_rule"]
    assert added["remote_group_id"] == web["id"]
    api.delete("security_group", web["id"])  # the rules referencing it go with it
    remaining = api.show("security_group", default["id"])["security_group_rules"]
    assert added["id"] not in {r["id"] for r in remaining}


# -- ports -----------------------------------------------------------------------------------
def test_ports_get_the_default_group_unless_told_otherwise(api, net):
    network, _ = net
    group = api.create("security_group", name="web")
    port = api.port(network["id"])
    assert port["security_groups"] == [default_group(api)["id"]]
    assert api.port(network["id"], security_groups=[])["security_groups"] == []
    chosen = api.port(network["id"], security_groups=[group["id"], group["id"]])
    assert chosen["security_groups"] == [group["id"]]
    router_port = api.port(network["id"], owner="network:router_interface_distributed")
    assert router_port["security_groups"] == []
    unprotected = api.port(network["id"], port_security_enabled=False)
    assert unprotected["security_groups"] == [] and not unprotected["port_security_enabled"]
    filtered = api.list("port", security_groups=group["id"])
    assert [p["id"] for p in filtered] == [chosen["id"]]


def test_port_security_off_needs_the_groups_cleared(api, net):
    network, _ = net
    port = api.port(network["id"])
    path = f"/v2.0/ports/{port['id']}"
    status, error = api.error("PUT", path, {"port": {"port_security_enabled": False}})
    assert (status, error["type"]) == (409, "PortSecurityPortHasSecurityGroup")
    off = api.update("port", port["id"], port_security_enabled=False, security_groups=[])
    assert off["port_security_enabled"] is False and off["security_groups"] == []
    group = api.create("security_group", name="g")
    status, error = api.error("PUT", path, {"port": {"security_groups": [group["id"]]}})
    assert (status, error["type"]) == (400, "PortSecurityAndIPRequiredForSecurityGroups")
    on = api.update("port", port["id"], port_security_enabled=True)
    assert on["security_groups"] == [default_group(api)["id"]]
    status, error = api.error(
        "POST", "/v2.0/ports",
        {"port": {"network_id": network["id"], "security_groups": [group["id"]],
                  "port_security_enabled": False}},
    )
    assert (status, error["type"]) == (400, "PortSecurityAndIPRequiredForSecurityGroups")
    status, error = api.error(
        "POST", "/v2.0/ports",
        {"port": {"network_id": network["id"],
                  "security_groups": ["7d8e1e0e-7f4b-4a5e-9d1e-2b1c3d4e5f60"]}},
    )
    assert (status, error["type"]) == (404, "SecurityGroupNotFound")


def test_network_port_security_is_the_default_of_its_ports(api):
    network = api.network("open", port_security_enabled=False)
    api.subnet(network["id"], "192.0.2.0/24")
    port = api.port(network["id"])
    assert port["port_security_enabled"] is False and port["security_groups"] == []


def test_group_in_use_cannot_be_deleted_or_made_stateless(api, net):
    network, _ = net
    group = api.create("security_group", name="g")
    port = api.port(network["id"], security_groups=[group["id"]])
    status, error = api.error("DELETE", f"/v2.0/security-groups/{group['id']}")
    assert (status, error["type"]) == (409, "SecurityGroupInUse")
    status, error = api.error("PUT", f"/v2.0/security-groups/{group['id']}",
                              {"security_group": {"stateful": False}})
    assert (status, error["type"]) == (409, "SecurityGroupInUse")
    api.delete("port", port["id"])
    api.delete("security_group", group["id"])


def test_allowed_address_pairs(api, net):
    network, _ = net
    port = api.port(network["id"], allowed_address_pairs=[
        {"ip_address": "192.0.2.10"},
        {"ip_address": "192.0.2.0/28", "mac_address": "FA:16:3E:00:00:01"},
    ])
    assert port["allowed_address_pairs"] == [
        {"ip_address": "192.0.2.10", "mac_address": port["mac_address"]},
        {"ip_address": "192.0.2.0/28", "mac_address": "fa:16:3e:00:00:01"},
    ]
    path = f"/v2.0/ports/{port['id']}"
    pair = {"ip_address": "192.0.2.10"}
    status, error = api.error("PUT", path, {"port": {"allowed_address_pairs": [pair, pair]}})
    assert (status, error["type"]) == (400, "DuplicateAddressPairInRequest")
    status, error = api.error("PUT", path, {"port": {"allowed_address_pairs": [{"mac": 1}]}})
    assert status == 400
    status, error = api.error(
        "PUT", path, {"port": {"port_security_enabled": False, "security_groups": []}}
    )
    assert (status, error["type"]) == (409, "AddressPairAndPortSecurityRequired")


# -- the default-rule template -----------------------------------------------------------------
def test_default_security_group_rules_template(api):
    path = "/v2.0/default-security-group-rules"
    seeded = api.call("GET", path, expect=200)["default_security_group_rules"]
    assert sorted((r["direction"], r["ethertype"], r["remote_group_id"],
                   r["used_in_default_sg"], r["used_in_non_default_sg"]) for r in seeded) == [
        ("egress", "IPv4", None, True, True),
        ("egress", "IPv6", None, True, True),
        ("ingress", "IPv4", "PARENT", True, False),
        ("ingress", "IPv6", "PARENT", True, False),
    ]
    body = {"default_security_group_rule": {
        "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_group_id": "PARENT", "used_in_non_default_sg": True,
    }}
    created = api.call("POST", path, body, expect=201)["default_security_group_rule"]
    assert created["used_in_default_sg"] is False
    status, error = api.error("POST", path, body)
    assert (status, error["type"]) == (409, "DefaultSecurityGroupRuleExists")
    group = api.create("security_group", name="g")
    ssh = [r for r in group["security_group_rules"] if r["protocol"] == "tcp"]
    assert [(r["port_range_min"], r["remote_group_id"]) for r in ssh] == [(22, group["id"])]
    assert not [r for r in default_group(api)["security_group_rules"] if r["protocol"]]
    api.call("DELETE", f"{path}/{created['id']}", expect=204)
    status, error = api.error("GET", f"{path}/{created['id']}")
    assert (status, error["type"]) == (404, "DefaultSecurityGroupRuleNotFound")
    status, error = api.error("PUT", f"{path}/{seeded[0]['id']}",
                              {"default_security_group_rule": {"description": "x"}})
    assert status == 405


# -- address groups --------------------------------------------------------------------------
def test_address_groups(api):
    group = api.create("address_group", name="ag", description="d",
                       addresses=["192.0.2.1", "2001:db8::/32", "192.0.2.1/32"])
    assert group["addresses"] == ["192.0.2.1/32", "2001:db8::/32"]
    path = f"/v2.0/address-groups/{group['id']}"
    added = api.call("PUT", path + "/add_addresses", {"addresses": ["198.51.100.0/24"]},
                     expect=200)["address_group"]
    assert sorted(added["addresses"]) == ["192.0.2.1/32", "198.51.100.0/24", "2001:db8::/32"]
    status, error = api.error("PUT", path + "/add_addresses", {"addresses": ["192.0.2.1"]})
    assert (status, error["type"]) == (400, "AddressesAlreadyExist")
    status, error = api.error("PUT", path + "/remove_addresses", {"addresses": ["10.0.0.0/8"]})
    assert (status, error["type"]) == (404, "AddressesNotFound")
    status, error = api.error("PUT", path + "/add_addresses", {"addresses": ["nope"]})
    assert status == 400
    removed = api.call("PUT", path + "/remove_addresses", {"addresses": ["2001:db8::/32"]},
                       expect=200)["address_group"]
    assert removed["addresses"] == ["192.0.2.1/32", "198.51.100.0/24"]
    assert api.update("address_group", group["id"], name="ag2")["name"] == "ag2"
    sg = api.create("security_group", name="g")
    rule(api, sg["id"], remote_address_group_id=group["id"])
    status, error = api.error("DELETE", path)
    assert (status, error["type"]) == (409, "AddressGroupInUse")
    api.delete("security_group", sg["id"])
    api.delete("address_group", group["id"])
    status, error = api.error("GET", path)
    assert (status, error["type"]) == (404, "AddressGroupNotFound")


def test_extensions_are_advertised(api):
    aliases = {e["alias"] for e in api.call("GET", "/v2.0/extensions", expect=200)["extensions"]}
    assert {
        "security-group", "port-security", "address-group", "stateful-security-group",
        "security-groups-default-rules", "security-groups-remote-address-group",
        "allowed-address-pairs",
    } <= aliases


def test_port_security_groups_must_be_uuids(api, net):
    network, _ = net
    status, error = api.error("POST", "/v2.0/ports", {"port": {
        "network_id": network["id"], "security_groups": ["not-a-uuid"]}})
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    status, error = api.error("POST", "/v2.0/ports", {"port": {
        "network_id": network["id"], "security_groups": "x"}})
    assert (status, error["type"]) == (400, "HTTPBadRequest")
