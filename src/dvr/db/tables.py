"""SQLAlchemy Core tables: the single source of truth of the dvr server.

Conventions: ids are uuid strings; ``project_id`` is "" for service-owned ports; timestamps
are naive UTC datetimes; JSON columns hold small lists/dicts that are never queried in SQL.
Uniqueness that the services rely on is enforced here (ip per subnet, MAC per network,
host MAC, one router per subnet, one segment per (type, physnet, id)).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

ID = String(36)
NAME = String(255)
HOST = String(255)

RevisionId = BigInteger().with_variant(Integer(), "sqlite")


def _standard_columns() -> list[Column]:
    return [
        Column("description", String(255), nullable=False, default=""),
        Column("tags", JSON, nullable=False, default=list),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("revision_number", Integer, nullable=False, default=1),
    ]


server_state = Table(
    "server_state",
    metadata,
    Column("id", Integer, primary_key=True),
    # last revision handed out to a write transaction that recorded changes
    Column("revision", RevisionId, nullable=False),
    # changes with revision <= pruned_revision may have been deleted
    Column("pruned_revision", RevisionId, nullable=False),
)

networks = Table(
    "networks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("name", NAME, nullable=False, default=""),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False, default="ACTIVE"),
    Column("shared", Boolean, nullable=False, default=False),
    Column("mtu", Integer, nullable=False),
    Column("external", Boolean, nullable=False, default=False),
    Column("network_type", String(16), nullable=False),
    Column("physical_network", String(64), nullable=True),
    Column("segmentation_id", Integer, nullable=True),
    Column("port_security_enabled", Boolean, nullable=False, default=True),
    Column("availability_zone_hints", JSON, nullable=False, default=list),
    *_standard_columns(),
)

segment_allocations = Table(
    "segment_allocations",
    metadata,
    Column("network_type", String(16), primary_key=True),
    Column("physical_network", String(64), primary_key=True),  # "" for tunnels
    Column("segmentation_id", Integer, primary_key=True),  # 0 for flat
    Column(
        "network_id",
        ID,
        ForeignKey("networks.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
)

address_scopes = Table(
    "address_scopes",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("name", NAME, nullable=False, default=""),
    Column("ip_version", Integer, nullable=False),
    Column("shared", Boolean, nullable=False, default=False),
)

# prefixes: the pool's CIDRs, collapsed and sorted (a small list, never queried in SQL)
subnetpools = Table(
    "subnetpools",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("name", NAME, nullable=False),
    Column("ip_version", Integer, nullable=False),
    Column("prefixes", JSON, nullable=False, default=list),
    Column("default_prefixlen", Integer, nullable=False),
    Column("min_prefixlen", Integer, nullable=False),
    Column("max_prefixlen", Integer, nullable=False),
    Column("default_quota", Integer, nullable=True),
    Column("shared", Boolean, nullable=False, default=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("address_scope_id", ID, ForeignKey("address_scopes.id"), nullable=True, index=True),
    *_standard_columns(),
)

subnets = Table(
    "subnets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("network_id", ID, ForeignKey("networks.id"), nullable=False, index=True),
    Column("name", NAME, nullable=False, default=""),
    Column("ip_version", Integer, nullable=False),
    Column("cidr", String(64), nullable=False),
    Column("gateway_ip", String(64), nullable=True),
    Column("enable_dhcp", Boolean, nullable=False, default=True),
    Column("ipv6_ra_mode", String(32), nullable=True),
    Column("ipv6_address_mode", String(32), nullable=True),
    Column("allocation_pools", JSON, nullable=False, default=list),
    Column("dns_nameservers", JSON, nullable=False, default=list),
    Column("host_routes", JSON, nullable=False, default=list),
    Column("service_types", JSON, nullable=False, default=list),
    Column("subnetpool_id", ID, ForeignKey("subnetpools.id"), nullable=True, index=True),
    *_standard_columns(),
)

ports = Table(
    "ports",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("network_id", ID, ForeignKey("networks.id"), nullable=False),
    Column("name", NAME, nullable=False, default=""),
    Column("mac_address", String(17), nullable=False),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False, default="DOWN"),
    Column("device_id", NAME, nullable=False, default="", index=True),
    Column("device_owner", NAME, nullable=False, default=""),
    Column("host", HOST, nullable=False, default="", index=True),
    Column("vif_type", String(32), nullable=False, default="unbound"),
    Column("vnic_type", String(32), nullable=False, default="normal"),
    Column("binding_profile", JSON, nullable=False, default=dict),
    Column("port_security_enabled", Boolean, nullable=False, default=True),
    # [{"mac_address", "ip_address"}], the MAC filled in with the port's when not given
    Column("allowed_address_pairs", JSON, nullable=False, default=list),
    # is_dvr_serviceable(device_owner), stored so scheduling queries can use it
    Column("dvr_serviceable", Boolean, nullable=False, default=False),
    *_standard_columns(),
    UniqueConstraint("network_id", "mac_address", name="uq_ports_network_id_mac_address"),
    # L2 population and "who touches this network": bound ports per network; mac_address
    # and id make it covering for the HostView's pass over them (no table row reads)
    Index("ix_ports_network_id_host_mac_address_id", "network_id", "host", "mac_address", "id"),
)

# -- security groups (a port's groups: port_security_groups) -----------------------------------
security_groups = Table(
    "security_groups",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False, index=True),
    Column("name", NAME, nullable=False, default=""),
    Column("stateful", Boolean, nullable=False, default=True),
    *_standard_columns(),
)

# the project's "default" group, created on first use (the primary key makes it one)
default_security_groups = Table(
    "default_security_groups",
    metadata,
    Column("project_id", NAME, primary_key=True),
    Column(
        "security_group_id",
        ID,
        ForeignKey("security_groups.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
)

address_groups = Table(
    "address_groups",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("name", NAME, nullable=False, default=""),
    Column("addresses", JSON, nullable=False, default=list),  # normalized CIDRs, sorted
    *_standard_columns(),
)


def _rule_columns() -> list[Column]:
    """What a rule matches; ``protocol`` as the API shows it (a lower-case name or a
    decimal number), None: any."""
    return [
        Column("direction", String(16), nullable=False),
        Column("ethertype", String(16), nullable=False),
        Column("protocol", String(40), nullable=True),
        Column("port_range_min", Integer, nullable=True),
        Column("port_range_max", Integer, nullable=True),
        Column("remote_ip_prefix", String(64), nullable=True),
        Column("remote_address_group_id", ID, nullable=True),
    ]


security_group_rules = Table(
    "security_group_rules",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column(
        "security_group_id",
        ID,
        ForeignKey("security_groups.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    *_rule_columns(),
    # a rule referencing a group goes with it (Neutron's foreign key cascades too)
    Column(
        "remote_group_id",
        ID,
        ForeignKey("security_groups.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Index("ix_security_group_rules_remote_address_group_id", "remote_address_group_id"),
    *_standard_columns(),
)

# Neutron's default-security-group-rules: the rules a new group starts with.
# remote_group_id is null, "PARENT" (the new group itself) or a group id.
default_security_group_rules = Table(
    "default_security_group_rules",
    metadata,
    Column("id", ID, primary_key=True),
    *_rule_columns(),
    Column("remote_group_id", ID, nullable=True),
    Column("description", String(255), nullable=False, default=""),
    Column("used_in_default_sg", Boolean, nullable=False),
    Column("used_in_non_default_sg", Boolean, nullable=False),
)

port_security_groups = Table(
    "port_security_groups",
    metadata,
    Column("port_id", ID, ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "security_group_id",
        ID,
        ForeignKey("security_groups.id"),
        primary_key=True,
        index=True,
    ),
)

ip_allocations = Table(
    "ip_allocations",
    metadata,
    Column("subnet_id", ID, ForeignKey("subnets.id"), primary_key=True),
    Column("ip_address", String(64), primary_key=True),
    Column("port_id", ID, ForeignKey("ports.id", ondelete="CASCADE"), nullable=False),
    Column("network_id", ID, nullable=False),
    # a port's addresses; ip_address makes it covering for joins from ports
    Index("ix_ip_allocations_port_id_ip_address", "port_id", "ip_address"),
)

routers = Table(
    "routers",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("name", NAME, nullable=False, default=""),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False, default="ACTIVE"),
    Column("distributed", Boolean, nullable=False, default=False),
    Column("ha", Boolean, nullable=False, default=False),
    Column("flavor_id", ID, nullable=True),
    Column("gw_port_id", ID, ForeignKey("ports.id"), nullable=True),
    Column("gw_network_id", ID, ForeignKey("networks.id"), nullable=True),
    Column("enable_snat", Boolean, nullable=False, default=True),
    Column("routes", JSON, nullable=False, default=list),
    Column("availability_zone_hints", JSON, nullable=False, default=list),
    *_standard_columns(),
)

# One row per (router, subnet) interface.  subnet_id is the primary key: a subnet is
# attached to at most one router (see docs/API.md "One router per subnet").
router_interfaces = Table(
    "router_interfaces",
    metadata,
    Column("subnet_id", ID, ForeignKey("subnets.id"), primary_key=True),
    Column("router_id", ID, ForeignKey("routers.id"), nullable=False, index=True),
    Column("port_id", ID, ForeignKey("ports.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("network_id", ID, nullable=False, index=True),
)

# The centralized part of a router: SNAT host of a distributed router with a gateway,
# or the single host of a centralized (legacy) router.
router_l3_bindings = Table(
    "router_l3_bindings",
    metadata,
    Column("router_id", ID, ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True),
    Column("host", HOST, nullable=False, index=True),
)

floatingips = Table(
    "floatingips",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", NAME, nullable=False),
    Column("floating_network_id", ID, ForeignKey("networks.id"), nullable=False),
    Column("floating_ip_address", String(64), nullable=False),
    Column("floating_port_id", ID, ForeignKey("ports.id"), nullable=False),
    Column("fixed_port_id", ID, ForeignKey("ports.id"), nullable=True, index=True),
    Column("fixed_ip_address", String(64), nullable=True),
    Column("router_id", ID, ForeignKey("routers.id"), nullable=True, index=True),
    Column("status", String(16), nullable=False, default="DOWN"),
    *_standard_columns(),
    UniqueConstraint(
        "floating_network_id",
        "fixed_port_id",
        "fixed_ip_address",
        name="uq_floatingips_fixed_ip",
    ),
)

dvr_hosts = Table(
    "dvr_hosts",
    metadata,
    Column("host", HOST, primary_key=True),
    Column("agent_mode", String(16), nullable=False),
    Column("tunnel_ip", String(64), nullable=True),
    Column("datapath_type", String(16), nullable=False, default="system"),
    Column("applied_revision", RevisionId, nullable=False, default=0),
    Column("registered_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
    # what the agent last reported applying: {"vifs": {port: ovs port}, "local_vlans": {...}}
    Column("agent_report", JSON, nullable=True),
)

# one credential per host: only the sha256 of its token is stored (the token is shown once)
host_credentials = Table(
    "host_credentials",
    metadata,
    Column("host", HOST, primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", ID, primary_key=True),
    Column("host", HOST, nullable=False, index=True),
    Column("agent_type", String(64), nullable=False),
    Column("binary", String(64), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("description", String(255), nullable=False, default=""),
    Column("availability_zone", String(255), nullable=True),
    Column("configurations", JSON, nullable=False, default=dict),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_timestamp", DateTime, nullable=False),
    UniqueConstraint("agent_type", "host", name="uq_agents_agent_type_host"),
)

dvr_host_macs = Table(
    "dvr_host_macs",
    metadata,
    Column("host", HOST, primary_key=True),
    Column("mac_address", String(17), nullable=False, unique=True),
)

changes = Table(
    "changes",
    metadata,
    Column("id", RevisionId, primary_key=True, autoincrement=True),
    Column("revision", RevisionId, nullable=False, index=True),
    Column("host", HOST, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("object_id", String(255), nullable=False),
    Index("ix_changes_host_revision", "host", "revision"),
)
