"""The commands a driver understands: frozen values, the vocabulary of a reconcile plan.

As in ovsdbapp, a command is a value with idempotent semantics: ``Ensure*``/``Replace*``/
``Set*`` converge whatever is there (``may_exist``), ``Delete*`` of something already gone
succeeds (``if_exists``).  Pure code (the reconciler) builds lists of them; a driver only
carries them out.

``namespace=None`` on a Linux command means the host's own namespace (where the bridge ends
of veth pairs live).
"""

from __future__ import annotations

from dataclasses import dataclass

from dvr.agent.desired.state import Address, Flow, NatRule, Neighbor, Route, Rule

# --- OVSDB (a batch of these is one OVSDB transaction) --------------------------------


@dataclass(frozen=True)
class EnsureBridge:
    name: str
    datapath_type: str
    fail_mode: str
    external_ids: tuple[tuple[str, str], ...] = ()  # merged into the bridge's


@dataclass(frozen=True)
class EnsurePort:
    """A port with one interface on ``bridge``: created, moved, or updated in place.

    ``type``, ``options`` and ``tag`` are set exactly; ``external_ids`` (the interface's)
    are merged in.  ``recreate`` deletes an existing port of that name first (a new row makes
    the switch reopen the device, e.g. after its veth was recreated).
    """

    bridge: str
    name: str
    type: str = ""
    options: tuple[tuple[str, str], ...] = ()
    tag: int | None = None
    external_ids: tuple[tuple[str, str], ...] = ()
    recreate: bool = False


@dataclass(frozen=True)
class SetPortTag:
    """Only the access VLAN of a port somebody else plugged (a VIF)."""

    name: str
    tag: int | None


@dataclass(frozen=True)
class DeletePort:
    bridge: str
    name: str


@dataclass(frozen=True)
class DeleteBridge:
    """A bridge of the agent's own that the host's layout no longer uses (br-tun once its
    tables are folded into br-int), with whatever ports are still on it."""

    name: str


OvsdbOp = EnsureBridge | EnsurePort | SetPortTag | DeletePort | DeleteBridge

# --- OpenFlow ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class FlowRef:
    """The flows of one table that carry one cookie.

    Deletes name the table: a cookie-only delete covers every table, including the
    switch's hidden one (254, cookie 0), and OVS refuses it (``OFPBRC_EPERM``)."""

    table: int
    cookie: int


@dataclass(frozen=True)
class FlowBundle:
    """One atomic OpenFlow bundle on ``bridge``: delete the flows ``delete`` names, then
    add ``add``."""

    bridge: str
    add: tuple[Flow, ...] = ()
    delete: tuple[FlowRef, ...] = ()


# --- Linux (netlink, sysctl, ethtool) ---------------------------------------------------


@dataclass(frozen=True)
class CreateNamespace:
    """A named network namespace with ``lo`` up."""

    name: str


@dataclass(frozen=True)
class DeleteNamespace:
    name: str


@dataclass(frozen=True)
class CreateVeth:
    """A veth pair: ``name`` inside ``namespace`` (MAC, MTU, up), ``peer`` in the host's own
    namespace (MTU, up).  TX checksum offload is switched off on ``name``."""

    namespace: str
    name: str
    peer: str
    mac_address: str
    mtu: int


@dataclass(frozen=True)
class CreateVethPair:
    """A veth pair between two namespaces: ``name`` in ``namespace``, ``peer`` in
    ``peer_namespace``, both up with ``mtu`` (the kernel picks the MACs)."""

    namespace: str
    name: str
    peer_namespace: str
    peer: str
    mtu: int


@dataclass(frozen=True)
class SetLink:
    namespace: str | None
    name: str
    mac_address: str | None = None
    mtu: int | None = None
    up: bool = True


@dataclass(frozen=True)
class DeleteLink:
    namespace: str | None
    name: str


@dataclass(frozen=True)
class SetTxChecksumming:
    namespace: str | None
    device: str
    enabled: bool


@dataclass(frozen=True)
class SetSysctl:
    namespace: str
    key: str  # "net.ipv4.ip_forward"
    value: str


@dataclass(frozen=True)
class AddAddress:
    namespace: str
    address: Address


@dataclass(frozen=True)
class DeleteAddress:
    namespace: str
    address: Address


@dataclass(frozen=True)
class ReplaceRoute:
    """Install ``route``, replacing whatever route has its (table, destination)."""

    namespace: str
    route: Route


@dataclass(frozen=True)
class DeleteRoute:
    namespace: str
    route: Route


@dataclass(frozen=True)
class AddRule:
    namespace: str
    rule: Rule


@dataclass(frozen=True)
class DeleteRule:
    namespace: str
    rule: Rule


@dataclass(frozen=True)
class ReplaceNeighbor:
    """A PERMANENT neighbor entry (replacing any entry for that device and IP)."""

    namespace: str
    neighbor: Neighbor


@dataclass(frozen=True)
class DeleteNeighbor:
    namespace: str
    device: str
    ip_address: str


@dataclass(frozen=True)
class AnnounceAddress:
    """A gratuitous ARP for ``ip`` out of ``device`` (with the device's MAC)."""

    namespace: str
    device: str
    ip_address: str


# --- nftables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplaceNatTable:
    """Replace the namespace's ``ip dvr`` table with exactly ``rules`` (one atomic nft
    transaction; no rules still leaves the empty table)."""

    namespace: str
    rules: tuple[NatRule, ...]


NatOp = ReplaceNatTable

LinuxOp = (
    CreateNamespace
    | DeleteNamespace
    | CreateVeth
    | CreateVethPair
    | SetLink
    | DeleteLink
    | SetTxChecksumming
    | SetSysctl
    | AddAddress
    | DeleteAddress
    | ReplaceRoute
    | DeleteRoute
    | AddRule
    | DeleteRule
    | ReplaceNeighbor
    | DeleteNeighbor
    | AnnounceAddress
)

OVSDB_OPS = (EnsureBridge, EnsurePort, SetPortTag, DeletePort, DeleteBridge)
LINUX_OPS = (
    CreateNamespace,
    DeleteNamespace,
    CreateVeth,
    CreateVethPair,
    SetLink,
    DeleteLink,
    SetTxChecksumming,
    SetSysctl,
    AddAddress,
    DeleteAddress,
    ReplaceRoute,
    DeleteRoute,
    AddRule,
    DeleteRule,
    ReplaceNeighbor,
    DeleteNeighbor,
    AnnounceAddress,
)

Op = OvsdbOp | FlowBundle | LinuxOp | NatOp
