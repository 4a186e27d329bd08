"""The lab's record of what it made: written after every step so `down` can undo anything."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dvr.lab.procs import ProcessRef
from dvr.lab.vm import VmPlumbing
from dvr.model.hostview import DEFAULT_TUNNEL_LAYOUT
from dvr.server.admin_token import admin_token_path

DEFAULT_ROOT = Path("/var/lib/dvr-lab")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass
class HostRecord:
    name: str
    mode: str
    tunnel_ip: str
    netns: str
    workdir: str
    agent: dict[str, int] | None = None  # ProcessRef.as_dict()
    fabric_port: str = ""  # its uplink's device on the fabric bridge (e.g. for tcpdump)
    # its agent's own tunnel layout (`dvr lab restart-agent --tunnel-layout`); "": the lab's
    tunnel_layout: str = ""


@dataclass
class VmRecord:
    name: str
    host: str
    network: str
    port_id: str
    ip_address: str
    mac_address: str


@dataclass
class LabRecord:
    name: str
    api_port: int
    computes: int
    server: dict[str, int] | None = None
    fabric_netns: str = ""
    outside_netns: str = ""  # the outside host on the external segment
    outside_cidr: str = ""
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    vms: dict[str, VmRecord] = field(default_factory=dict)
    router_id: str = ""
    complete: bool = False
    # how every VM and every host uplink of the lab is plugged (`dvr lab up
    # --vm-plumbing`); a record written before the choice existed was a veth lab
    vm_plumbing: VmPlumbing = VmPlumbing.VETH
    # where the agents keep br-tun's tables (`dvr lab up --tunnel-layout`)
    tunnel_layout: str = DEFAULT_TUNNEL_LAYOUT

    def layout_of(self, host: HostRecord) -> str:
        """Where ``host``'s agent keeps br-tun's tables: its own choice, else the lab's."""
        return host.tunnel_layout or self.tunnel_layout

    @property
    def outside_ip(self) -> str:
        return self.outside_cidr.split("/")[0]

    @property
    def server_process(self) -> ProcessRef | None:
        return ProcessRef.from_dict(self.server)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> LabRecord:
        data = json.loads(text)
        data["hosts"] = {k: HostRecord(**v) for k, v in data.get("hosts", {}).items()}
        data["vms"] = {k: VmRecord(**v) for k, v in data.get("vms", {}).items()}
        data["vm_plumbing"] = VmPlumbing(data.get("vm_plumbing", VmPlumbing.VETH))
        return LabRecord(**data)


@dataclass(frozen=True)
class LabPaths:
    root: Path  # this lab's directory

    @staticmethod
    def base_dir() -> Path:
        """Where every lab keeps its directory ($DVR_LAB_ROOT or /var/lib/dvr-lab)."""
        return Path(os.environ.get("DVR_LAB_ROOT", DEFAULT_ROOT))

    @staticmethod
    def for_lab(name: str, base: Path | None = None) -> LabPaths:
        return LabPaths((base or LabPaths.base_dir()) / name)

    @property
    def record(self) -> Path:
        return self.root / "lab.json"

    @property
    def server_socket(self) -> Path:
        return self.root / "server.sock"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"

    @property
    def database(self) -> Path:
        return self.root / "dvr.db"

    @property
    def admin_token(self) -> Path:
        """The admin token the lab's server made at its first start in its state directory
        (this directory), mode 0600."""
        return admin_token_path(self.root)

    def host_dir(self, host: str) -> Path:
        return self.root / "hosts" / host

    def agent_config(self, host: str) -> Path:
        """The host's agent settings: its name and its own credential (mode 0600)."""
        return self.host_dir(host) / "agent.toml"

    def load(self) -> LabRecord | None:
        try:
            return LabRecord.from_json(self.record.read_text())
        except FileNotFoundError:
            return None

    def save(self, record: LabRecord) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(record.to_json())
        tmp.replace(self.record)


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


def url_reaches_lab(server_url: str, api_port: int, server_socket: Path) -> bool:
    """Whether ``server_url`` (as the ``dvr`` CLI takes it) is a lab's API: its TCP port on
    loopback, or its unix socket."""
    if server_url.startswith("unix:"):
        return Path(server_url.removeprefix("unix:")) == server_socket
    parts = urlsplit(server_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return parts.hostname in LOOPBACK_NAMES and port == api_port
