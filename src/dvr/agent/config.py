"""Agent configuration: one explicit object, from command-line flags or a small TOML file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from dvr.client import TOKEN_ENV, read_token_file
from dvr.model.hostview import (
    AGENT_MODES,
    DEFAULT_TUNNEL_LAYOUT,
    EAST_WEST_MODES,
    LAYOUT_CHOICES,
    TUNNEL_LAYOUTS,
)

DATAPATH_TYPES = ("netdev", "system")
ON_OFF_SETTINGS = ("flow_mirror", "openflow_connection", "fast_phase")  # flags: on|off
MAX_FULL_PHASE_GRACE = 1.0  # seconds: longer would hold a pass's verification back
MAX_VIEW_PATIENCE = 3600.0  # seconds: a view request never waits longer (a server caps it lower)
# settings that old configuration files may still hold: read, ignored, logged once
DEPRECATED_SETTINGS = {
    "resync_interval": "the agent no longer resyncs on a timer: it compares revisions with "
                       "the server's (heartbeat answers, the watch) and resyncs on a gap",
}
log = logging.getLogger("dvr.agent")


@dataclass(frozen=True)
class AgentConfig:
    host: str
    # the server the agent starts with (http://127.0.0.1:9696 or unix:/path/to/server.sock):
    # the first of ``servers``; give either (the other follows)
    server: str = ""
    # every server process the agent may use, in order: it sticks to one and moves to the
    # next on connection errors, timeouts and 503s (TOML: servers = ["...", "..."])
    servers: tuple[str, ...] = ()
    mode: str = "dvr"
    local_ip: str | None = None  # tunnel endpoint (underlay) address of this host
    datapath: str = "netdev"
    integration_bridge: str = "br-int"
    tunnel_bridge: str = "br-tun"
    ovs_rundir: str = "/var/run/openvswitch"
    # the host credential (or admin token) sent as X-Auth-Token: TOML `token`, or read from
    # `token_file` (TOML or --token-file), or $DVR_TOKEN; never a command-line flag
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    ca_file: str | None = None  # CA that verifies an https server (default: the system's)
    # seconds between heartbeats (each jittered by ±10%): Neutron's report_interval; the
    # server's agent_down_time (75 s) still spans two of them.  A change is not waited on a
    # heartbeat: the watch brings it, and each reconcile reports at once
    heartbeat_interval: float = 30.0
    # a revision gap (the server has a newer revision for this host than the agent holds and
    # the watch never said so) is resynced after a random wait of up to this many seconds
    resync_jitter: float = 5.0
    # long-poll duration: just under the server's longest (watch_max_timeout, 60 s); an
    # idle agent's watches and heartbeats are most of an idle server's work
    watch_timeout: float = 55.0
    # how long a view request may wait in a busy server's queue for its turn (it says so:
    # ``wait=``); the server keeps it open that long rather than refuse it with a 503 for
    # the agent to come back later (it caps this at 60 s)
    view_patience: float = 50.0
    local_poll_interval: float = 1.0  # how often OVSDB is checked for newly plugged VIFs
    max_backoff: float = 30.0
    availability_zone: str = "nova"  # the zone this host's L3 agent is in
    # "physnet:bridge" pairs: provider/external networks on physnet reach br-int through
    # bridge (TOML: bridge_mappings = ["public:br-ex"])
    bridge_mappings: tuple[str, ...] = ()
    # east/west between subnets of a distributed router: "openflow" (routed in br-int, the
    # namespace keeps the rest) or "namespace" (every routed packet through qrouter-)
    east_west: str = "openflow"
    # br-tun's tables and ports on a bridge of their own ("bridge", Neutron's layout) or
    # folded into br-int ("folded": one bridge fewer for ovs-vswitchd's main loop)
    tunnel_layout: str = DEFAULT_TUNNEL_LAYOUT
    # keep observations between reconciles, caught up from notifications: flows from an
    # OpenFlow flow monitor per bridge, namespaces from rtnetlink, NAT tables from nftables
    # (false: dump the flows and read every namespace and table every time)
    flow_mirror: bool = True
    # apply OpenFlow bundles over a long-lived connection per bridge (false: run ovs-ofctl
    # for every bundle, as before)
    openflow_connection: bool = True
    # begin every pass by sending what can be planned from what the last one left (flows
    # and VIF tags), before observing (false: observe first, every pass)
    fast_phase: bool = True
    # seconds a pass whose fast phase sent changes waits for the next one (a VIF plugged,
    # a server change) before it observes: one that comes leaves the observation to the
    # pass it causes, whose own changes then go out first (0: observe at once)
    full_phase_grace: float = 0.02

    def __post_init__(self) -> None:
        servers = tuple(self.servers)
        if not servers and self.server:
            servers = (self.server,)
        object.__setattr__(self, "servers", servers)
        if not self.server and servers:
            object.__setattr__(self, "server", servers[0])
        if servers and self.server != servers[0]:
            raise ValueError("server must be the first of servers")

    def parsed_bridge_mappings(self) -> tuple[tuple[str, str], ...]:
        """(physical network, bridge) pairs, in order."""
        return tuple(parse_bridge_mapping(item) for item in self.bridge_mappings)

    def validate(self) -> AgentConfig:
        if not self.host:
            raise ValueError("host must not be empty")
        if self.mode not in AGENT_MODES:
            raise ValueError(f"mode must be one of {', '.join(AGENT_MODES)}, not {self.mode!r}")
        for name, (choices, _default) in LAYOUT_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, "
                                 f"not {getattr(self, name)!r}")
        for name in ON_OFF_SETTINGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if isinstance(self.view_patience, bool) or not (
                isinstance(self.view_patience, int | float)
                and 0 < self.view_patience <= MAX_VIEW_PATIENCE):
            raise ValueError(f"view_patience must be a number of seconds in "
                             f"(0, {MAX_VIEW_PATIENCE:g}]")
        if isinstance(self.full_phase_grace, bool) or not (
                isinstance(self.full_phase_grace, int | float)
                and 0 <= self.full_phase_grace <= MAX_FULL_PHASE_GRACE):
            raise ValueError(f"full_phase_grace must be a number of seconds in "
                             f"[0, {MAX_FULL_PHASE_GRACE:g}]")
        if self.datapath not in DATAPATH_TYPES:
            raise ValueError(f"datapath must be one of {', '.join(DATAPATH_TYPES)}")
        mappings = self.parsed_bridge_mappings()
        if len({p for p, _ in mappings}) != len(mappings):
            raise ValueError("bridge_mappings: a physical network is mapped twice")
        if any(b in (self.integration_bridge, self.tunnel_bridge) for _, b in mappings):
            raise ValueError("bridge_mappings: a mapped bridge cannot be br-int or br-tun")
        for server in self.servers:
            if not server.startswith(("http://", "https://", "unix:")):
                raise ValueError(f"server must be http(s)://HOST:PORT or unix:/path, not "
                                 f"{server!r}")
        if len(set(self.servers)) != len(self.servers):
            raise ValueError("a server is listed twice")
        return self


def parse_bridge_mapping(item: str) -> tuple[str, str]:
    """``public:br-ex`` -> ("public", "br-ex")."""
    physnet, sep, bridge = item.strip().partition(":")
    if not sep or not physnet or not bridge or len(bridge) > 15:
        raise ValueError(f"bridge mapping {item!r}: expected PHYSNET:BRIDGE")
    return physnet, bridge


def split_mappings(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Repeated flags and comma lists, flattened: ["a:br-a,b:br-b", "c:br-c"]."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def load_toml(path: str | Path) -> dict[str, object]:
    """Read the [agent] table (or the top level) of a TOML file, with '-' in keys as '_'."""
    data = tomllib.loads(Path(path).read_text())
    table = data.get("agent", data)
    known = {f.name for f in fields(AgentConfig)}
    values = {key.replace("-", "_"): value for key, value in table.items()}
    for key in sorted(set(values) & set(DEPRECATED_SETTINGS)):
        warn_deprecated(key, str(path))
        del values[key]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown agent setting(s) in {path}: {', '.join(unknown)}")
    return values


def warn_deprecated(key: str, where: str) -> None:
    log.warning("%s: setting %r is deprecated and ignored (%s)", where, key,
                DEPRECATED_SETTINGS[key])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dvr-agent",
        description="dvr agent: programs Open vSwitch and router namespaces on this host",
        allow_abbrev=False,  # `--token` must not be read as `--token-file`
    )
    p.add_argument("--config", help="TOML file with agent settings (flags override it)")
    p.add_argument("--host", help="this host's name as the server knows it")
    p.add_argument("--server", action="append", dest="servers", metavar="URL",
                   help="http://HOST:PORT or unix:/path/to/server.sock; repeat it for several "
                        "server processes: the agent uses the first and moves to the next when "
                        "one fails")
    p.add_argument("--mode", choices=AGENT_MODES, help="agent mode (default dvr)")
    p.add_argument("--local-ip", help="this host's tunnel endpoint (underlay) IP")
    p.add_argument("--datapath", choices=DATAPATH_TYPES, help="OVS datapath type")
    p.add_argument("--integration-bridge", help="default br-int")
    p.add_argument("--tunnel-bridge", help="default br-tun")
    p.add_argument("--ovs-rundir", help="directory holding db.sock and the bridges' mgmt sockets")
    p.add_argument("--token-file", help="file holding this host's credential (or set "
                                        "$DVR_TOKEN, or `token` in the --config file)")
    p.add_argument("--ca-file", help="CA certificate that verifies an https server")
    p.add_argument("--availability-zone", help="this host's availability zone (default nova)")
    p.add_argument("--bridge-mappings", action="append", metavar="PHYSNET:BRIDGE",
                   help="provider/external network bridge, e.g. public:br-ex (repeatable, "
                        "or a comma list)")
    p.add_argument("--east-west", choices=EAST_WEST_MODES,
                   help="route east/west traffic between subnets of a distributed router in "
                        "OpenFlow (default) or through the router namespace only")
    p.add_argument("--tunnel-layout", choices=TUNNEL_LAYOUTS,
                   help="br-tun's tables on a bridge of their own (default) or folded into "
                        "br-int")
    p.add_argument("--flow-mirror", choices=("on", "off"),
                   help="keep observations between reconciles, caught up from flow monitors "
                        "and netlink notifications (default on), or dump the flows and read "
                        "every namespace for every reconcile (off)")
    p.add_argument("--fast-phase", choices=("on", "off"),
                   help="begin every pass by sending the flows and VIF tags it can plan from "
                        "what the last pass left, then observe (default on), or observe first "
                        "(off)")
    p.add_argument("--full-phase-grace", type=float, metavar="SECONDS",
                   help="a pass whose fast phase sent changes waits this long for the next "
                        "change before it observes (default 0.02; 0: at once)")
    p.add_argument("--openflow-connection", choices=("on", "off"),
                   help="apply OpenFlow bundles over a long-lived connection per bridge "
                        "(default on), or run ovs-ofctl for each bundle (off)")
    p.add_argument("--heartbeat-interval", type=float)
    p.add_argument("--resync-jitter", type=float,
                   help="resync a revision gap after a random wait up to this (default 5 s)")
    p.add_argument("--resync-interval", type=float, help=argparse.SUPPRESS)  # deprecated
    p.add_argument("--once", action="store_true", help="reconcile once and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def credential_toml(host: str, token: str) -> str:
    """The agent settings a host credential makes (`dvr host credential create --toml`):
    what `dvr-agent --config` reads, with --server and the rest given as flags."""
    return f"host = {json.dumps(host)}\ntoken = {json.dumps(token)}\n"


def resolve_token(values: dict[str, object], environ: Mapping[str, str]) -> str | None:
    """The token the agent sends: from ``token_file``, else ``token``, else $DVR_TOKEN."""
    if values.get("token_file"):
        if values.get("token"):
            raise ValueError("give token or token_file, not both")
        return read_token_file(str(values["token_file"]))
    return str(values.get("token") or "") or environ.get(TOKEN_ENV) or None


def config_from_args(args: argparse.Namespace,
                     environ: Mapping[str, str] = os.environ) -> AgentConfig:
    values: dict[str, object] = load_toml(args.config) if args.config else {}
    if getattr(args, "resync_interval", None) is not None:
        warn_deprecated("resync_interval", "--resync-interval")
    if getattr(args, "token_file", None):
        values.pop("token", None)  # the flag overrides a token in the file
    if getattr(args, "servers", None):
        values.pop("server", None)  # --server flags override the file's server(s)
    for f in fields(AgentConfig):
        flag_value = getattr(args, f.name, None)
        if flag_value is not None:
            values[f.name] = flag_value
    values["token"] = resolve_token(values, environ)
    for name in ON_OFF_SETTINGS:  # the flags' "on"/"off"
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name) == "on"
    values["servers"] = server_list(values)
    values.pop("server", None)
    if "bridge_mappings" in values:
        raw = values["bridge_mappings"]
        values["bridge_mappings"] = split_mappings([raw] if isinstance(raw, str) else list(raw))
    missing = [name for name in ("host", "servers") if not values.get(name)]
    if missing:
        names = ("--" + m.removesuffix("s") for m in missing)  # --host, --server
        raise ValueError(f"missing required setting(s): {', '.join(names)}")
    return replace(AgentConfig(host=""), **values).validate()  # type: ignore[arg-type]


def server_list(values: Mapping[str, object]) -> tuple[str, ...]:
    """The servers the settings name: ``servers`` (a list, or the repeated --server flag)
    or ``server`` (one); a file holding both is refused."""
    one, many = values.get("server"), values.get("servers")
    if one and many:
        raise ValueError("give server or servers, not both")
    if many is None:
        return (str(one),) if one else ()
    if isinstance(many, str) or not isinstance(many, list | tuple) or not all(
        isinstance(s, str) and s for s in many
    ):
        raise ValueError("servers must be a list of server URLs")
    return tuple(many)
