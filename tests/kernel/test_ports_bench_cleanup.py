"""bench/ports.py leaves nothing behind when it fails once its servers run (issue 16).

Its lab starts nginx (a master and its workers, which drop to nobody and hold the run's error
log) in a netplumb guest, in plain namespaces and in a Docker container. A failure after all of
them started must still end every one: ``Lab.close`` removes them and reports what is left,
and bench/ports.py fails when that is not nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
try:
    import ports_lab
finally:
    sys.path.remove(str(ROOT / "bench"))

pytestmark = pytest.mark.kernel


def test_a_failure_after_every_server_started_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if (
        shutil.which("nginx") is None
        or subprocess.run(["docker", "info"], capture_output=True).returncode
    ):
        pytest.skip("needs nginx and a running dockerd")

    def fail(where: ports_lab.Where, host: str, port: int, seconds: float = 20) -> None:
        raise SystemExit(f"injected failure: {host}:{port} from {where.label}")

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lab = ports_lab.Lab("t16c", run_dir)
    monkeypatch.setattr(ports_lab, "wait_port", fail)
    try:
        with pytest.raises(SystemExit, match="injected failure"):
            lab.setup()
        seen = lab.leftovers()  # the check sees what runs: nginx's workers among them
        assert any("nginx: worker process" in line for line in seen), seen
        assert lab.container and lab.machine and lab.lan and lab.behind
    finally:
        left = lab.close()
    assert left == []
    assert not run_dir.exists()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "npb-t16c-" not in names
