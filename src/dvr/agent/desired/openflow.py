"""The OpenFlow vocabulary of desired flows: typed matches and actions (pure).

A flow's match is a ``Match`` (typed fields, ``None`` = wildcard) and its actions a tuple of
action values (``Output``, ``Resubmit``, ``ModDlSrc``, ...).  Ports are referred to by
*name*: the OVS driver binds names to OpenFlow port numbers when it installs a flow.

This module also holds the one rendering of these values to ``ovs-ofctl`` text
(``render_match``, ``render_actions``, ``render_flow``), used by the OVS driver to install
flows, by the cookie (a hash of the rendered content) and by ``dvr flows`` for people.
Port names are quoted the way ``ovs-ofctl --names`` prints them (``port_text``), which
``ovs-ofctl`` also reads back.  Nothing here parses flow text: switch dumps are parsed by
``dvr.agent.drivers.openflow`` (on top of ``ovs.flow.ofp``).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, Literal

# --- matches ----------------------------------------------------------------------------------

# ovs-ofctl protocol shorthands (each fixes dl_type and, for some, nw_proto)
Protocol = Literal["ip", "ipv6", "arp", "icmp", "icmp6", "tcp", "udp", "tcp6", "udp6", "sctp",
                   "sctp6"]

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132

# protocol -> (dl_type, nw_proto or None)
PROTOCOLS: dict[str, tuple[int, int | None]] = {
    "ip": (ETH_TYPE_IP, None),
    "ipv6": (ETH_TYPE_IPV6, None),
    "arp": (ETH_TYPE_ARP, None),
    "icmp": (ETH_TYPE_IP, IPPROTO_ICMP),
    "icmp6": (ETH_TYPE_IPV6, IPPROTO_ICMPV6),
    "tcp": (ETH_TYPE_IP, IPPROTO_TCP),
    "udp": (ETH_TYPE_IP, IPPROTO_UDP),
    "tcp6": (ETH_TYPE_IPV6, IPPROTO_TCP),
    "udp6": (ETH_TYPE_IPV6, IPPROTO_UDP),
    "sctp": (ETH_TYPE_IP, IPPROTO_SCTP),
    "sctp6": (ETH_TYPE_IPV6, IPPROTO_SCTP),
}


class _Field:
    """One field of a ``Match``, read from the values the match stores."""

    __slots__ = ("default", "bit", "below")

    def __init__(self, default: Any = None) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        index = list(owner.__annotations__).index(name)
        self.bit, self.below = 1 << index, (1 << index) - 1

    def __get__(self, match: Match | None, owner: type | None = None) -> Any:
        if match is None:
            return self
        shape = match[0]
        if shape & self.bit:
            return match[(shape & self.below).bit_count() + 1]
        return self.default


class Match(tuple):
    """The fields a flow matches on; ``None`` is a wildcard.  ``Match()`` matches all.

    MACs are ``xx:xx:xx:xx:xx:xx`` (lower case); IP fields are an address or a prefix
    (``192.0.2.0/24``); ``dl_vlan`` 0xffff means untagged; ``*_mask`` fields make the field
    before them a masked match.

    Built and read like a NamedTuple of the fields below (keywords or all of them in
    order, ``match.dl_vlan``, iteration, ``_fields``, ``_replace``), but it stores only the
    fields it sets: ``(shape, value, ...)``, ``shape`` having bit i set for the i-th field,
    the values in field order.  Equal matches store equal tuples (a field given its default
    is left out), so equality and hashing are the tuple's, in C.  Desired state builds
    thousands of Matches that live as long as it does and set one to four of 34 fields:
    the cyclic garbage collector visits every item of every tuple it tracks, and 34 of them
    per Match cost more than the rest of a flow.
    """

    __slots__ = ()

    in_port: str | None = _Field()  # a port name
    proto: Protocol | None = _Field()
    dl_vlan: int | None = _Field()
    vlan_tci: int | None = _Field()
    vlan_tci_mask: int | None = _Field()
    dl_src: str | None = _Field()
    dl_src_mask: str | None = _Field()
    dl_dst: str | None = _Field()
    dl_dst_mask: str | None = _Field()
    tun_id: int | None = _Field()
    tun_id_mask: int | None = _Field()
    nw_src: str | None = _Field()
    nw_dst: str | None = _Field()
    arp_op: int | None = _Field()
    arp_spa: str | None = _Field()
    arp_tpa: str | None = _Field()
    icmp_type: int | None = _Field()
    nd_target: str | None = _Field()
    # the firewall's fields (dvr.agent.desired.firewall); rendered after the ones above, so
    # flows that do not use them keep their text and cookies
    reg6: int | None = _Field()  # the firewall's zone register (the network's local VLAN)
    ct_state: str | None = _Field()  # conntrack flags, e.g. "+trk+new-est"
    ct_label: int | None = _Field()
    ct_label_mask: int | None = _Field()
    conj_id: int | None = _Field()
    nw_proto: int | None = _Field()  # with proto "ip"/"ipv6": any other IP protocol
    arp_sha: str | None = _Field()
    ipv6_src: str | None = _Field()
    ipv6_dst: str | None = _Field()
    tp_src: int | None = _Field()
    tp_src_mask: int | None = _Field()
    tp_dst: int | None = _Field()
    tp_dst_mask: int | None = _Field()
    icmp_code: int | None = _Field()
    # the fast path's fields (dvr.agent.desired.fast_path), after the firewall's
    nw_ttl: int | None = _Field()  # IPv4 TTL / IPv6 hop limit (exact value)
    # (register number, value) pairs that must all hold, sorted by register; () = any
    registers: tuple[tuple[int, int], ...] = _Field(())

    def __new__(cls, *values: Any, **fields: Any) -> Match:
        if values:
            if len(values) > len(_FIELDS) or any(
                    name in fields for name in _FIELDS[:len(values)]):
                raise TypeError(f"Match() takes at most {len(_FIELDS)} values, one per field")
            fields = {**dict(zip(_FIELDS, values, strict=False)), **fields}
        shape = 0
        try:
            for name, value in fields.items():
                if value is not None:
                    shape |= _BITS[name]
        except KeyError:
            raise TypeError(f"Match() got an unexpected keyword argument {name!r}") from None
        if shape & _REGISTERS_BIT and not fields["registers"]:
            shape ^= _REGISTERS_BIT  # () is the wildcard of registers
        return tuple.__new__(cls, (shape, *map(fields.__getitem__, _shape_names(shape))))

    def fields(self) -> MatchFields:
        """Every field, as a NamedTuple: for code that reads many fields of one match
        (reading a field of a Match runs a line of Python; of a NamedTuple, none)."""
        return tuple.__new__(MatchFields, _spread(self[0])(self + _WILDCARDS))

    def __iter__(self) -> Iterator[Any]:
        """Every field's value, in field order (as a NamedTuple iterates)."""
        return iter(self.fields())

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.items())
        return f"Match({fields})"

    def items(self) -> Iterator[tuple[str, Any]]:
        """(name, value) of the fields the match sets, in field order."""
        return zip(_shape_names(self[0]), self[1:], strict=True)

    def _replace(self, **fields: Any) -> Match:
        return Match(**{**dict(self.items()), **fields})


_FIELDS: tuple[str, ...] = tuple(Match.__annotations__)
Match._fields = _FIELDS  # type: ignore[attr-defined]
_BY_NAME: dict[str, _Field] = {name: vars(Match)[name] for name in _FIELDS}
_DEFAULTS: tuple[Any, ...] = tuple(field.default for field in _BY_NAME.values())
_BITS: dict[str, int] = {name: field.bit for name, field in _BY_NAME.items()}
_REGISTERS_BIT = _BITS["registers"]
MatchFields = namedtuple("MatchFields", _FIELDS, defaults=_DEFAULTS)  # type: ignore[misc]


@lru_cache(maxsize=1024)
def _shape_indices(shape: int) -> tuple[int, ...]:
    """The field indices a shape sets (few shapes exist: one per kind of flow)."""
    return tuple(i for i in range(len(_FIELDS)) if shape >> i & 1)


@lru_cache(maxsize=1024)
def _shape_names(shape: int) -> tuple[str, ...]:
    return tuple(_FIELDS[i] for i in _shape_indices(shape))


_WILDCARDS = (None, ())  # appended to a Match's values: where its unset fields are read


@lru_cache(maxsize=1024)
def _spread(shape: int) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Every field's value, in field order, from a Match of ``shape`` + ``_WILDCARDS``."""
    stored = {index: at for at, index in enumerate(_shape_indices(shape), start=1)}
    wildcard = {None: len(stored) + 1, (): len(stored) + 2}
    return itemgetter(*(stored.get(index, wildcard[default])
                        for index, default in enumerate(_DEFAULTS)))


MATCH_ALL = Match()


def match_builder(*fields: str) -> Callable[..., Match]:
    """A positional constructor of the Matches that set exactly ``fields`` (one or two;
    every other field a wildcard): ``match_builder("dl_vlan", "dl_dst")(3, mac)`` equals
    ``Match(dl_vlan=3, dl_dst=mac)``.  For the piece functions that build thousands of
    Matches of one shape: binding keywords costs several times as much as building the
    tuple.  A ``None`` value (a wildcard) takes the keyword path."""
    if len(set(fields)) != len(fields) or not 1 <= len(fields) <= 2 \
            or any(_BY_NAME.get(name) is None or _BY_NAME[name].default is not None
                   for name in fields):
        raise ValueError(f"one or two distinct Match fields defaulting to None, not {fields}")
    shape = 0
    for name in fields:
        shape |= _BY_NAME[name].bit
    new = tuple.__new__

    if len(fields) == 1:
        def one(value: Any) -> Match:
            if value is None:
                return MATCH_ALL
            return new(Match, (shape, value))
        return one

    first_name, second_name = fields

    def two(first: Any, second: Any) -> Match:
        if first is None or second is None:
            return Match(**{first_name: first, second_name: second})
        return new(Match, (shape, first, second))

    def two_swapped(first: Any, second: Any) -> Match:
        if first is None or second is None:
            return Match(**{first_name: first, second_name: second})
        return new(Match, (shape, second, first))

    in_order = _FIELDS.index(first_name) < _FIELDS.index(second_name)
    return two if in_order else two_swapped


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    port: str  # a port name


@dataclass(frozen=True, slots=True)
class Resubmit:
    table: int  # resubmit(,table): the same in_port, another table


@dataclass(frozen=True, slots=True)
class ModDlSrc:
    mac: str


@dataclass(frozen=True, slots=True)
class ModDlDst:
    mac: str


@dataclass(frozen=True, slots=True)
class ModVlanVid:
    vlan: int  # pushes a tag on an untagged frame


@dataclass(frozen=True, slots=True)
class StripVlan:
    pass


@dataclass(frozen=True, slots=True)
class SetTunnel:
    tun_id: int


@dataclass(frozen=True, slots=True)
class DecTtl:
    """Decrement the IP TTL; a frame whose TTL is 0 or 1 stops here (OVS hands it to a
    controller, and we run none: it is dropped)."""


@dataclass(frozen=True, slots=True)
class LoadRegister:
    """Load ``value`` into the whole of register ``register`` (``NXM_NX_REG<n>``).
    Registers start at 0 in each bridge and are zeroed when a frame crosses a patch port."""

    register: int
    value: int


@dataclass(frozen=True, slots=True)
class Drop:
    pass


@dataclass(frozen=True, slots=True)
class Normal:
    pass


@dataclass(frozen=True, slots=True)
class OutputInPort:
    """Output to the port the frame came in on (``IN_PORT``)."""


@dataclass(frozen=True, slots=True)
class LoadZone:
    """``load:<zone>->NXM_NX_REG6[]``: the firewall's zone register."""

    zone: int


@dataclass(frozen=True, slots=True)
class Ct:
    """``ct(...)`` in the zone held by reg6: without ``commit`` a conntrack lookup that
    continues in ``table`` (with ``ct_state`` set); with ``commit`` it commits the
    connection and, given ``label_mask``, sets those ``ct_label`` bits to ``label``."""

    table: int | None = None
    commit: bool = False
    label: int = 0
    label_mask: int = 0


@dataclass(frozen=True, slots=True)
class Conjunction:
    """``conjunction(id,clause/n_clauses)`` for each of ``ids`` (sorted): the flow is that
    clause of each of those conjunctive matches (one value for all of them: an address
    flow takes part in the conjunction of every rule of its set)."""

    ids: tuple[int, ...]
    clause: int  # 1-based
    n_clauses: int


Action = (Output | Resubmit | ModDlSrc | ModDlDst | ModVlanVid | StripVlan | SetTunnel
          | DecTtl | LoadRegister | Drop | Normal | OutputInPort | LoadZone | Ct | Conjunction)

STRIP_VLAN = StripVlan()
DEC_TTL = DecTtl()
DROP = Drop()
NORMAL = Normal()
IN_PORT = OutputInPort()
DROP_ONLY: tuple[Action, ...] = (DROP,)  # the actions of a flow that drops what it matches

# --- port references --------------------------------------------------------------------------

# names ovs-ofctl reads as reserved ports rather than as port names
RESERVED_PORT_NAMES = frozenset({"IN_PORT", "TABLE", "NORMAL", "FLOOD", "ALL", "CONTROLLER",
                                 "LOCAL", "NONE", "ANY", "UNSET"})


def port_text(name: str) -> str:
    """A port name as ``ovs-ofctl --names`` prints it (and reads it): bare when it is a
    letter followed by letters and digits, double-quoted otherwise (``"patch-tun"``)."""
    if name[:1].isascii() and name[:1].isalpha() and name.isascii() and name.isalnum() \
            and name.upper() not in RESERVED_PORT_NAMES:
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class UnboundPort(KeyError):
    """A flow names a port that has no OpenFlow number (yet)."""


def port_numbers(numbers: Mapping[str, int]) -> Callable[[str], str]:
    """A port writer for ``render_*`` that writes each port as its number (the driver's
    binding); a name without a number raises ``UnboundPort``."""

    def number(name: str) -> str:
        found = numbers.get(name)
        if found is None:
            raise UnboundPort(name)
        return str(found)

    return number


def flow_ports(match: Match, actions: Iterable[Action]) -> frozenset[str]:
    """The port names a flow refers to (its ``in_port`` and its outputs)."""
    names = {a.port for a in actions if type(a) is Output}
    if match.in_port is not None:
        names.add(match.in_port)
    return frozenset(names)


# --- rendering to ovs-ofctl text ----------------------------------------------------------------


# How match text lists the fields it sets (ovs-ofctl syntax): (field, how, its mask field).
# The firewall's come after the others, so flows that do not use them kept their text.
_TEXT_ORDER: tuple[tuple[str, str, str | None], ...] = (
    ("in_port", "port", None),
    ("registers", "registers", None),
    ("proto", "bare", None),
    ("dl_vlan", "plain", None),
    ("vlan_tci", "hex", "vlan_tci_mask"),
    ("dl_src", "plain", "dl_src_mask"),
    ("dl_dst", "plain", "dl_dst_mask"),
    ("tun_id", "hex", "tun_id_mask"),
    *((name, "plain", None) for name in ("nw_src", "nw_dst", "arp_op", "arp_spa", "arp_tpa",
                                         "icmp_type", "nd_target", "nw_ttl")),
    ("reg6", "hex", None),
    ("ct_state", "plain", None),
    ("ct_label", "hex", "ct_label_mask"),
    *((name, "plain", None) for name in ("conj_id", "nw_proto", "arp_sha", "ipv6_src",
                                         "ipv6_dst")),
    ("tp_src", "hex", "tp_src_mask"),
    ("tp_dst", "hex", "tp_dst_mask"),
    ("icmp_code", "plain", None),
)

MatchPart = Callable[[Match, Callable[[str], str]], str]


def _text_part(name: str, how: str, at: int, mask_at: int | None) -> MatchPart:
    """The text of one field stored at ``at`` (its mask at ``mask_at``) of a Match."""
    if how == "port":
        return lambda match, port: f"in_port={port(match[at])}"
    if how == "registers":
        return lambda match, _: ",".join([f"reg{r}={v:#x}" for r, v in match[at]])
    if how == "bare":
        return lambda match, _: match[at]
    if how == "hex":
        if mask_at is None:
            return lambda match, _: f"{name}={match[at]:#x}"
        return lambda match, _: f"{name}={match[at]:#x}/{match[mask_at]:#x}"
    if mask_at is None:
        return lambda match, _: f"{name}={match[at]}"
    return lambda match, _: f"{name}={match[at]}/{match[mask_at]}"


@lru_cache(maxsize=1024)
def _text_parts(shape: int) -> tuple[MatchPart, ...]:
    """The parts of the text of a Match of ``shape``, in order (a mask alone shows none)."""
    stored = {name: at for at, name in enumerate(_shape_names(shape), start=1)}
    return tuple(_text_part(name, how, stored[name], stored.get(mask) if mask else None)
                 for name, how, mask in _TEXT_ORDER if name in stored)


def render_match(match: Match, port: Callable[[str], str] = port_text) -> str:
    """``ovs-ofctl`` match text, fields in a fixed order; "" for match-all."""
    return ",".join([part(match, port) for part in _text_parts(match[0])])


def _output_text(action: Output, port: Callable[[str], str]) -> str:
    return f"output:{port(action.port)}"


ZONE_FIELD = "NXM_NX_REG6[0..15]"


def _ct_text(action: Ct, _: Callable[[str], str]) -> str:
    parts = ["commit"] if action.commit else []
    parts.append(f"zone={ZONE_FIELD}")
    if action.table is not None:
        parts.append(f"table={action.table}")
    if action.label_mask:
        parts.append(f"exec(set_field:{action.label:#x}/{action.label_mask:#x}->ct_label)")
    return f"ct({','.join(parts)})"


_ACTION_TEXT: dict[type, Callable[[Any, Callable[[str], str]], str]] = {
    Output: _output_text,
    Resubmit: lambda a, _: f"resubmit(,{a.table})",
    ModDlSrc: lambda a, _: f"mod_dl_src:{a.mac}",
    ModDlDst: lambda a, _: f"mod_dl_dst:{a.mac}",
    ModVlanVid: lambda a, _: f"mod_vlan_vid:{a.vlan}",
    SetTunnel: lambda a, _: f"set_tunnel:{a.tun_id:#x}",
    StripVlan: lambda a, _: "strip_vlan",
    DecTtl: lambda a, _: "dec_ttl",
    LoadRegister: lambda a, _: f"load:{a.value:#x}->NXM_NX_REG{a.register}[]",
    Drop: lambda a, _: "drop",
    Normal: lambda a, _: "NORMAL",
    OutputInPort: lambda a, _: "IN_PORT",
    LoadZone: lambda a, _: f"load:{a.zone:#x}->NXM_NX_REG6[]",
    Ct: _ct_text,
    Conjunction: lambda a, _: ",".join(f"conjunction({i},{a.clause}/{a.n_clauses})"
                                       for i in a.ids),
}


def render_action(action: Action, port: Callable[[str], str] = port_text) -> str:
    return _ACTION_TEXT[type(action)](action, port)


def render_actions(actions: Iterable[Action], port: Callable[[str], str] = port_text) -> str:
    """``ovs-ofctl`` action text; "drop" for no actions."""
    texts = _ACTION_TEXT
    return ",".join([texts[type(a)](a, port) for a in actions]) or "drop"


def render_flow(table: int, priority: int, cookie: int, match: Match,
                actions: Iterable[Action], port: Callable[[str], str] = port_text) -> str:
    """One line for ``ovs-ofctl add-flow(s)``."""
    text = render_match(match, port)
    body = f",{text}" if text else ""
    return (f"table={table},priority={priority},cookie={cookie:#x}{body},"
            f"actions={render_actions(actions, port)}")
