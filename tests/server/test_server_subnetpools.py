"""Subnet pools and address scopes: Neutron's rules, its error types, prefix allocation until
the pool is exhausted.  Every rejected request is checked to have changed nothing."""

from __future__ import annotations

from typing import Any

import pytest

POOLS = "/v2.0/subnetpools"
SCOPES = "/v2.0/address-scopes"


def make_pool(api, prefixes: list[str], name: str = "pool", **attrs: Any) -> dict[str, Any]:
    return api.create("subnetpool", name=name, prefixes=prefixes, **attrs)


def make_scope(api, ip_version: int = 4, name: str = "scope", **attrs: Any) -> dict[str, Any]:
    body = {"address_scope": {"name": name, "ip_version": ip_version, **attrs}}
    return api.call("POST", SCOPES, body, expect=201)["address_scope"]


def from_pool(api, network_id: str, pool_id: str, **attrs: Any) -> dict[str, Any]:
    return api.create("subnet", network_id=network_id, subnetpool_id=pool_id, **attrs)


def refused(api, method: str, path: str, body: Any = None) -> tuple[int, str, str]:
    status, error = api.error(method, path, body)
    return status, error["type"], error["message"]


def subnet_refused(api, **subnet: Any) -> tuple[int, str, str]:
    return refused(api, "POST", "/v2.0/subnets", {"subnet": subnet})


# -- pools -------------------------------------------------------------------------------------
def test_pool_defaults_collapse_prefixes_and_render_as_neutron(api):
    pool = make_pool(
        api, ["192.0.2.128/25", "192.0.2.0/25", "198.51.100.0/24", "198.51.100.64/26"]
    )
    assert pool["prefixes"] == ["192.0.2.0/24", "198.51.100.0/24"]
    assert pool["ip_version"] == 4
    # Neutron renders the lengths as strings; the default length is the minimum
    assert (pool["min_prefixlen"], pool["default_prefixlen"], pool["max_prefixlen"]) == (
        "8",
        "8",
        "32",
    )
    assert (pool["default_quota"], pool["shared"], pool["is_default"]) == (None, False, False)
    assert pool["address_scope_id"] is None
    assert pool["revision_number"] == 1 and pool["tags"] == [] and pool["description"] == ""
    assert api.show("subnetpool", pool["id"]) == pool
    v6 = make_pool(api, ["2001:db8::/48"], name="six", default_quota=5, shared=True)
    assert (v6["ip_version"], v6["min_prefixlen"], v6["default_prefixlen"]) == (6, "64", "64")
    assert (v6["max_prefixlen"], v6["default_quota"], v6["shared"]) == ("128", 5, True)
    assert [p["name"] for p in api.list("subnetpool", ip_version=6)] == ["six"]
    assert [p["name"] for p in api.list("subnetpool", max_prefixlen=32)] == ["pool"]


@pytest.mark.parametrize(
    ("body", "status", "error_type", "text"),
    [
        ({"prefixes": []}, 400, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list."),
        (
            {"prefixes": ["192.0.2.0/24", "2001:db8::/64"]},
            400,
            "PrefixVersionMismatch",
            "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
        ),
        (
            {"prefixes": ["192.0.2.0/24"], "min_prefixlen": 28, "max_prefixlen": 24},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "Illegal prefix bounds: min_prefixlen=28, max_prefixlen=24.",
        ),
        (
            {"prefixes": ["192.0.2.0/24"], "max_prefixlen": 33},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32.",
        ),
        (
            {"prefixes": ["192.0.2.0/24"], "min_prefixlen": 24, "default_prefixlen": 16},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "Illegal prefix bounds: default_prefixlen=16, min_prefixlen=24.",
        ),
        (
            {"prefixes": ["192.0.2.0/24"], "max_prefixlen": 26, "default_prefixlen": 28},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "Illegal prefix bounds: default_prefixlen=28, max_prefixlen=26.",
        ),
        (
            {"prefixes": ["2001:db8::/48"], "max_prefixlen": 129},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "max_prefixlen=129, ip_version_max=128",
        ),
        (
            {"prefixes": ["192.0.2.1/24"]},
            400,
            "HTTPBadRequest",
            "'192.0.2.1/24' isn't a recognized IP subnet cidr, '192.0.2.0/24' is recommended",
        ),
        ({"prefixes": ["192.0.2.0"]}, 400, "HTTPBadRequest", "is not a valid IP subnet"),
        (
            {"prefixes": ["192.0.2.0/24", "192.0.2.0/24"]},
            400,
            "HTTPBadRequest",
            "Duplicate items in the list",
        ),
        (
            {"prefixes": ["192.0.2.0/24"], "min_prefixlen": -1},
            400,
            "HTTPBadRequest",
            "Invalid input for min_prefixlen",
        ),
        (
            {"prefixes": ["192.0.2.0/24"], "ip_version": 4},
            400,
            "HTTPBadRequest",
            "Attribute 'ip_version' not allowed in POST",
        ),
        ({}, 400, "HTTPBadRequest", "Required attribute 'prefixes' not specified"),
    ],
)
def test_pool_validation(api, body, status, error_type, text):
    got = refused(api, "POST", POOLS, {"subnetpool": {"name": "p", **body}})
    assert got[:2] == (status, error_type)
    assert text in got[2]
    assert api.list("subnetpool") == []


def test_pool_name_is_required_and_not_blank(api):
    for body in ({"prefixes": ["192.0.2.0/24"]}, {"name": " ", "prefixes": ["192.0.2.0/24"]}):
        assert refused(api, "POST", POOLS, {"subnetpool": body})[:2] == (400, "HTTPBadRequest")
    assert api.list("subnetpool") == []


def test_pool_update_only_adds_address_space(api):
    pool = make_pool(api, ["192.0.2.0/25"], default_prefixlen=26)
    grown = api.update("subnetpool", pool["id"], prefixes=["192.0.2.0/24", "203.0.113.0/24"])
    assert grown["prefixes"] == ["192.0.2.0/24", "203.0.113.0/24"]
    assert grown["revision_number"] == 2
    status, error_type, message = refused(
        api, "PUT", f"{POOLS}/{pool['id']}", {"subnetpool": {"prefixes": ["192.0.2.0/24"]}}
    )
    assert (status, error_type) == (400, "IllegalSubnetPoolPrefixUpdate")
    assert message == (
        "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes."
    )
    assert api.show("subnetpool", pool["id"]) == grown


def test_pool_update_checks_bounds_against_the_stored_ones(api):
    pool = make_pool(api, ["192.0.2.0/24"], min_prefixlen=24, default_prefixlen=26)
    status, error_type, message = refused(
        api, "PUT", f"{POOLS}/{pool['id']}", {"subnetpool": {"max_prefixlen": 25}}
    )
    assert (status, error_type) == (400, "IllegalSubnetPoolPrefixBounds")
    assert message == "Illegal prefix bounds: default_prefixlen=26, max_prefixlen=25."
    assert api.show("subnetpool", pool["id"]) == pool
    updated = api.update(
        "subnetpool", pool["id"], max_prefixlen=28, default_prefixlen=28, name="renamed",
        default_quota=8, description="d",
    )
    assert (updated["max_prefixlen"], updated["default_prefixlen"]) == ("28", "28")
    assert (updated["name"], updated["default_quota"], updated["description"]) == (
        "renamed",
        8,
        "d",
    )
    for read_only in ({"shared": True}, {"ip_version": 6}):
        got = refused(api, "PUT", f"{POOLS}/{pool['id']}", {"subnetpool": read_only})
        assert got[:2] == (400, "HTTPBadRequest")
    assert api.show("subnetpool", pool["id"]) == updated


def test_one_default_pool_per_ip_version(api):
    default4 = make_pool(api, ["192.0.2.0/24"], name="d4", is_default=True)
    make_pool(api, ["2001:db8::/48"], name="d6", is_default=True)  # the other family: fine
    message = (
        "Invalid input for operation: A default subnetpool for this IP family has already been "
        "set. Only one default may exist per IP family"
    )
    body = {"subnetpool": {"name": "x", "prefixes": ["198.51.100.0/24"], "is_default": True}}
    assert refused(api, "POST", POOLS, body) == (400, "InvalidInput", message)
    other = make_pool(api, ["198.51.100.0/24"], name="other")
    path = f"{POOLS}/{other['id']}"
    assert refused(api, "PUT", path, {"subnetpool": {"is_default": True}}) == (
        400,
        "InvalidInput",
        message,
    )
    assert api.show("subnetpool", other["id"])["is_default"] is False
    api.update("subnetpool", default4["id"], is_default=False)
    assert api.update("subnetpool", other["id"], is_default=True)["is_default"] is True


def test_pool_not_found_and_tags(api):
    missing = "6d7e2b0e-1b6f-4b43-9d8a-000000000000"
    assert refused(api, "GET", f"{POOLS}/{missing}") == (
        404,
        "SubnetPoolNotFound",
        f"Subnet pool {missing} could not be found.",
    )
    pool = make_pool(api, ["192.0.2.0/24"])
    api.call("PUT", f"{POOLS}/{pool['id']}/tags", {"tags": ["blue", "red"]}, expect=200)
    assert api.show("subnetpool", pool["id"])["tags"] == ["blue", "red"]
    assert [p["id"] for p in api.list("subnetpool", tags="blue")] == [pool["id"]]


# -- allocation --------------------------------------------------------------------------------
def test_allocation_until_the_pool_is_exhausted(api):
    pool = make_pool(api, ["192.0.2.0/24"], default_prefixlen=26)
    net = api.network()
    cidrs = [from_pool(api, net["id"], pool["id"])["cidr"] for _ in range(4)]
    assert cidrs == ["192.0.2.0/26", "192.0.2.64/26", "192.0.2.128/26", "192.0.2.192/26"]
    before = api.list("subnet")
    assert refused(api, "POST", "/v2.0/subnets", {
        "subnet": {"network_id": net["id"], "subnetpool_id": pool["id"]}
    }) == (
        409,
        "SubnetAllocationError",
        "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /26.",
    )
    assert api.list("subnet") == before
    # a freed prefix is handed out again
    second = next(s for s in before if s["cidr"] == "192.0.2.64/26")
    api.delete("subnet", second["id"])
    assert from_pool(api, net["id"], pool["id"])["cidr"] == "192.0.2.64/26"


def test_allocated_subnet_has_neutron_defaults(api):
    pool = make_pool(api, ["198.51.100.0/24"], default_prefixlen=28)
    net = api.network()
    subnet = from_pool(api, net["id"], pool["id"], ip_version=4, name="s")
    assert (subnet["cidr"], subnet["subnetpool_id"], subnet["ip_version"]) == (
        "198.51.100.0/28",
        pool["id"],
        4,
    )
    assert subnet["gateway_ip"] == "198.51.100.1"
    assert subnet["allocation_pools"] == [{"start": "198.51.100.2", "end": "198.51.100.14"}]
    assert "prefixlen" not in subnet
    assert [s["id"] for s in api.list("subnet", subnetpool_id=pool["id"])] == [subnet["id"]]
    no_gateway = from_pool(api, net["id"], pool["id"], gateway_ip=None)
    assert (no_gateway["cidr"], no_gateway["gateway_ip"]) == ("198.51.100.16/28", None)


def test_prefix_length_fills_the_smallest_free_block_first(api):
    pool = make_pool(api, ["192.0.2.0/24"], default_prefixlen=24)
    net = api.network()

    def take(prefixlen: int) -> str:
        return from_pool(api, net["id"], pool["id"], prefixlen=prefixlen)["cidr"]

    assert take(28) == "192.0.2.0/28"
    assert take(26) == "192.0.2.64/26"  # free: .16/28 .32/27 .64/26 .128/25
    assert take(28) == "192.0.2.16/28"
    assert take(27) == "192.0.2.32/27"
    assert take(25) == "192.0.2.128/25"
    assert subnet_refused(api, network_id=net["id"], subnetpool_id=pool["id"], prefixlen=32)[
        :2
    ] == (409, "SubnetAllocationError")


def test_ipv6_pool(api):
    pool = make_pool(api, ["2001:db8::/62"])
    net = api.network()
    cidrs = [from_pool(api, net["id"], pool["id"])["cidr"] for _ in range(4)]
    assert cidrs == ["2001:db8::/64", "2001:db8:0:1::/64", "2001:db8:0:2::/64", "2001:db8:0:3::/64"]
    assert subnet_refused(api, network_id=net["id"], subnetpool_id=pool["id"])[:2] == (
        409,
        "SubnetAllocationError",
    )
    slaac = make_pool(api, ["2001:db8:1::/48"], name="slaac")
    other = api.network("other")
    subnet = from_pool(
        api, other["id"], slaac["id"], ipv6_ra_mode="slaac", ipv6_address_mode="slaac"
    )
    assert (subnet["cidr"], subnet["gateway_ip"]) == ("2001:db8:1::/64", "2001:db8:1::1")


def test_specific_cidr_from_a_pool(api):
    pool = make_pool(api, ["192.0.2.0/24"], default_prefixlen=26, max_prefixlen=28)
    net = api.network()
    subnet = api.subnet(net["id"], "192.0.2.64/26", subnetpool_id=pool["id"])
    assert subnet["subnetpool_id"] == pool["id"]
    assert from_pool(api, net["id"], pool["id"])["cidr"] == "192.0.2.0/26"
    taken = "Failed to allocate subnet: Cannot allocate requested subnet from the available set "
    taken += "of prefixes."
    for cidr in ("192.0.2.64/27", "192.0.2.0/25", "198.51.100.0/26"):  # used, used, outside
        assert subnet_refused(
            api, network_id=net["id"], subnetpool_id=pool["id"], cidr=cidr
        ) == (409, "SubnetAllocationError", taken)
    # a gateway without a cidr asks for the prefix around it
    other = api.network("other")
    by_gateway = from_pool(api, other["id"], pool["id"], gateway_ip="192.0.2.200")
    assert (by_gateway["cidr"], by_gateway["gateway_ip"]) == ("192.0.2.192/26", "192.0.2.200")
    assert len(api.list("subnet")) == 3


@pytest.mark.parametrize(
    ("extra", "status", "error_type", "text"),
    [
        (
            {"cidr": "192.0.2.0/26", "prefixlen": 26},
            400,
            "BadRequest",
            "Bad subnets request: cidr and prefixlen must not be supplied together",
        ),
        (
            {"prefixlen": 30},
            400,
            "MaxPrefixSubnetAllocationError",
            "Unable to allocate subnet with prefix length 30, maximum allowed prefix is 28.",
        ),
        (
            {"prefixlen": 20},
            400,
            "MinPrefixSubnetAllocationError",
            "Unable to allocate subnet with prefix length 20, minimum allowed prefix is 24.",
        ),
        (
            {"cidr": "192.0.2.0/30"},
            400,
            "MaxPrefixSubnetAllocationError",
            "prefix length 30, maximum allowed prefix is 28",
        ),
        (
            {"ip_version": 6},
            400,
            "BadRequest",
            "Bad subnets request: Cannot allocate IPv6 subnet from IPv4 subnet pool",
        ),
        (
            {"allocation_pools": [{"start": "192.0.2.10", "end": "192.0.2.20"}]},
            400,
            "BadRequest",
            "allocation_pools allowed only for specific subnet requests.",
        ),
        (
            {"use_default_subnetpool": True},
            400,
            "BadRequest",
            "subnetpool_id and use_default_subnetpool cannot both be specified",
        ),
        ({"prefixlen": -1}, 400, "HTTPBadRequest", "Invalid input for prefixlen"),
        (
            {"gateway_ip": "2001:db8::1"},
            400,
            "BadRequest",
            "Bad subnets request: Cannot allocate IPv6 subnet from IPv4 subnet pool",
        ),
        (
            {"gateway_ip": "192.0.2.1", "prefixlen": 33},
            400,
            "InvalidInput",
            "192.0.2.1/33 is not in a CIDR format.",
        ),
        (
            {"cidr": "2001:db8::/64"},
            400,
            "InvalidInput",
            "Cidr and ip_version do not match",
        ),
    ],
)
def test_subnet_from_pool_refusals(api, extra, status, error_type, text):
    pool = make_pool(api, ["192.0.2.0/24"], min_prefixlen=24, default_prefixlen=26,
                     max_prefixlen=28)
    net = api.network()
    got = subnet_refused(api, network_id=net["id"], subnetpool_id=pool["id"], **extra)
    assert got[:2] == (status, error_type)
    assert text in got[2]
    assert api.list("subnet") == []
    assert api.show("network", net["id"])["revision_number"] == 1


def test_subnet_pool_id_must_exist(api):
    net = api.network()
    missing = "6d7e2b0e-1b6f-4b43-9d8a-000000000000"
    assert subnet_refused(api, network_id=net["id"], subnetpool_id=missing) == (
        404,
        "SubnetPoolNotFound",
        f"Subnet pool {missing} could not be found.",
    )
    assert subnet_refused(api, network_id=net["id"], subnetpool_id="nope")[:2] == (
        400,
        "HTTPBadRequest",
    )
    assert subnet_refused(api, network_id=net["id"], prefixlen=24) == (
        400,
        "BadRequest",
        "Bad subnets request: a subnetpool must be specified in the absence of a cidr",
    )
    assert api.list("subnet") == []


def test_use_default_subnetpool(api):
    net = api.network()
    assert subnet_refused(api, network_id=net["id"], use_default_subnetpool=True) == (
        400,
        "BadRequest",
        "Bad subnets request: ip_version must be specified in the absence of cidr and "
        "subnetpool_id",
    )
    assert subnet_refused(
        api, network_id=net["id"], use_default_subnetpool=True, ip_version=6
    ) == (400, "BadRequest", "Bad subnets request: No default subnetpool found for IPv6")
    make_pool(api, ["198.51.100.0/24"], name="not-default", default_prefixlen=24)
    pool = make_pool(api, ["192.0.2.0/24"], is_default=True, default_prefixlen=27)
    subnet = api.create(
        "subnet", network_id=net["id"], use_default_subnetpool=True, ip_version=4
    )
    assert (subnet["cidr"], subnet["subnetpool_id"]) == ("192.0.2.0/27", pool["id"])
    assert "use_default_subnetpool" not in subnet


def test_pool_delete_refused_while_subnets_use_it(api):
    pool = make_pool(api, ["192.0.2.0/24"], default_prefixlen=26)
    subnet = from_pool(api, api.network()["id"], pool["id"])
    assert refused(api, "DELETE", f"{POOLS}/{pool['id']}") == (
        400,
        "SubnetPoolDeleteError",
        "Unable to delete subnet pool: Subnet pool has existing allocations.",
    )
    assert api.show("subnetpool", pool["id"]) == pool
    api.delete("subnet", subnet["id"])
    api.delete("subnetpool", pool["id"])
    assert api.list("subnetpool") == []


def test_subnets_of_one_family_on_a_network_share_a_pool(api):
    pool_a = make_pool(api, ["192.0.2.0/24"], name="a", default_prefixlen=26)
    pool_b = make_pool(api, ["198.51.100.0/24"], name="b", default_prefixlen=26)
    pool_6 = make_pool(api, ["2001:db8::/48"], name="six")
    net = api.network()
    from_pool(api, net["id"], pool_a["id"])
    from_pool(api, net["id"], pool_a["id"])  # the same pool again: fine
    from_pool(api, net["id"], pool_6["id"])  # another family: fine
    affinity = (
        400,
        "NetworkSubnetPoolAffinityError",
        "Subnets hosted on the same network must be allocated from the same subnet pool.",
    )
    assert subnet_refused(api, network_id=net["id"], subnetpool_id=pool_b["id"]) == affinity
    assert subnet_refused(api, network_id=net["id"], cidr="203.0.113.0/24") == affinity
    plain = api.network("plain")
    api.subnet(plain["id"], "203.0.113.0/24")
    assert subnet_refused(api, network_id=plain["id"], subnetpool_id=pool_b["id"]) == affinity
    assert len(api.list("subnet")) == 4


# -- prefix operations -------------------------------------------------------------------------
def test_add_and_remove_prefixes(api):
    pool = make_pool(api, ["192.0.2.0/25"], default_prefixlen=26)
    path = f"{POOLS}/{pool['id']}"
    added = api.call("PUT", f"{path}/add_prefixes", {"prefixes": ["192.0.2.128/25"]}, expect=200)
    assert added == {"prefixes": ["192.0.2.0/24"]}
    subnet = from_pool(api, api.network()["id"], pool["id"])
    assert subnet["cidr"] == "192.0.2.0/26"
    assert refused(api, "PUT", f"{path}/remove_prefixes", {"prefixes": ["192.0.2.0/25"]}) == (
        400,
        "IllegalSubnetPoolPrefixUpdate",
        "Illegal update to prefixes: One or more the prefixes to be removed is in use by a "
        "subnet.",
    )
    unrelated = api.call(
        "PUT", f"{path}/remove_prefixes", {"prefixes": ["203.0.113.0/24"]}, expect=200
    )
    assert unrelated == {"prefixes": ["192.0.2.0/24"]}
    removed = api.call(
        "PUT", f"{path}/remove_prefixes", {"prefixes": ["192.0.2.128/25"]}, expect=200
    )
    assert removed == {"prefixes": ["192.0.2.0/25"]}
    assert api.show("subnetpool", pool["id"])["prefixes"] == ["192.0.2.0/25"]
    for bad in ({"prefixes": ["192.0.2.1/25"]}, {"prefixes": "192.0.2.0/24"}, {}, []):
        assert refused(api, "PUT", f"{path}/add_prefixes", bad)[:2] == (400, "HTTPBadRequest")
    mixed = refused(api, "PUT", f"{path}/add_prefixes", {"prefixes": ["2001:db8::/64"]})
    assert mixed[:2] == (400, "PrefixVersionMismatch")
    assert api.show("subnetpool", pool["id"])["prefixes"] == ["192.0.2.0/25"]
    missing = "6d7e2b0e-1b6f-4b43-9d8a-000000000000"
    got = refused(api, "PUT", f"{POOLS}/{missing}/add_prefixes", {"prefixes": ["192.0.2.0/24"]})
    assert got[:2] == (404, "SubnetPoolNotFound")


# -- address scopes ----------------------------------------------------------------------------
def test_address_scope_crud(api):
    scope = make_scope(api, 4, name="s4")
    assert scope == {
        "id": scope["id"],
        "name": "s4",
        "ip_version": 4,
        "shared": False,
        "project_id": "fake_project_id",
        "tenant_id": "fake_project_id",
    }
    make_scope(api, 6, name="s6", shared=True)
    listed = api.call("GET", SCOPES, expect=200, ip_version=6)["address_scopes"]
    assert [s["name"] for s in listed] == ["s6"]
    path = f"{SCOPES}/{scope['id']}"
    shown = api.call("GET", path, expect=200)["address_scope"]
    assert shown == scope
    updated = api.call(
        "PUT", path, {"address_scope": {"name": "renamed", "shared": True}}, expect=200
    )["address_scope"]
    assert (updated["name"], updated["shared"]) == ("renamed", True)
    assert refused(api, "PUT", path, {"address_scope": {"shared": False}}) == (
        400,
        "AddressScopeUpdateError",
        f"Unable to update address scope {scope['id']} : Shared address scope can't be "
        "unshared.",
    )
    assert refused(api, "PUT", path, {"address_scope": {"ip_version": 6}})[:2] == (
        400,
        "HTTPBadRequest",
    )
    api.call("DELETE", path, expect=204)
    assert refused(api, "GET", path) == (
        404,
        "AddressScopeNotFound",
        f"Address scope {scope['id']} could not be found.",
    )


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"name": "x"}, "Required attribute 'ip_version' not specified"),
        ({"ip_version": 5}, "Invalid input for ip_version"),
        ({"ip_version": "four"}, "Invalid input for ip_version"),
        ({"ip_version": 4, "shared": "maybe"}, "Invalid input for shared"),
    ],
)
def test_address_scope_validation(api, body, text):
    status, error_type, message = refused(api, "POST", SCOPES, {"address_scope": body})
    assert (status, error_type) == (400, "HTTPBadRequest")
    assert text in message
    assert api.call("GET", SCOPES, expect=200) == {"address_scopes": []}


def test_pools_in_an_address_scope(api):
    scope = make_scope(api, 4)
    scope6 = make_scope(api, 6, name="six")
    pool = make_pool(api, ["192.0.2.0/24"], address_scope_id=scope["id"], default_prefixlen=26)
    assert pool["address_scope_id"] == scope["id"]
    got = refused(api, "POST", POOLS, {"subnetpool": {
        "name": "v6", "prefixes": ["2001:db8::/48"], "address_scope_id": scope["id"]}})
    assert got[:2] == (400, "IllegalSubnetPoolIpVersionAssociationToAddressScope")
    assert f"cannot associate with address scope {scope['id']} because subnetpool " \
           "ip_version is not 4." in got[2]
    conflict = (
        409,
        "AddressScopePrefixConflict",
        "Failed to associate address scope: subnetpools within an address scope must have "
        "unique prefixes.",
    )
    overlapping = {"name": "o", "prefixes": ["192.0.2.128/25"], "address_scope_id": scope["id"]}
    assert refused(api, "POST", POOLS, {"subnetpool": overlapping}) == conflict
    missing = "6d7e2b0e-1b6f-4b43-9d8a-000000000000"
    unknown = {"name": "u", "prefixes": ["203.0.113.0/24"], "address_scope_id": missing}
    assert refused(api, "POST", POOLS, {"subnetpool": unknown})[:2] == (
        404,
        "AddressScopeNotFound",
    )
    assert [p["id"] for p in api.list("subnetpool")] == [pool["id"]]
    other = make_pool(api, ["198.51.100.0/24"], name="other", address_scope_id=scope["id"])
    # growing into the other pool's space, by update or add_prefixes, conflicts too
    grow = {"subnetpool": {"prefixes": ["198.51.100.0/24", "192.0.2.0/24"]}}
    assert refused(api, "PUT", f"{POOLS}/{other['id']}", grow) == conflict
    path = f"{POOLS}/{other['id']}/add_prefixes"
    assert refused(api, "PUT", path, {"prefixes": ["192.0.2.0/28"]}) == conflict
    assert api.show("subnetpool", other["id"])["prefixes"] == ["198.51.100.0/24"]
    # a scope in use is not deleted; a pool leaves its scope by update
    assert refused(api, "DELETE", f"{SCOPES}/{scope['id']}") == (
        409,
        "AddressScopeInUse",
        f"Unable to complete operation on address scope {scope['id']}. There are one or more "
        "subnet pools in use on the address scope.",
    )
    for pool_id in (pool["id"], other["id"]):
        assert api.update("subnetpool", pool_id, address_scope_id=None)["address_scope_id"] is None
    api.call("DELETE", f"{SCOPES}/{scope['id']}", expect=204)
    api.call("DELETE", f"{SCOPES}/{scope6['id']}", expect=204)


def test_networks_show_the_address_scopes_of_their_subnets(api):
    scope4, scope6 = make_scope(api, 4), make_scope(api, 6, name="six")
    pool4 = make_pool(api, ["192.0.2.0/24"], default_prefixlen=26, address_scope_id=scope4["id"])
    pool6 = make_pool(api, ["2001:db8::/48"], name="six", address_scope_id=scope6["id"])
    net = api.network()
    assert (api.show("network", net["id"])["ipv4_address_scope"], net["ipv6_address_scope"]) == (
        None,
        None,
    )
    from_pool(api, net["id"], pool4["id"])
    shown = api.show("network", net["id"])
    assert (shown["ipv4_address_scope"], shown["ipv6_address_scope"]) == (scope4["id"], None)
    from_pool(api, net["id"], pool6["id"])
    listed = api.list("network", ipv6_address_scope=scope6["id"])
    assert [(n["id"], n["ipv4_address_scope"]) for n in listed] == [(net["id"], scope4["id"])]
    assert api.list("network", ipv4_address_scope=scope6["id"]) == []


def test_pools_of_one_scope_may_share_a_network(api):
    scope = make_scope(api, 4)
    pool_a = make_pool(api, ["192.0.2.0/24"], name="a", default_prefixlen=26,
                       address_scope_id=scope["id"])
    pool_b = make_pool(api, ["198.51.100.0/24"], name="b", default_prefixlen=26,
                       address_scope_id=scope["id"])
    pool_c = make_pool(api, ["203.0.113.0/24"], name="c", default_prefixlen=26)
    net = api.network()
    from_pool(api, net["id"], pool_a["id"])
    assert from_pool(api, net["id"], pool_b["id"])["cidr"] == "198.51.100.0/26"
    assert subnet_refused(api, network_id=net["id"], subnetpool_id=pool_c["id"]) == (
        400,
        "NetworkAddressScopeAffinityError",
        "Subnets of the same address family hosted on the same network must all participate "
        "in the same address scope.",
    )
    # moving pool b out of the scope would split the network between scopes
    got = refused(api, "PUT", f"{POOLS}/{pool_b['id']}", {"subnetpool": {
        "address_scope_id": make_scope(api, 4, name="other")["id"]}})
    assert got[:2] == (400, "NetworkAddressScopeAffinityError")
    assert api.show("subnetpool", pool_b["id"])["address_scope_id"] == scope["id"]


def test_extensions_are_advertised(api):
    aliases = {e["alias"] for e in api.call("GET", "/v2.0/extensions", expect=200)["extensions"]}
    assert aliases >= {
        "subnet_allocation",
        "address-scope",
        "default-subnetpools",
        "subnetpool-prefix-ops",
    }
