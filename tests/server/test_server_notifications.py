"""Who is told about a change: exactly the hosts concerned.

Table-driven cases for the change kinds of the issue, then an oracle: along a seeded random
history of writes, the hosts that get change rows must be exactly the hosts whose HostView
(revision aside) differs before and after the write.
"""

import os
import random

import pytest
from server_helpers import UPPER_POOL


@pytest.fixture
def cloud(api):
    """blue + orange on distributed router R (gateway to ext, SNAT on net-1); green apart.

    h1: VM on blue, h2: VM on orange, h3: VM on green.  touching(blue) = touching(orange) =
    {h1, h2, net-1}; touching(green) = {h3}.
    """
    hosts = {
        "h1": "192.0.2.1",
        "h2": "192.0.2.2",
        "h3": "192.0.2.3",
        "h4": "192.0.2.4",
        "h5": "192.0.2.5",
    }
    api.register("net-1", "dvr_snat", "192.0.2.100")
    for host, ip in hosts.items():
        api.register(host, "dvr", ip)
    for host in [*hosts, "net-1"]:
        api.host_mac(host)
    c = {}
    # no port security: these cases are about L2 population and routers; a port in the
    # project's default group would also tell every host with a member of it
    # (test_server_security_group_views.py)
    open_ = {"port_security_enabled": False}
    c["blue"] = api.network("blue", **open_)
    c["blue_sub"] = api.subnet(c["blue"]["id"], "198.51.100.0/24", allocation_pools=UPPER_POOL)
    c["orange"] = api.network("orange", **open_)
    c["orange_sub"] = api.subnet(c["orange"]["id"], "10.1.0.0/24")
    c["green"] = api.network("green", **open_)
    c["green_sub"] = api.subnet(c["green"]["id"], "10.2.0.0/24")
    c["ext"] = api.network("ext", **{"router:external": True})
    c["ext_sub"] = api.subnet(c["ext"]["id"], "203.0.113.0/24")
    c["router"] = api.router("R")
    api.add_interface(c["router"]["id"], subnet_id=c["blue_sub"]["id"])
    api.add_interface(c["router"]["id"], subnet_id=c["orange_sub"]["id"])
    api.set_gateway(c["router"]["id"], c["ext"]["id"])
    c["vm1"] = api.port(c["blue"]["id"], host="h1")
    c["vm2"] = api.port(c["orange"]["id"], host="h2")
    c["vm3"] = api.port(c["green"]["id"], host="h3")
    return c


def notified(api, action):
    before = api.revision()
    action()
    return api.notified_since(before)


ROUTER_HOSTS = {"h1", "h2", "net-1"}


def test_port_create_on_a_host_that_already_hosts_the_router(api, cloud):
    assert notified(api, lambda: api.port(cloud["blue"]["id"], host="h1")) == ROUTER_HOSTS


def test_port_create_that_brings_the_router_to_a_new_host(api, cloud):
    # h4 starts hosting R, so it joins blue AND orange: everyone on both hears about it
    got = notified(api, lambda: api.port(cloud["blue"]["id"], host="h4"))
    assert got == ROUTER_HOSTS | {"h4"}


def test_port_delete(api, cloud):
    assert notified(api, lambda: api.delete("port", cloud["vm1"]["id"])) == ROUTER_HOSTS


def test_port_mac_change(api, cloud):
    got = notified(
        api, lambda: api.update("port", cloud["vm1"]["id"], mac_address="fa:16:3e:01:02:03")
    )
    assert got == ROUTER_HOSTS


def test_port_ip_change(api, cloud):
    got = notified(
        api,
        lambda: api.update("port", cloud["vm1"]["id"], fixed_ips=[{"ip_address": "198.51.100.20"}]),
    )
    assert got == ROUTER_HOSTS


def test_port_host_change(api, cloud):
    got = notified(api, lambda: api.update("port", cloud["vm3"]["id"], **{"binding:host_id": "h5"}))
    assert got == {"h3", "h5"}


def test_port_on_a_network_without_router(api, cloud):
    assert notified(api, lambda: api.port(cloud["green"]["id"], host="h3")) == {"h3"}
    assert notified(api, lambda: api.port(cloud["green"]["id"], host="h4")) == {"h3", "h4"}
    assert notified(api, lambda: api.port(cloud["green"]["id"])) == set()  # unbound, no router


def test_unbound_port_on_a_routed_subnet_reaches_the_router_hosts(api, cloud):
    # static ARP of R changes on every host of R; nobody's L2 view changes
    assert notified(api, lambda: api.port(cloud["blue"]["id"])) == ROUTER_HOSTS


def test_port_name_change_tells_nobody(api, cloud):
    assert notified(api, lambda: api.update("port", cloud["vm1"]["id"], name="x")) == set()


def test_floating_ip_of_a_centralized_router_tells_its_central_host(api, cloud):
    """The central host serves every floating IP of a centralized router, with its port's
    host: mapping one, or moving its port, changes that host's view only."""
    router = api.create("router", name="legacy", distributed=False)
    api.add_interface(router["id"], subnet_id=cloud["green_sub"]["id"])
    api.set_gateway(router["id"], cloud["ext"]["id"])
    vm = api.port(cloud["green"]["id"], host="h3")
    fip = api.fip(cloud["ext"]["id"], port_id=vm["id"])
    [seen] = api.view("net-1").router(router["id"]).floating_ips
    assert (seen.id, seen.host) == (fip["id"], "h3")
    moved = notified(api, lambda: api.update("port", vm["id"], **{"binding:host_id": "h4"}))
    assert "net-1" in moved
    assert api.view("net-1").router(router["id"]).floating_ips[0].host == "h4"
    unmapped = notified(api, lambda: api.update("floatingip", fip["id"], port_id=None))
    assert unmapped == {"net-1"}
    mapped = notified(api, lambda: api.update("floatingip", fip["id"], port_id=vm["id"]))
    assert mapped == {"net-1"}


def test_interface_add_and_remove(api, cloud):
    r = cloud["router"]["id"]
    got = notified(api, lambda: api.add_interface(r, subnet_id=cloud["green_sub"]["id"]))
    assert got == ROUTER_HOSTS | {"h3"}
    got = notified(api, lambda: api.remove_interface(r, subnet_id=cloud["green_sub"]["id"]))
    assert got == ROUTER_HOSTS | {"h3"}


def test_host_mac_added_tells_every_host(api, cloud):
    api.register("h9", "dvr", "192.0.2.9")
    got = notified(api, lambda: api.host_mac("h9"))
    assert got == {"h1", "h2", "h3", "h4", "h5", "net-1", "h9"}
    assert notified(api, lambda: api.host_mac("h9")) == set()  # returned, not re-allocated


def test_fip_associate_and_disassociate(api, cloud):
    fip = api.fip(cloud["ext"]["id"])
    # h1 gets the FIP; its new fg- port on ext joins h1 to ext, where net-1 (gateway) is
    got = notified(api, lambda: api.update("floatingip", fip["id"], port_id=cloud["vm1"]["id"]))
    assert got == {"h1", "net-1"}
    got = notified(api, lambda: api.update("floatingip", fip["id"], port_id=None))
    assert got == {"h1", "net-1"}


def test_second_fip_on_the_same_host(api, cloud):
    api.fip(cloud["ext"]["id"], port_id=cloud["vm1"]["id"])
    vm = api.port(cloud["blue"]["id"], host="h1")
    fip = api.fip(cloud["ext"]["id"])
    got = notified(api, lambda: api.update("floatingip", fip["id"], port_id=vm["id"]))
    assert got == {"h1"}  # the fg- port exists already; only h1's view changes


def test_gateway_unset_and_set(api, cloud):
    r = cloud["router"]["id"]
    assert notified(api, lambda: api.clear_gateway(r)) == ROUTER_HOSTS
    assert notified(api, lambda: api.set_gateway(r, cloud["ext"]["id"])) == ROUTER_HOSTS


def test_heartbeat_and_status_tell_nobody(api, cloud):
    got = notified(
        api, lambda: api.heartbeat("h1", applied_revision=3, ports_up=[cloud["vm1"]["id"]])
    )
    assert got == set()


def test_network_rename(api, cloud):
    got = notified(api, lambda: api.update("network", cloud["green"]["id"], name="g2"))
    assert got == {"h3"}


def test_change_rows_name_the_subject(api, cloud):
    before = api.revision()
    port = api.port(cloud["green"]["id"], host="h3")
    result = api.watch("h3", before)
    assert result["changes"] == [{"kind": "port", "id": port["id"]}]
    assert result["resync"] is False and result["revision"] == api.revision()


# -- the oracle ---------------------------------------------------------------------------------
HOSTS = ["c1", "c2", "c3", "c4", "snat"]
OWNERS = ["compute:nova", "compute:nova", "network:dhcp", ""]
INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed")


def flat(physnet):
    return {"provider:network_type": "flat", "provider:physical_network": physnet}


class World:
    """Three VXLAN tenant networks and a flat one; the external network VXLAN or flat."""

    def __init__(self, api, rng, external_type="vxlan"):
        self.api, self.rng = api, rng
        self.nets, self.subnets, self.ports, self.fips = [], [], [], []
        self.registered: set[str] = set()
        self.groups, self.rules = [], []
        self.address_group = api.create("address_group", name="ag", addresses=[])["id"]
        provider = flat("public") if external_type == "flat" else {}
        self.ext = api.network("ext", **{"router:external": True}, **provider)
        api.subnet(self.ext["id"], "203.0.113.0/24")
        self.routers = [api.router("R1"), api.router("R2"),
                        api.create("router", name="R3", distributed=False)]
        for i in range(4):
            net = api.network(f"n{i}", **(flat("physnet1") if i == 3 else {}))
            self.nets.append(net)
            self.subnets.append(api.subnet(net["id"], f"10.{i}.0.0/24"))

    def ops(self):
        return [
            self.create_port,
            self.create_port,
            self.delete_port,
            self.move_port,
            self.change_mac,
            self.change_ip,
            self.add_interface,
            self.remove_interface,
            self.set_gateway,
            self.clear_gateway,
            self.associate_fip,
            self.disassociate_fip,
            self.register,
            self.host_mac,
            self.rename_network,
            self.change_owner,
            self.create_group,
            self.add_rule,
            self.delete_rule,
            self.set_groups,
            self.set_groups,
            self.toggle_port_security,
            self.set_address_pairs,
            self.change_address_group,
            self.delete_group,
        ]

    def pick(self, items):
        return self.rng.choice(items) if items else None

    def create_port(self):
        net = self.pick(self.nets)
        host = self.pick([*HOSTS, ""])
        self.ports.append(self.api.port(net["id"], host=host, owner=self.pick(OWNERS))["id"])

    def delete_port(self):
        if self.ports:
            self.api.delete("port", self.ports.pop(self.rng.randrange(len(self.ports))))

    def move_port(self):
        if self.ports:
            self.api.update(
                "port", self.pick(self.ports), **{"binding:host_id": self.pick([*HOSTS, ""])}
            )

    def change_owner(self):
        if self.ports:
            self.api.update("port", self.pick(self.ports), device_owner=self.pick(OWNERS))

    def change_mac(self):
        if self.ports:
            mac = "fa:16:3e:" + ":".join(f"{self.rng.randrange(256):02x}" for _ in range(3))
            self.api.update("port", self.pick(self.ports), mac_address=mac)

    def change_ip(self):
        if self.ports:
            port = self.api.show("port", self.pick(self.ports))
            if port["fixed_ips"] and not self.api.list("floatingip", port_id=port["id"]):
                subnet_id = port["fixed_ips"][0]["subnet_id"]
                prefix = next(s["cidr"] for s in self.subnets if s["id"] == subnet_id)[:-5]
                ip = f"{prefix}.{self.rng.randrange(100, 250)}"
                if not self.api.list("port", fixed_ips=f"ip_address={ip}"):
                    self.api.update("port", port["id"], fixed_ips=[{"ip_address": ip}])

    def interfaces(self, subnet, **filters):
        """The router interface ports (distributed or not) on ``subnet``."""
        found = self.api.list("port", fixed_ips=f"subnet_id={subnet['id']}", **filters)
        return [p for p in found if p["device_owner"] in INTERFACE_OWNERS]

    def add_interface(self):
        subnet, router = self.pick(self.subnets), self.pick(self.routers)
        if not self.interfaces(subnet):
            self.api.add_interface(router["id"], subnet_id=subnet["id"])

    def remove_interface(self):
        router, subnet = self.pick(self.routers), self.pick(self.subnets)
        attached = self.interfaces(subnet, device_id=router["id"])
        fips = [f for f in self.api.list("floatingip", router_id=router["id"])]
        if attached and not fips:
            self.api.remove_interface(router["id"], subnet_id=subnet["id"])

    def set_gateway(self):
        router = self.pick(self.routers)
        if self.api.show("router", router["id"])["external_gateway_info"] is None:
            self.api.set_gateway(router["id"], self.ext["id"])

    def clear_gateway(self):
        router = self.pick(self.routers)
        if not self.api.list("floatingip", router_id=router["id"]):
            self.api.clear_gateway(router["id"])

    def associate_fip(self):
        if not self.ports:
            return
        port = self.api.show("port", self.pick(self.ports))
        if not port["fixed_ips"] or self.api.list("floatingip", port_id=port["id"]):
            return
        subnet_id = port["fixed_ips"][0]["subnet_id"]
        routers = self.interfaces({"id": subnet_id})
        if not routers:
            return
        router = self.api.show("router", routers[0]["device_id"])
        if router["external_gateway_info"] is None:
            return
        self.fips.append(self.api.fip(self.ext["id"], port_id=port["id"])["id"])

    def disassociate_fip(self):
        if self.fips:
            self.api.update(
                "floatingip", self.fips.pop(self.rng.randrange(len(self.fips))), port_id=None
            )

    def register(self):
        host = self.pick(HOSTS)
        mode = "dvr_snat" if host == "snat" else "dvr"
        self.api.register(host, mode, f"192.0.2.{self.rng.randrange(1, 250)}")
        self.registered.add(host)

    def host_mac(self):
        """Only a registered host gets a MAC: for another, a 404 that changes nothing."""
        host = self.pick(HOSTS)
        if host in self.registered:
            self.api.host_mac(host)
        else:
            self.api.call("POST", f"/dvr/v1/hosts/{host}/host-mac", expect=404)

    # -- security groups --------------------------------------------------------------------
    def create_group(self):
        self.groups.append(self.api.create("security_group", name="g")["id"])

    def add_rule(self):
        group = self.pick(self.groups)
        if group is None:
            return
        remote = self.rng.choice(
            [{}, {"remote_group_id": self.pick(self.groups)},
             {"remote_address_group_id": self.address_group}]
        )
        port = self.rng.randrange(1, 65536)
        body = {"security_group_id": group, "direction": "ingress", "protocol": "tcp",
                "port_range_min": port, "port_range_max": port, **remote}
        rule = self.api.call("POST", "/v2.0/security-group-rules",
                             {"security_group_rule": body}, expect=201)
        self.rules.append(rule["security_group_rule"]["id"])

    def delete_rule(self):
        if self.rules:
            rule = self.rules.pop(self.rng.randrange(len(self.rules)))
            self.api.delete("security_group_rule", rule)

    def set_groups(self):
        port = self.pick(self.ports)
        if port is None:
            return
        shown = self.api.show("port", port)
        if shown["port_security_enabled"] and shown["fixed_ips"]:
            chosen = self.rng.sample(self.groups, min(len(self.groups), self.rng.randrange(3)))
            self.api.update("port", port, security_groups=chosen)

    def toggle_port_security(self):
        port = self.pick(self.ports)
        if port is None:
            return
        if self.api.show("port", port)["port_security_enabled"]:
            self.api.update("port", port, port_security_enabled=False, security_groups=[],
                            allowed_address_pairs=[])
        else:
            self.api.update("port", port, port_security_enabled=True)

    def set_address_pairs(self):
        port = self.pick(self.ports)
        if port is not None and self.api.show("port", port)["port_security_enabled"]:
            pairs = [{"ip_address": f"198.18.0.{self.rng.randrange(1, 9)}"}]
            self.api.update("port", port, allowed_address_pairs=pairs[: self.rng.randrange(2)])

    def change_address_group(self):
        path = f"/v2.0/address-groups/{self.address_group}"
        current = self.api.show("address_group", self.address_group)["addresses"]
        cidr = f"198.19.{self.rng.randrange(4)}.0/24"
        action = "remove_addresses" if cidr in current else "add_addresses"
        self.api.call("PUT", f"{path}/{action}", {"addresses": [cidr]}, expect=200)

    def delete_group(self):
        group = self.pick(self.groups)
        if group is not None and not self.api.list("port", security_groups=group):
            self.api.delete("security_group", group)
            self.groups.remove(group)
            alive = {r["id"] for r in self.api.list("security_group_rule")}
            self.rules = [r for r in self.rules if r in alive]

    def rename_network(self):
        net = self.pick(self.nets)
        self.api.update("network", net["id"], name=f"n{self.rng.randrange(1000)}")


SEEDS = [int(x) for x in os.environ.get("DVR_ORACLE_SEEDS", "1,2,3").split(",")]


@pytest.mark.parametrize("external_type", ["vxlan", "flat"])
@pytest.mark.parametrize("seed", SEEDS)
def test_notified_hosts_are_exactly_the_hosts_whose_view_changed(api, seed, external_type):
    rng = random.Random(seed)
    world = World(api, rng, external_type)
    for step in range(45):
        op = rng.choice(world.ops())
        known = api.known_hosts()
        before_views = api.all_views(set(HOSTS))
        before = api.revision()
        op()
        after_views = api.all_views(set(HOSTS))
        known |= api.known_hosts()  # hosts the server knows of (agents, MACs, bound ports)
        changed = {h for h in known if before_views[h] != after_views[h]}
        got = api.notified_since(before)
        assert got == changed, f"step {step} {op.__name__}: notified {got}, changed {changed}"
