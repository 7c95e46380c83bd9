"""deploy/systemd/netplumb-watch.service, checked by systemd's own ``systemd-analyze verify``.

These machines boot without systemd, but its tools are installed (Debian's ``systemd``):
``verify`` parses the unit, resolves its dependencies and checks that ``ExecStart`` is an
executable. The unit names the installed ``/usr/local/bin/netplumb``; the copy verified here
differs in that path alone (this checkout's ``.venv/bin/netplumb``). ``verify`` exits 0 even on
a line it ignores, so any output at all fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "netplumb-watch.service"
INSTALLED = "/usr/local/bin/netplumb"


def _verify(tmp_path: Path, text: str) -> str:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED, str(ROOT / ".venv" / "bin" / "netplumb")))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    return f"{proc.returncode}{proc.stdout}{proc.stderr}"


def test_the_watch_unit_verifies_cleanly(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} watch\n" in text
    assert _verify(tmp_path, text) == "0"


def test_the_check_fails_on_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Type=simple", "Type=simpel")
    assert "Failed to parse service type" in _verify(tmp_path, broken)
