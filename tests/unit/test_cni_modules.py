"""The plain plugin's modules file (``cni/modules.py``): modules come from it while their
sources are unchanged, from their sources once changed, and a broken file changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import netplumb
from netplumb.cni import modules

SRC = Path(netplumb.__file__).resolve().parent


def tree(tmp_path: Path) -> Path:
    """A copy of netplumb's sources (their mtimes kept) to change without touching the real."""
    top = tmp_path / "src"
    shutil.copytree(SRC, top / "netplumb", ignore=shutil.ignore_patterns("__pycache__"))
    return top


def loaders(top: Path, file: Path, names: list[str]) -> list[str]:
    """Import ``names`` in a fresh ``python -S`` with the file active: each one's loader."""
    code = (
        "import sys; sys.path.append(sys.argv[1]); "
        "from netplumb.cni.modules import activate; activate(sys.argv[2]); "
        "import importlib; "
        "print(' '.join(type(importlib.import_module(n).__loader__).__name__ "
        "for n in sys.argv[3:]))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(top), str(file), *names],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return out.stdout.split()


def test_modules_come_from_the_file_until_their_source_changes(tmp_path: Path) -> None:
    top = tree(tmp_path)
    file = tmp_path / "netplumb-cni.modules"
    file.write_bytes(modules.pack(str(top / "netplumb")))
    names = ["netplumb.cni.plugin", "netplumb.ops.engine", "netplumb.kernel.netlink"]
    assert loaders(top, file, names) == ["Finder", "Finder", "Finder"]
    engine = top / "netplumb" / "ops" / "engine.py"
    engine.write_text(engine.read_text() + "\nCHANGED = True\n")  # an upgrade
    assert loaders(top, file, names) == ["Finder", "SourceFileLoader", "Finder"]
    code = (
        "import sys; sys.path.append(sys.argv[1]); "
        "from netplumb.cni.modules import activate; activate(sys.argv[2]); "
        "import netplumb.ops.engine as e; print(e.CHANGED, e.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(top), str(file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["True", str(engine)]


def test_a_module_from_the_file_is_the_module_from_its_source(tmp_path: Path) -> None:
    top = tree(tmp_path)
    file = tmp_path / "netplumb-cni.modules"
    file.write_bytes(modules.pack(str(top / "netplumb")))
    code = (
        "import sys; sys.path.append(sys.argv[1]); "
        "from netplumb.cni.modules import activate; activate(sys.argv[2]); "
        "import netplumb.cni.types as t, netplumb.state as s; "
        "print(t.__file__, s.__file__, s.__path__[0], t.SPEC_VERSION)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(top), str(file)],
        capture_output=True,
        text=True,
        check=True,
    )
    types_py = top / "netplumb" / "cni" / "types.py"
    state_init = top / "netplumb" / "state" / "__init__.py"
    assert out.stdout.split() == [
        str(types_py),
        str(state_init),
        str(state_init.parent),
        modules_spec_version(),
    ]


def modules_spec_version() -> str:
    from netplumb.cni.types import SPEC_VERSION

    return SPEC_VERSION


def test_a_missing_or_foreign_file_leaves_the_ordinary_importer(tmp_path: Path) -> None:
    top = tree(tmp_path)
    junk = tmp_path / "junk.modules"
    junk.write_bytes(b"not a modules file")
    for file in (tmp_path / "absent.modules", junk):
        assert loaders(top, file, ["netplumb.cni.plugin"]) == ["SourceFileLoader"]
