"""DESIGN.md §5: the tracer reads desired state and asks a real switch only through one
narrow port.  Its core modules import nothing that does I/O; only ``probes`` (the port's
implementations) and ``cli`` (the command) reach processes, the lab or the server."""

from __future__ import annotations

import ast
from pathlib import Path

import dvr.trace

TRACE_DIR = Path(dvr.trace.__file__).parent
PURE_MODULES = ("steps", "hosts", "routing", "tracer", "ofproto", "verify", "render", "ofsim")
IO_MODULES = ("subprocess", "socket", "httpx", "sqlalchemy", "pyroute2", "ovsdbapp", "os",
              "dvr.client", "dvr.hoststate", "dvr.lab", "dvr.server", "dvr.db",
              "dvr.agent.drivers", "dvr.agent.reconcile", "dvr.trace.probes", "dvr.trace.cli")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_tracer_core_imports_no_io():
    for name in PURE_MODULES:
        imports = imported_modules(TRACE_DIR / f"{name}.py")
        bad = sorted(m for m in imports
                     if any(m == io or m.startswith(io + ".") for io in IO_MODULES))
        assert not bad, f"dvr.trace.{name} imports {bad}"


def test_the_switch_port_is_one_method():
    from dvr.trace.verify import SwitchProbe

    methods = [n for n in vars(SwitchProbe) if not n.startswith("_")]
    assert methods == ["trace"]
