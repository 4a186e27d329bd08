"""The layer rules of ``src/dvr``, checked on its import graph (docs/design.md §4).

Read from the source with ``ast`` only: nothing under test is imported.  Every import
counts, function-local ones included.  Two graphs are built from them:

- the *import* graph: module -> the modules it names in an import statement.  ``from pkg
  import name``, where ``pkg/__init__.py`` only re-exports ``name`` from one of its
  submodules, points at that submodule, so a package's re-exports make no cycle;
- the *load* graph: the import graph plus module -> its parent packages (importing
  ``dvr.a.b`` runs ``dvr/a/__init__.py`` too).  What a module *reaches* is what it loads,
  transitively.

The rules:

- no import cycle between modules of ``dvr``;
- the server (``dvr.server``, ``dvr.web``) reaches no dataplane code and nothing that runs
  processes: ``dvr.agent.drivers``, ``dvr.agent.reconcile``, ``dvr.lab``, pyroute2,
  ovsdbapp, subprocess;
- ``dvr.agent.desired`` is pure: it reaches only itself, ``dvr.model`` and a list of
  pure standard-library modules, and calls no I/O builtin;
- the tracer reaches drivers only through its ``--verify`` probe (``dvr.trace.probes``),
  and its core (all but ``probes`` and the ``cli`` command) reaches no I/O at all;
- ``dvr.model`` and ``dvr.hoststate`` (the contracts, and the agent's computation replayed
  from the server's data) reach no I/O either.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Violations that exist until other branches merge.  Each entry must still be found (the
# test fails on a stale entry), so this set only shrinks.  The lead empties it after merging.
KNOWN_VIOLATIONS: frozenset[str] = frozenset()

PURE_STDLIB = frozenset({
    "__future__", "bisect", "collections", "dataclasses", "enum", "functools", "hashlib",
    "ipaddress", "itertools", "operator", "re", "types", "typing",
})
IO_BUILTINS = frozenset({"open", "input", "print", "exec", "eval", "compile", "__import__",
                         "breakpoint"})
IO_MODULES = ("subprocess", "socket", "os", "shutil", "pathlib", "tempfile", "time",
              "threading", "asyncio", "urllib", "http", "httpx", "sqlite3", "sqlalchemy",
              "psycopg", "pyroute2", "ovsdbapp", "dvr.client", "dvr.db", "dvr.server",
              "dvr.lab", "dvr.cli", "dvr.agent.drivers", "dvr.agent.reconcile",
              "dvr.agent.loop", "dvr.agent.dataplane", "dvr.agent.main")


# ---------------------------------------------------------------- the graphs


@dataclass(frozen=True)
class Package:
    """The modules of one package tree and their imports, read from source."""

    files: Mapping[str, Path]  # module name -> file
    imports: Mapping[str, frozenset[str]]  # module name -> dvr modules and external names

    def is_package(self, module: str) -> bool:
        return self.files[module].name == "__init__.py"

    def loads(self, module: str) -> set[str]:
        """What importing ``module`` runs directly: its imports and its parent packages."""
        parents = {p for p in parent_packages(module) if p in self.files}
        return set(self.imports.get(module, ())) | parents


def parent_packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def module_files(src: Path, top: str) -> dict[str, Path]:
    files = {}
    for path in sorted((src / top).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _import_nodes(path: Path) -> list[ast.Import | ast.ImportFrom]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def read_package(src: Path, top: str = "dvr") -> Package:
    files = module_files(src, top)
    nodes = {name: _import_nodes(path) for name, path in files.items()}

    def reexported_from(package: str, name: str) -> str | None:
        """The submodule ``package/__init__.py`` re-exports ``name`` from, if it does."""
        for node in nodes[package]:
            if isinstance(node, ast.ImportFrom) and any(
                    (a.asname or a.name) == name for a in node.names):
                origin = _absolute(package, True, node)
                if origin.startswith(package + ".") and origin in files:
                    return origin
        return None

    def targets(module: str) -> set[str]:
        found: set[str] = set()
        for node in nodes[module]:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
                continue
            origin = _absolute(module, files[module].name == "__init__.py", node)
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                if submodule in files:
                    found.add(submodule)
                elif origin in files and files[origin].name == "__init__.py":
                    found.add(reexported_from(origin, alias.name) or origin)
                else:
                    found.add(origin)
        found.discard(module)
        return found

    return Package(files=files, imports={m: frozenset(targets(m)) for m in files})


def cycles(package: Package) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(package.imports[module]):
            if target not in package.files:
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for module in sorted(package.files):
        if module not in index:
            visit(module)
    return sorted(found)


def reach(package: Package, sources: Iterable[str],
          avoiding: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Everything loaded from ``sources`` (not passing through modules under ``avoiding``),
    each with one shortest import path to it."""
    paths = {s: [s] for s in sources}
    todo = deque(paths)
    while todo:
        module = todo.popleft()
        if module not in package.files or under(module, avoiding):
            continue
        for target in sorted(package.loads(module)):
            if target not in paths:
                paths[target] = paths[module] + [target]
                todo.append(target)
    return paths


def under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# ---------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Rule:
    """Modules under ``sources`` (but not ``exempt``) must not reach a module under
    ``forbidden`` (or, with ``allowed``, anything not under it), except through
    ``avoiding``."""

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None
    exempt: tuple[str, ...] = ()
    avoiding: tuple[str, ...] = ()

    def broken_by(self, module: str) -> bool:
        if self.allowed is not None:
            return not under(module, self.allowed)
        return under(module, self.forbidden)


RULES = (
    Rule("the server", sources=("dvr.server", "dvr.web"),
         forbidden=("dvr.agent.drivers", "dvr.agent.reconcile", "dvr.lab", "pyroute2",
                    "ovsdbapp", "subprocess")),
    Rule("agent/desired", sources=("dvr.agent.desired",),
         allowed=("dvr.agent.desired", "dvr.model", *PURE_STDLIB)),
    Rule("the tracer", sources=("dvr.trace",), forbidden=("dvr.agent.drivers",),
         exempt=("dvr.trace.probes",), avoiding=("dvr.trace.probes",)),
    Rule("the tracer's core", sources=("dvr.trace",), forbidden=IO_MODULES,
         exempt=("dvr.trace.probes", "dvr.trace.cli")),
    Rule("the pure modules", sources=("dvr.model", "dvr.hoststate"), forbidden=IO_MODULES),
)


def layer_violations(package: Package, rules: Iterable[Rule] = RULES) -> dict[str, str]:
    """Each violation: a stable one-line key -> an explanation with an import path."""
    found: dict[str, str] = {}
    for component in cycles(package):
        found[f"import cycle: {' '.join(component)}"] = (
            "modules that import each other: " + ", ".join(component))
    for rule in rules:
        sources = [m for m in package.files
                   if under(m, rule.sources) and not under(m, rule.exempt)]
        own_packages = {p for s in sources for p in parent_packages(s)}
        broken = {target: path for target, path in reach(package, sources, rule.avoiding).items()
                  if target not in own_packages and rule.broken_by(target)}
        for target, path in sorted(broken.items()):
            # a package counts only when none of its own modules does (a path that reaches
            # dvr.lab.lab also runs dvr/lab/__init__.py: one finding, not two)
            if not any(other.startswith(target + ".") for other in broken):
                found[f"{rule.name} reaches {target}"] = " -> ".join(path)
    for module in package.files:
        if under(module, ("dvr.agent.desired",)):
            tree = ast.parse(package.files[module].read_text())
            used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
                          & IO_BUILTINS)
            if used:
                found[f"agent/desired calls {', '.join(used)} in {module}"] = module
    return found


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def src_dvr() -> Package:
    return read_package(SRC)


def test_src_dvr_keeps_its_layers(src_dvr):
    found = layer_violations(src_dvr)
    new = {key: why for key, why in found.items() if key not in KNOWN_VIOLATIONS}
    stale = sorted(KNOWN_VIOLATIONS - set(found))
    report = [f"{key}\n    {why}" for key, why in sorted(new.items())]
    report += [f"listed in KNOWN_VIOLATIONS but gone (remove it): {key}" for key in stale]
    assert not report, "\n".join(report)


def test_the_real_graph_is_read(src_dvr):
    package = src_dvr
    assert len(package.files) > 100
    # a function-local import is seen
    assert "dvr.trace.probes" in package.imports["dvr.trace.cli"]
    # a package's re-export points at the submodule that defines the name
    assert "dvr.agent.desired.incremental" in package.imports["dvr.agent.dataplane"]
    # the tracer reaches its probe, and the probe runs processes
    assert "subprocess" in reach(package, ["dvr.trace.cli"])


def write_tree(root: Path, modules: Mapping[str, str]) -> Path:
    """Writes ``{"dvr.a.b": source}`` as a package tree under ``root``: a name with names
    under it is a package (its source goes to ``__init__.py``), and every package that is
    not given gets an empty ``__init__.py``."""
    packages = {".".join(n.split(".")[:i]) for n in modules for i in range(1, n.count(".") + 1)}
    for name in packages - set(modules):
        (root.joinpath(*name.split(".")) / "__init__.py").parent.mkdir(parents=True, exist_ok=True)
        (root.joinpath(*name.split(".")) / "__init__.py").touch()
    for name, source in modules.items():
        path = root.joinpath(*name.split("."))
        path = path / "__init__.py" if name in packages else path.with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


# a small tree that keeps every rule
CLEAN_TREE = {
    "dvr.model.hostview": "import dataclasses\n",
    "dvr.agent.desired": "from dvr.agent.desired.compute import compute\n",
    "dvr.agent.desired.compute": ("from dvr.agent.desired import names\n"
                                  "from dvr.model.hostview import dataclasses\n"),
    "dvr.agent.desired.names": "import re\n",
    "dvr.agent.drivers.ovs": "import subprocess\nimport ovsdbapp\n",
    "dvr.agent.reconcile.plan": "from dvr.agent.drivers import ovs\n",
    "dvr.server.app": "from dvr.server import routes\nfrom dvr.model import hostview\n",
    "dvr.server.routes": "import sqlalchemy\nfrom dvr.agent.desired import compute\n",
    "dvr.web.trace": "from dvr.trace.tracer import trace\n",
    "dvr.trace": "from dvr.trace.tracer import trace\n",
    "dvr.trace.tracer": "from dvr.agent.desired.names import re\n",
    "dvr.trace.probes": "import subprocess\nfrom dvr.agent.drivers.ovs import x\n",
    "dvr.trace.cli": "def probe():\n    from dvr.trace import probes\n",
}


def violations_of(tmp_path: Path, changes: Mapping[str, str], kind: str = "") -> set[str]:
    """The violations (those starting with ``kind``) of ``CLEAN_TREE`` plus ``changes``."""
    tree = {**CLEAN_TREE}
    for name, source in changes.items():
        tree[name] = tree.get(name, "") + source
    found = layer_violations(read_package(write_tree(tmp_path, tree)))
    return {key for key in found if key.startswith(kind)}


def test_a_clean_tree_keeps_every_rule(tmp_path):
    assert violations_of(tmp_path, {}) == set()


@pytest.mark.parametrize(("changes", "kind", "expected"), [
    # a cycle, through a function-local import
    ({"dvr.server.routes": "def f():\n    from dvr.server.app import x\n"},
     "import cycle", {"import cycle: dvr.server.app dvr.server.routes"}),
    # a cycle through a relative import
    ({"dvr.agent.desired.names": "from . import compute\n"},
     "import cycle", {"import cycle: dvr.agent.desired.compute dvr.agent.desired.names"}),
    # the server reaching a driver transitively, through a module that looks pure
    ({"dvr.model.hostview": "from dvr.agent.drivers.ovs import OvsDriver\n"},
     "the server", {"the server reaches dvr.agent.drivers.ovs", "the server reaches subprocess",
                    "the server reaches ovsdbapp"}),
    # web is the server too; pyroute2 imported in a function
    ({"dvr.web.trace": "def f():\n    import pyroute2.netlink\n"},
     "the server", {"the server reaches pyroute2.netlink"}),
    # a package's __init__ runs on the way: importing dvr.lab.topology runs dvr/lab/__init__
    ({"dvr.lab": "from dvr.agent.reconcile import plan\n",
      "dvr.lab.topology": "", "dvr.server.routes": "from dvr.lab.topology import plan\n"},
     "the server", {"the server reaches dvr.lab.topology", "the server reaches subprocess",
                    "the server reaches dvr.agent.reconcile.plan", "the server reaches ovsdbapp",
                    "the server reaches dvr.agent.drivers.ovs"}),
    # desired: a module outside the pure list, an I/O builtin
    ({"dvr.agent.desired.names": "import time\n"}, "agent/desired",
     {"agent/desired reaches time"}),
    ({"dvr.agent.desired.names": "def f():\n    print(1)\n"}, "agent/desired",
     {"agent/desired calls print in dvr.agent.desired.names"}),
    ({"dvr.model.hostview": "from dvr.trace import tracer\n"}, "agent/desired",
     {"agent/desired reaches dvr.trace.tracer"}),
    # the tracer reaching a driver other than through the probe
    ({"dvr.trace.cli": "from dvr.agent.drivers import ovs\n"}, "the tracer ",
     {"the tracer reaches dvr.agent.drivers.ovs"}),
    ({"dvr.trace.tracer": "import os\n"}, "the tracer", {"the tracer's core reaches os"}),
    # the pure modules
    ({"dvr.model.hostview": "import httpx\n"}, "the pure", {"the pure modules reaches httpx"}),
])
def test_a_forbidden_import_is_found(tmp_path, changes, kind, expected):
    assert violations_of(tmp_path, changes, kind) == expected


def test_the_synthetic_tree_is_what_it_claims(tmp_path):
    package = read_package(write_tree(tmp_path, CLEAN_TREE))
    assert package.is_package("dvr.agent.desired")
    assert package.is_package("dvr.trace") and not package.is_package("dvr.trace.tracer")
    # the re-export in dvr/agent/desired/__init__.py is not a cycle with compute
    assert package.imports["dvr.agent.desired"] == {"dvr.agent.desired.compute"}
    assert "dvr.agent.desired.names" in package.imports["dvr.agent.desired.compute"]
