"""A lab host on one machine: a network namespace with its own Open vSwitch (docs/design.md §3).

``HostEnv(name, workdir)``:
- network namespace ``name`` (the caller picks it, e.g. ``dvrlab-<lab>-<host>``);
- a private mount namespace, held open by a tiny holder process, in which ``/run/netns`` is
  a private tmpfs: ``ip netns add qrouter-X`` inside the host clashes with no other host;
- its own ``ovsdb-server`` and ``ovs-vswitchd`` running inside both namespaces, with
  ``OVS_RUNDIR``/``OVS_DBDIR``/``OVS_LOGDIR``/``OVS_SYSCONFDIR`` = ``workdir``.

``command(argv)`` prefixes ``nsenter`` so that anything (``ip netns exec qrouter-X ...``,
the agent itself) runs inside the host; ``env()`` makes ``ovs-vsctl``/``ovs-ofctl``/
``ovs-appctl`` talk to this host's switch from anywhere.

Everything started is recorded in ``workdir/hostenv.json`` (names, PIDs with their start
times) before it is used, so ``cleanup(name, workdir)`` can tear down what a crashed run
left behind.  Processes are stopped by PID only, and a zombie counts as stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from dvr.lab.procs import ProcessRef, is_alive, poll_until, process_ref, stop_process

OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
MANIFEST = "hostenv.json"
NETNS_DIR = Path("/run/netns")
DAEMONS = ("ovs-vswitchd", "ovsdb-server")  # stop order




class HostEnvError(RuntimeError):
    pass


def _wait_for(check, what: str, timeout: float = 10.0, interval: float = 0.02) -> None:
    if not poll_until(check, timeout, interval):
        raise HostEnvError(f"timed out waiting for {what}")


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None, check: bool = True,
         timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), env=dict(env) if env else None, text=True,
                            capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise HostEnvError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def delete_netns(name: str) -> None:
    if netns_exists(name):
        _run(["ip", "netns", "delete", name], check=False)
    _wait_for(lambda: not netns_exists(name), f"netns {name} to go", timeout=5.0)


# --- the host ---------------------------------------------------------------------------


_HOLDER_SCRIPT = (
    # drop the copies of other namespaces' bind mounts this new mount namespace inherited
    # (they would keep those namespaces alive), then a private, empty /run/netns
    "umount -R -l {netns_dir} 2>/dev/null; mkdir -p {netns_dir}; "
    "mount -t tmpfs -o size=4m,mode=0755 {tag} {netns_dir} && exec sleep infinity"
)


class HostEnv:
    """One lab host.  ``start()``/``stop()`` are idempotent; see the module docstring."""

    def __init__(self, name: str, workdir: str | Path, *, ovs_schema: Path = OVS_SCHEMA):
        if not name or len(name) > 64 or "/" in name:
            raise ValueError(f"bad namespace name {name!r}")
        self.name = name
        self.workdir = Path(workdir).absolute()
        self.ovs_schema = ovs_schema

    # -- paths and environment ------------------------------------------------------------
    @property
    def rundir(self) -> Path:
        return self.workdir

    @property
    def db_socket(self) -> Path:
        return self.workdir / "db.sock"

    @property
    def ovsdb(self) -> str:
        """The OVSDB connection string (works from any namespace)."""
        return f"unix:{self.db_socket}"

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.name

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment in which ovs-vsctl/ovs-ofctl/ovs-appctl reach this host."""
        env = dict(os.environ if base is None else base)
        for var in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"):
            env[var] = str(self.workdir)
        return env

    def holder(self) -> ProcessRef | None:
        data = self._manifest().get("holder")
        return ProcessRef(**data) if data else None

    def command(self, argv: Sequence[str]) -> list[str]:
        """argv run inside this host (its network and mount namespaces)."""
        holder = self.holder()
        if holder is None or not is_alive(holder):
            raise HostEnvError(f"host {self.name} is not running")
        return ["nsenter", f"--net={self.netns_path}", f"--mount=/proc/{holder.pid}/ns/mnt",
                "--", *argv]

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv inside the host with ``env()``; raises on failure when ``check``."""
        full = self.command(argv)
        result = subprocess.run(full, env=self.env(), text=True, capture_output=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise HostEnvError(f"[{self.name}] {' '.join(argv)} failed ({result.returncode}):"
                               f" {result.stderr.strip() or result.stdout.strip()}")
        return result

    def vsctl(self, *args: str) -> str:
        return _run(["ovs-vsctl", f"--db={self.ovsdb}", *args], env=self.env()).stdout

    def namespace_path(self, namespace: str) -> Path:
        """Path (valid from outside the host) of a namespace created inside the host."""
        holder = self.holder()
        if holder is None:
            raise HostEnvError(f"host {self.name} is not running")
        return Path(f"/proc/{holder.pid}/root") / str(NETNS_DIR).lstrip("/") / namespace

    def namespaces(self) -> list[str]:
        """Names of the namespaces created inside this host (its private /run/netns)."""
        holder = self.holder()
        if holder is None or not is_alive(holder):
            return []
        directory = self.namespace_path("")
        return sorted(p.name for p in directory.iterdir()) if directory.exists() else []

    def daemon(self, name: str) -> ProcessRef | None:
        data = self._manifest().get("daemons", {}).get(name)
        return ProcessRef(**data) if data else None

    def is_running(self) -> bool:
        refs = [self.holder(), *(self.daemon(d) for d in DAEMONS)]
        return netns_exists(self.name) and all(r is not None and is_alive(r) for r in refs)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self.is_running():
            return
        cleanup(self.name, self.workdir)  # whatever a half-way start or a crash left
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_manifest({"name": self.name})
        try:
            _run(["ip", "netns", "add", self.name])
            self._start_holder()
            _run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"])
            self._start_ovs()
        except BaseException:
            cleanup(self.name, self.workdir)
            raise

    def stop(self) -> None:
        cleanup(self.name, self.workdir)

    def __enter__(self) -> HostEnv:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_holder(self) -> None:
        tag = f"dvrhost-{self.name}"[:60]
        script = _HOLDER_SCRIPT.format(netns_dir=NETNS_DIR, tag=tag)
        log = open(self.workdir / "holder.log", "ab")
        with log:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        ref = process_ref(proc.pid)
        if ref is None:
            raise HostEnvError("mount namespace holder exited at once")
        self._update_manifest(holder=ref.as_dict())

        def ready() -> bool:
            if proc.poll() is not None:
                raise HostEnvError(f"mount namespace holder failed: see {log.name}")
            try:
                mounts = Path(f"/proc/{proc.pid}/mountinfo").read_text()
            except OSError:
                return False
            return any(f" {NETNS_DIR} " in line and tag in line for line in mounts.splitlines())

        _wait_for(ready, f"the private {NETNS_DIR} of {self.name}")

    def _start_ovs(self) -> None:
        w = self.workdir
        env = self.env()
        _run(["ovsdb-tool", "create", str(w / "conf.db"), str(self.ovs_schema)], env=env)
        _run(self.command([
            "ovsdb-server", str(w / "conf.db"), f"--remote=punix:{self.db_socket}",
            f"--pidfile={w / 'ovsdb-server.pid'}", f"--log-file={w / 'ovsdb-server.log'}",
            "--detach", "--no-chdir"]), env=env)
        self._record_daemon("ovsdb-server")
        _run(["ovs-vsctl", f"--db={self.ovsdb}", "--no-wait", "init"], env=env)
        _run(self.command([
            "ovs-vswitchd", self.ovsdb, f"--pidfile={w / 'ovs-vswitchd.pid'}",
            f"--log-file={w / 'ovs-vswitchd.log'}", "--detach", "--no-chdir"]), env=env)
        self._record_daemon("ovs-vswitchd")
        # without --no-wait, ovs-vsctl returns once ovs-vswitchd has applied the change
        _run(["ovs-vsctl", f"--db={self.ovsdb}", "--timeout=10",
              "set", "Open_vSwitch", ".", f"external_ids:hostname={self.name}"], env=env)

    def _record_daemon(self, daemon: str) -> None:
        pidfile = self.workdir / f"{daemon}.pid"
        _wait_for(pidfile.exists, f"{pidfile}")
        ref = process_ref(int(pidfile.read_text().strip()))
        if ref is None:
            raise HostEnvError(f"{daemon} of {self.name} exited: see {self.workdir}")
        daemons = self._manifest().get("daemons", {})
        daemons[daemon] = ref.as_dict()
        self._update_manifest(daemons=daemons)

    # -- manifest ---------------------------------------------------------------------------
    def _manifest(self) -> dict:
        return read_manifest(self.workdir)

    def _write_manifest(self, data: dict) -> None:
        path = self.workdir / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)

    def _update_manifest(self, **fields) -> None:
        data = self._manifest()
        data.update(fields)
        self._write_manifest(data)


def read_manifest(workdir: str | Path) -> dict:
    try:
        return json.loads((Path(workdir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def cleanup(name: str, workdir: str | Path) -> None:
    """Tear down host ``name`` from what ``workdir`` recorded; safe to repeat, safe after
    a crash half-way through ``start()``.  Only touches the recorded PIDs, the netns
    ``name`` and the files in ``workdir``."""
    workdir = Path(workdir)
    manifest = read_manifest(workdir)
    if manifest.get("name", name) != name:
        raise HostEnvError(f"{workdir} belongs to host {manifest['name']}, not {name}")
    daemons = manifest.get("daemons", {})
    for daemon in DAEMONS:
        data = daemons.get(daemon)
        if data is None:
            # started but not yet recorded? the pidfile says which process it is
            pidfile = workdir / f"{daemon}.pid"
            try:
                ref = process_ref(int(pidfile.read_text().strip()))
            except (OSError, ValueError):
                ref = None
            if ref is not None and _in_workdir(ref.pid, workdir):
                stop_process(ref)
        else:
            stop_process(ProcessRef(**data))
    holder = manifest.get("holder")
    if holder:
        stop_process(ProcessRef(**holder))
    delete_netns(name)
    remove_files(workdir)


# the files a host creates in its workdir (nothing else there is touched)
_HOST_FILE_PATTERNS = ("conf.db", ".conf.db.~lock~", "db.sock", "*.pid", "*.log", "*.ctl",
                       "*.mgmt", "*.snoop", MANIFEST, MANIFEST.replace(".json", ".tmp"))


def remove_files(workdir: Path) -> None:
    """Remove the files a host made in ``workdir``, and the directory if that empties it."""
    if not workdir.is_dir():
        return
    for pattern in _HOST_FILE_PATTERNS:
        for path in workdir.glob(pattern):
            if path.is_file() or path.is_socket() or path.is_symlink():
                path.unlink(missing_ok=True)
    try:
        workdir.rmdir()
    except OSError:
        pass  # something else lives there: leave it


def _in_workdir(pid: int, workdir: Path) -> bool:
    """A PID read from a pidfile is only trusted if its command line names our workdir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return str(workdir.absolute()) in cmdline
