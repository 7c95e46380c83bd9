"""``netplumb cni install``: every form of the plugin it writes answers VERSION (no kernel
needed), the example conflist is written once and never overwritten, and ``register`` wires
``netplumb cni`` into an argparse parser."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from netplumb.cli import cni as cli_cni
from netplumb.cni.install import CONFLIST, install
from netplumb.errors import NetplumbError


def version_of(plugin: Path) -> dict[str, object]:
    env = {"CNI_COMMAND": "VERSION", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.pop("NETPLUMB_STATE_DIR", None)
    proc = subprocess.run(
        [str(plugin)],
        input='{"cniVersion":"1.0.0"}',
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_launcher_and_example_conflist(tmp_path: Path) -> None:
    written = install(str(tmp_path / "bin"), str(tmp_path / "net.d"), client=False)
    plugin = tmp_path / "bin" / "netplumb-cni"
    modules = tmp_path / "bin" / "netplumb-cni.modules"
    assert written == [str(plugin), str(modules), str(tmp_path / "net.d" / CONFLIST)]
    assert plugin.read_text().startswith(f"#!{sys.executable} -SP\n")
    assert version_of(plugin)["cniVersion"] == "1.1.0"
    conflist = json.loads((tmp_path / "net.d" / CONFLIST).read_text())
    assert conflist["plugins"][0]["type"] == "netplumb-cni"
    (tmp_path / "net.d" / CONFLIST).write_text("{} ")
    again = install(str(tmp_path / "bin"), str(tmp_path / "net.d"), client=False)
    assert again == [str(plugin), str(modules)]
    assert (tmp_path / "net.d" / CONFLIST).read_text() == "{} "  # an admin's edits stay


def test_standalone_zip_application(tmp_path: Path) -> None:
    install(str(tmp_path), None, standalone=True, python=sys.executable)
    plugin = tmp_path / "netplumb-cni"
    assert plugin.read_bytes().startswith(f"#!{sys.executable} -S\n".encode())
    assert version_of(plugin)["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def test_standalone_modules_load_compiled(tmp_path: Path) -> None:
    # zipimport never writes a .pyc: without the compiled forms in the zip, every call compiled
    # every module it imported (84 ms a plain ADD, against 19 ms for the launcher).
    install(str(tmp_path), None, standalone=True, python=sys.executable)
    plugin = tmp_path / "netplumb-cni"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import netplumb.cni.plugin as p; "
        "print(p.__loader__.get_code('netplumb.cni.plugin').co_filename)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(plugin)], capture_output=True, text=True, check=True
    )
    # compiled from source, it would carry the zip's own path; from the .pyc, the one it was
    # built with
    assert out.stdout.split() == ["netplumb/cni/plugin.py"]
    with zipfile.ZipFile(plugin) as zf:
        names = set(zf.namelist())
        main = zf.read("__main__.py").decode()
    sources = {n for n in names if n.endswith(".py") and n != "__main__.py"}
    assert sources and all(n + "c" in names for n in sources)
    assert main.startswith("import gc\ngc.disable()\n")  # a one-shot process


def test_compiled_client_falls_back_to_python_without_an_agent(tmp_path: Path) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (scripts/setup.sh installs gcc)")
    install(str(tmp_path), None, client=True)
    plugin = tmp_path / "netplumb-cni"
    assert plugin.read_bytes()[:4] == b"\x7fELF"
    assert version_of(plugin)["cniVersion"] == "1.1.0"


def test_unwritable_directory_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NetplumbError, match=f"^cannot create {tmp_path}/file/bin: "):
        install(str(tmp_path / "file" / "bin"), None, client=False)


def test_register_wires_netplumb_cni() -> None:
    parser = argparse.ArgumentParser(prog="netplumb")
    subs = parser.add_subparsers(dest="command")
    cli_cni.register(subs)
    args = parser.parse_args(["cni", "install", "--dir", "/x", "--no-conf", "--client", "no"])
    assert (args.command, args.cni_command, args.dir, args.no_conf, args.client) == (
        "cni",
        "install",
        "/x",
        True,
        "no",
    )
    assert args.func is cli_cni.cmd_cni
    assert parser.parse_args(["cni", "agent"]).cni_command == "agent"


def test_pure_modules_and_a_lean_add_path() -> None:
    """config/types/jsonlite touch no kernel code; what an ADD imports has none of the costly
    modules (json 13 ms, re 10 ms, subprocess, argparse, dataclasses, ipaddress)."""
    code = (
        "import sys\n"
        "import netplumb.cni.config, netplumb.cni.types, netplumb.cni.jsonlite\n"
        "assert not [m for m in sys.modules if m.startswith('netplumb.kernel')], 'kernel'\n"
        "import netplumb.cni.plugin, netplumb.cni.records\n"
        "import netplumb.ops.engine, netplumb.ops.networks\n"
        "import netplumb.runtimes.guests, netplumb.model.attach, netplumb.model.addresses\n"
        "bad = {'json', 're', 'subprocess', 'argparse', 'dataclasses', 'ipaddress'}\n"
        "print(sorted(bad & set(sys.modules)))\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path.append({src!r})\n" + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr


def test_standalone_client_beside_its_plugin(tmp_path: Path) -> None:
    """``--standalone --client yes`` (the DaemonSet's): the client, linked statically, and the
    standalone plugin it falls back to beside it; mode connect: no agent, the plugin answers."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (scripts/setup.sh installs gcc)")
    written = install(
        str(tmp_path), None, standalone=True, client=True, agent="connect", python=sys.executable
    )
    plugin = tmp_path / "netplumb-cni"
    assert written == [str(plugin), str(tmp_path / "netplumb-cni.pyz")]
    assert plugin.read_bytes()[:4] == b"\x7fELF"
    env = {"CNI_COMMAND": "VERSION", "NETPLUMB_CNI_DEBUG": "1", "NETPLUMB_STATE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [str(plugin)], input="{}", env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["cniVersion"] == "1.1.0"
    assert proc.stderr == f"netplumb-cni: no agent at {tmp_path}/cni-agent.sock\n"


def test_invalid_agent_mode_is_one_clear_error(tmp_path: Path) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (scripts/setup.sh installs gcc)")
    with pytest.raises(NetplumbError, match=r"^invalid agent mode 'always': auto, connect or off$"):
        install(str(tmp_path), None, client=True, agent="always")
    assert list(tmp_path.iterdir()) == []
