"""What a wheel carries: every package of the source tree, the XSDs and the static pages.

An editable install (``make``'s) finds any module in the checkout, so a package left out of
``pyproject.toml`` only shows once Axis is installed from a wheel: ``axis simulate`` then
failed with ``No module named 'nodes.sim'``. CI also installs the wheel into a fresh virtual
environment and runs the commands from it (``.ci/run``); this test is the quick half.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.process
NOT_SOURCES = (".*", "build", "dist", "*.egg-info", "__pycache__", "demo-*", "axis-data")


def source_packages() -> set[str]:
    """Every folder of axis/ and nodes/ that holds Python modules, as a dotted name."""
    found = set()
    for top in ("axis", "nodes"):
        for module in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in module.parts:
                found.add(".".join(module.parent.relative_to(ROOT).parts))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # From a copy of the sources: setuptools reuses a build/ folder it finds, which would
    # carry modules an earlier build saw into this wheel.
    source = tmp_path_factory.mktemp("source") / "axis"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("axis_hub-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_every_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    packaged = {name.rsplit("/", 1)[0].replace("/", ".") for name in names if name.endswith(".py")}
    missing = source_packages() - packaged
    assert not missing, f"packages left out of the wheel: {sorted(missing)}"


def test_the_wheel_holds_the_schemas_and_the_pages(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for xsd in sorted((ROOT / "schemas").glob("*.xsd")):
        assert f"axis/schemas/{xsd.name}" in names
    assert "axis/web/static/dashboard.html" in names
    assert "axis/web/static/login.html" in names
