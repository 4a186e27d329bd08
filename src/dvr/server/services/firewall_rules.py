"""What a security group rule (or a default-rule template) means, with Neutron's checks:
protocol names and numbers, port ranges and ICMP type/code, remote prefix vs ethertype,
one remote at most; the key two rules are duplicates under; the rule as the agent takes
it; and which ports the firewall filters.  Pure: no database."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from dvr.model.hostview import SecurityGroupRuleView
from dvr.server.errors import BadRequestError

# neutron_lib.constants.IP_PROTOCOL_MAP (+ the legacy "icmpv6" alias)
PROTOCOL_NUMBERS: dict[str, int] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
    "igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113,
    "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
ANY_PROTOCOL = "any"  # the same as no protocol
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})  # TCP, UDP, DCCP, SCTP, UDP-Lite
ICMP, ICMPV6 = 1, 58
IPV6_ONLY_PROTOCOLS = frozenset({41, 43, 44, 58, 59, 60})
ETHERTYPES = ("IPv4", "IPv6")
DIRECTIONS = ("ingress", "egress")
MATCH_KEYS = (
    "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
    "remote_ip_prefix", "remote_group_id", "remote_address_group_id",
)


def protocol_number(protocol: str | None) -> int | None:
    """The IP protocol number of a stored protocol (a name or a decimal number)."""
    if protocol is None:
        return None
    return PROTOCOL_NUMBERS[protocol] if protocol in PROTOCOL_NUMBERS else int(protocol)


def _invalid(type_name: str, message: str) -> BadRequestError:
    return BadRequestError(message, type_name=type_name)


def check_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """Neutron's checks on a rule's match (keys of MATCH_KEYS, absent = None); returns it
    with every key present (ethertype defaults to IPv4)."""
    rule = {key: rule.get(key) for key in MATCH_KEYS}
    rule["ethertype"] = rule["ethertype"] or "IPv4"
    remotes = [k for k in ("remote_ip_prefix", "remote_group_id", "remote_address_group_id")
               if rule[k] is not None]
    if len(remotes) > 1:
        raise _invalid(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix, remote_group_id and remote_address_group_id "
            "may be provided.",
        )
    prefix = rule["remote_ip_prefix"]
    if prefix is not None:
        version = ipaddress.ip_network(prefix).version
        if f"IPv{version}" != rule["ethertype"]:
            raise _invalid(
                "SecurityGroupRuleParameterConflict",
                f"Conflicting value ethertype {rule['ethertype']} for CIDR {prefix}",
            )
    number = protocol_number(rule["protocol"])
    if number in IPV6_ONLY_PROTOCOLS and rule["ethertype"] == "IPv4":
        raise _invalid(
            "SecurityGroupEthertypeConflictWithProtocol",
            f"Invalid ethertype IPv4 for protocol {rule['protocol']}.",
        )
    _check_ports(rule, number)
    return rule


def _check_ports(rule: dict[str, Any], number: int | None) -> None:
    low, high = rule["port_range_min"], rule["port_range_max"]
    if low is None and high is None:
        return
    if number is None:
        raise _invalid(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        )
    if number in PORT_PROTOCOLS:
        if low == 0 or high == 0:
            raise _invalid("SecurityGroupInvalidPortValue", "Invalid value for port 0.")
        if low is None or high is None or low > high:
            raise _invalid(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )
        return
    if number in (ICMP, ICMPV6):
        for value, field, attr in ((low, "type", "port_range_min"),
                                   (high, "code", "port_range_max")):
            if value is not None and not 0 <= value <= 255:
                raise _invalid(
                    "SecurityGroupInvalidIcmpValue",
                    f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.",
                )
        if low is None:
            raise _invalid(
                "SecurityGroupMissingIcmpType",
                f"ICMP code (port-range-max) {high} is provided but ICMP type "
                "(port-range-min) is missing.",
            )
        return
    raise _invalid(
        "SecurityGroupInvalidProtocolForPort",
        f"Invalid protocol {rule['protocol']} for port range, only supported for TCP, UDP, "
        "UDPLITE, SCTP and DCCP.",
    )


def _any_prefix(prefix: str | None) -> str | None:
    """0.0.0.0/0 and ::/0 mean what no prefix means."""
    return None if prefix in ("0.0.0.0/0", "::/0") else prefix


def rule_key(rule: Mapping[str, Any]) -> tuple:
    """Two rules of a group with the same key are duplicates (SecurityGroupRuleExists)."""
    get = rule.get
    number = protocol_number(get("protocol"))
    if number == ICMP and get("ethertype") == "IPv6":
        number = ICMPV6
    return (
        get("direction"), get("ethertype"), number, get("port_range_min"),
        get("port_range_max"), _any_prefix(get("remote_ip_prefix")), get("remote_group_id"),
        get("remote_address_group_id"),
    )


def rule_view(row: Any) -> SecurityGroupRuleView:
    """A stored rule as the agent's firewall takes it: the protocol as a number (ICMP over
    IPv6 is ICMPv6), ports only for port protocols, ICMP type/code apart; a remote prefix of
    everything is no remote prefix."""
    number = protocol_number(row.protocol)
    if number == ICMP and row.ethertype == "IPv6":
        number = ICMPV6
    ports = number in PORT_PROTOCOLS
    icmp = number in (ICMP, ICMPV6)
    return SecurityGroupRuleView(
        id=row.id,
        direction=row.direction,
        ethertype=row.ethertype,
        protocol=number,
        port_range_min=row.port_range_min if ports else None,
        port_range_max=row.port_range_max if ports else None,
        icmp_type=row.port_range_min if icmp else None,
        icmp_code=row.port_range_max if icmp else None,
        remote_ip_prefix=_any_prefix(row.remote_ip_prefix),
        remote_group_id=row.remote_group_id,
        remote_address_group_id=row.remote_address_group_id,
    )


def is_network_owned(device_owner: str) -> bool:
    """Neutron's "trusted" ports (``network:*``: routers', DHCP): never filtered, and
    given no default group."""
    return device_owner.startswith("network:")


def is_filtered(port_security_enabled: bool, device_owner: str) -> bool:
    """Whether the firewall filters (and anti-spoofs) the port."""
    return port_security_enabled and not is_network_owned(device_owner)
