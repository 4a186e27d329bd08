"""dvr.agent.desired is pure: no I/O modules, no drivers, no database, no server.

Checked statically over every module of the package and every ``dvr`` module it reaches.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import dvr.agent.desired

ALLOWED_STDLIB = frozenset({
    "__future__", "collections", "collections.abc", "dataclasses", "enum", "functools",
    "hashlib", "ipaddress", "itertools", "operator", "re", "types", "typing", "bisect",
})
ALLOWED_DVR_PREFIXES = ("dvr.agent.desired", "dvr.model")
FORBIDDEN_BUILTINS = frozenset({"open", "input", "exec", "eval", "compile", "__import__",
                                "print", "breakpoint"})


def desired_modules() -> list[str]:
    package = dvr.agent.desired
    return [package.__name__] + [
        f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
    ]


def module_path(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, name
    return Path(spec.origin)


def imports_of(name: str) -> set[str]:
    tree = ast.parse(module_path(name).read_text(), filename=name)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: use absolute imports"
            assert node.module is not None
            found.add(node.module)
            # "from dvr.agent.desired import names" imports a submodule
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if node.module.startswith("dvr") and importlib.util.find_spec(
                    node.module
                ) and _is_module(candidate):
                    found.add(candidate)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def reachable_dvr_modules() -> set[str]:
    seen: set[str] = set()
    todo = desired_modules()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(m for m in imports_of(name) if m.split(".")[0] == "dvr")
    return seen


@pytest.mark.parametrize("module", sorted(reachable_dvr_modules()))
def test_module_imports_only_pure_things(module):
    for imported in imports_of(module):
        if imported.split(".")[0] == "dvr":
            assert imported.startswith(ALLOWED_DVR_PREFIXES), f"{module} imports {imported}"
        else:
            assert imported in ALLOWED_STDLIB, f"{module} imports {imported}"


@pytest.mark.parametrize("module", desired_modules())
def test_module_uses_no_io_builtins(module):
    tree = ast.parse(module_path(module).read_text())
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not used & FORBIDDEN_BUILTINS, module


def test_reachable_set_covers_the_package_and_excludes_io_layers():
    reachable = reachable_dvr_modules()
    assert set(desired_modules()) <= reachable
    assert "dvr.model.hostview" in reachable
    assert not any(m.startswith(("dvr.agent.drivers", "dvr.db", "dvr.server",
                                 "dvr.agent.reconcile", "dvr.client")) for m in reachable)


def test_simulator_is_pure_too():
    for imported in imports_of("dvr.trace.ofsim"):
        if imported.split(".")[0] == "dvr":
            assert imported.startswith(ALLOWED_DVR_PREFIXES), imported
        else:
            assert imported in ALLOWED_STDLIB, imported
