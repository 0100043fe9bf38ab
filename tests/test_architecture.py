"""The layout rules of ../shared/STYLE.md, checked: which package may import which, no cycles
between them, a core and use cases free of I/O frameworks, and an agency's software that does
not load the hub.

The packages and what each may use (the README's layout section draws the same picture)::

    axis.errors                                   the error tree: imports nothing of ours
    axis.core       pure: formats, signatures,    errors
                    lifecycle, policy, log chain
    axis.store      SQLite, PostgreSQL            core, errors
    axis.host       config, data folder, event    core, errors
                    loop, logs, worker processes
    axis.usecases   what the hub does             core, errors, store, host
    axis.http       HTTP bits hub and node share  errors
    axis.web        the hub's aiohttp faces       core, errors, store, host, usecases, http
    axis.cli        the axis command              everything above, and nodes.sim
    nodes           an agency's client, listener  core, errors, http, host.runtime
    nodes.sim       simulated agencies, bench     nodes, core, errors, store, host, usecases, http
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "axis" / "core"
FORBIDDEN_IN_CORE = ("aiohttp", "aiosqlite", "asyncpg", "sqlite3", "asyncio")
# The use cases wait on the store and the clock (asyncio), but speak neither HTTP nor SQL.
FORBIDDEN_IN_USECASES = ("aiohttp", "aiosqlite", "asyncpg", "sqlite3")

ALLOWED: dict[str, set[str]] = {
    "axis": set(),
    "axis.errors": set(),
    "axis.core": {"axis.errors"},
    "axis.store": {"axis.core", "axis.errors"},
    "axis.host": {"axis.core", "axis.errors"},
    "axis.usecases": {"axis.core", "axis.errors", "axis.store", "axis.host"},
    "axis.http": {"axis.errors"},
    "axis.web": {
        "axis.core", "axis.errors", "axis.store", "axis.host", "axis.usecases", "axis.http",
    },
    "axis.cli": {
        "axis", "axis.core", "axis.errors", "axis.store", "axis.host", "axis.usecases",
        "axis.http", "axis.web", "nodes.sim",
    },
    "nodes": {"axis.core", "axis.errors", "axis.http", "axis.host.runtime"},
    "nodes.sim": {
        "nodes", "axis.core", "axis.errors", "axis.store", "axis.host", "axis.usecases",
        "axis.http",
    },
}  # fmt: skip
PACKAGES = sorted(ALLOWED, key=len, reverse=True)  # the longest prefix names a module's package


def package_of(module: str) -> str | None:
    """The package of ``ALLOWED`` a dotted module name belongs to (None: not ours)."""
    if module == "axis.__main__":
        return "axis.cli"  # ``python -m axis`` is the command line
    for package in PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports in functions count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # Absolute imports only: a relative one would slip past these rules unread.
            assert node.level == 0, f"{path}:{node.lineno}: a relative import; write it absolute"
            assert node.module is not None
            # "from axis.host import runtime" imports axis.host.runtime, not all of axis.host
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


SOURCES = sorted(p for top in ("axis", "nodes") for p in (ROOT / top).rglob("*.py"))


def allowed(package: str, target: str) -> bool:
    return any(target == a or target.startswith(a + ".") for a in ALLOWED[package])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_what_its_package_may(path: Path) -> None:
    package = package_of(module_name(path))
    assert package is not None, f"{path} is in no package of the layout: add it to ALLOWED"
    bad = set()
    for target in imports_of(path):
        owner = package_of(target)
        if owner is None or owner == package:
            continue
        if not allowed(package, target):
            bad.add(target)
    assert not bad, f"{package} may not import {sorted(bad)}"


def test_the_packages_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {package: set() for package in ALLOWED}
    for path in SOURCES:
        package = package_of(module_name(path))
        assert package is not None
        for target in imports_of(path):
            owner = package_of(target)
            if owner is not None and owner != package:
                graph[package].add(owner)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"the packages import each other in a cycle: {exc.args[1]}")
    assert order.index("axis.core") < order.index("axis.usecases") < order.index("axis.web")


def _forbidden(path: Path, forbidden: tuple[str, ...]) -> set[str]:
    return {
        name
        for name in imports_of(path)
        for prefix in forbidden
        if name == prefix or name.startswith(prefix + ".")
    }


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_no_io_framework(path: Path) -> None:
    bad = _forbidden(path, FORBIDDEN_IN_CORE)
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "axis" / "usecases").rglob("*.py")), ids=lambda p: p.name
)
def test_the_use_cases_speak_neither_http_nor_sql(path: Path) -> None:
    bad = _forbidden(path, FORBIDDEN_IN_USECASES)
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.process  # imports in a fresh interpreter
def test_an_agencys_software_does_not_load_the_hub() -> None:
    """``axis-node`` (client, push endpoint, command line) runs without the hub's web layer,
    its store or its use cases: measured by what importing it actually loads."""
    probe = (
        "import json, sys; import nodes.cli, nodes.client, nodes.listen;"
        " print(json.dumps(sorted(m for m in sys.modules if m.startswith(('axis', 'nodes')))))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
    )
    allowed = ("axis", "axis.errors", "axis.core", "axis.http", "axis.host", "axis.host.runtime")
    hub_side = [
        m
        for m in loaded
        if m.startswith("axis") and not (m in allowed or m.startswith(("axis.core.", "axis.http.")))
    ]
    assert not hub_side, f"an agency's software loads the hub's {hub_side}"
