"""The plain plugin's modules file (``cni/modules.py``): modules come from it while their
sources are unchanged, from their sources once changed, and a broken file (or one for another
Python) changes nothing; the launcher's lines start it with no lookup along ``sys.path``."""

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


def run(top: Path, file: Path, code: str, *args: str) -> list[str]:
    """``code`` in a fresh ``python -S`` with netplumb at ``top`` and the file active: its
    output's words."""
    head = "import sys; sys.path.append(sys.argv[1]); "
    head += "from netplumb.cni.modules import activate; activate(sys.argv[2]); "
    out = subprocess.run(
        [sys.executable, "-S", "-c", head + code, str(top), str(file), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return out.stdout.split()


def loaders(top: Path, file: Path, names: list[str]) -> list[str]:
    """Each module's loader, imported in a fresh process with the file active."""
    code = "import importlib; "
    code += "print(*(type(importlib.import_module(n).__loader__).__name__ for n in sys.argv[3:]))"
    return run(top, file, code, *names)


def test_modules_come_from_the_file_until_their_source_changes(tmp_path: Path) -> None:
    top = tree(tmp_path)
    file = tmp_path / "netplumb-cni.modules"
    file.write_bytes(modules.pack(str(top / "netplumb")))
    names = ["netplumb.cni.plugin", "netplumb.ops.engine", "netplumb.kernel.netlink"]
    assert loaders(top, file, names) == ["Finder", "Finder", "Finder"]
    engine = top / "netplumb" / "ops" / "engine.py"
    engine.write_text(engine.read_text() + "\nCHANGED = True\n")  # an upgrade
    assert loaders(top, file, names) == ["Finder", "SourceFileLoader", "Finder"]
    code = "import netplumb.ops.engine as e; print(e.CHANGED, e.__file__)"
    assert run(top, file, code) == ["True", str(engine)]


def test_a_module_from_the_file_is_the_module_from_its_source(tmp_path: Path) -> None:
    from netplumb.cni.types import SPEC_VERSION

    top = tree(tmp_path)
    file = tmp_path / "netplumb-cni.modules"
    file.write_bytes(modules.pack(str(top / "netplumb")))
    code = "import netplumb.cni.types as t, netplumb.state as s; "
    code += "print(t.__file__, s.__file__, s.__path__[0], t.SPEC_VERSION)"
    types_py = top / "netplumb" / "cni" / "types.py"
    state_init = top / "netplumb" / "state" / "__init__.py"
    assert run(top, file, code) == [
        str(types_py),
        str(state_init),
        str(state_init.parent),
        SPEC_VERSION,
    ]


def test_a_missing_or_foreign_file_leaves_the_ordinary_importer(tmp_path: Path) -> None:
    top = tree(tmp_path)
    junk = tmp_path / "junk.modules"
    junk.write_bytes(b"not a modules file")
    for file in (tmp_path / "absent.modules", junk):
        assert loaders(top, file, ["netplumb.cni.plugin"]) == ["SourceFileLoader"]


def boot(top: Path, file: Path, code: str) -> list[str]:
    """``code`` after the launcher's lines for ``file`` (``boot_lines``), in a fresh
    ``python -S -P`` with netplumb at ``top``: its output's words."""
    lines = ["import sys", f"sys.path.append({str(top)!r})", *modules.boot_lines(str(file)), code]
    out = subprocess.run(
        [sys.executable, "-S", "-P", "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return out.stdout.split()


def test_the_launchers_lines_start_the_file_without_a_path_lookup(tmp_path: Path) -> None:
    top = tree(tmp_path)
    file = tmp_path / "netplumb-cni.modules"
    file.write_bytes(modules.pack(str(top / "netplumb")))
    code = (
        "import netplumb.cni.plugin, netplumb.kernel.rtmsg, struct\n"
        "print(*(type(m.__loader__).__name__ for m in (sys.modules['netplumb'], "
        "sys.modules['netplumb.kernel'], sys.modules['netplumb.cni.plugin'], struct)))\n"
        # the ordinary importer never looked in netplumb's directory
        f"print([p for p in sys.path_importer_cache if p == {str(top)!r}])"
    )
    assert boot(top, file, code) == ["Finder", "Finder", "Finder", "Finder", "[]"]


def test_a_file_for_another_python_or_a_foreign_file_is_skipped(tmp_path: Path) -> None:
    top = tree(tmp_path)
    file = tmp_path / "netplumb-cni.modules"
    data = modules.pack(str(top / "netplumb"))
    other = data[: len(modules.MAGIC)] + b"cpython-399".ljust(modules.TAG_SIZE)
    code = "import netplumb.cni.plugin as p; print(type(p.__loader__).__name__)"
    for bad in (other + data[len(other) :], b"not a modules file", data[:40]):
        file.write_bytes(bad)
        assert boot(top, file, code) == ["SourceFileLoader"]
    file.write_bytes(data)
    assert boot(top, file, code) == ["Finder"]


def test_standard_library_modules_come_from_the_file_until_theirs_changes(tmp_path: Path) -> None:
    """An extension module (``_json``) is loaded from its recorded path; a source one
    (``struct``) from its recorded code; neither once the file on disk is not the recorded."""
    top = tree(tmp_path)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "npmodtest.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(lib))
    try:
        data = modules.pack(str(top / "netplumb"), stdlib=("_json", "npmodtest", "sys"))
    finally:
        sys.path.remove(str(lib))
    file = tmp_path / "netplumb-cni.modules"
    file.write_bytes(data)
    code = (
        f"sys.path.append({str(lib)!r})\n"
        "import _json, npmodtest\n"
        "print(type(_json.__loader__).__name__, _json.__file__ == _json.__spec__.origin,"
        " type(npmodtest.__loader__).__name__, npmodtest.VALUE)"
    )
    assert boot(top, file, code) == ["ExtensionFileLoader", "True", "Finder", "1"]
    (lib / "npmodtest.py").write_text("VALUE = 22\n")
    assert boot(top, file, code)[2:] == ["SourceFileLoader", "22"]
