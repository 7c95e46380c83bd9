"""The lab helper's own rules (tests/lab.py), where no namespace is needed: cleanup order,
every step run, the environment netplumb gets, how a background process is ended."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab import REMOVE, STOP, Lab, stop_process


def test_cleanup_runs_newest_first_and_every_step_even_after_a_failure(tmp_path: Path) -> None:
    done: list[str] = []
    lab = Lab(tmp_path, host=None)
    lab.defer("first", lambda: done.append("first"))

    def broken() -> None:
        done.append("broken")
        raise OSError("device busy")

    lab.defer("broken step", broken)
    lab.defer("last", lambda: done.append("last"))
    with pytest.raises(AssertionError, match="lab cleanup failed:\nbroken step: device busy"):
        lab.close()
    assert done == ["last", "broken", "first"]
    lab.close()  # nothing left to undo: nothing runs twice
    assert done == ["last", "broken", "first"]


def test_processes_go_first_and_the_labs_own_objects_last(tmp_path: Path) -> None:
    """Whatever the order they were made in: a process still running (``netplumb watch``)
    would put back what the next steps remove, and netplumb's hosts use the namespaces."""
    done: list[str] = []
    with Lab(tmp_path, host=None) as lab:
        lab.defer("namespace a", lambda: done.append("namespace a"), REMOVE)
        lab.defer("hosts", lambda: done.append("hosts"))
        lab.defer("namespace b", lambda: done.append("namespace b"), REMOVE)
        lab.defer("process", lambda: done.append("process"), STOP)
        lab.defer("down", lambda: done.append("down"))
    assert done == ["process", "down", "hosts", "namespace b", "namespace a"]


def test_a_cancelled_step_does_not_run(tmp_path: Path) -> None:
    done: list[str] = []
    with Lab(tmp_path, host=None) as lab:
        keep = lab.defer("keep", lambda: done.append("keep"))
        drop = lab.defer("drop", lambda: done.append("drop"))
        lab.cancel(drop)
        assert keep is not drop
    assert done == ["keep"]


def test_a_constructor_failing_halfway_undoes_what_it_made(tmp_path: Path) -> None:
    done: list[str] = []

    class Half(Lab):
        def __init__(self) -> None:
            super().__init__(tmp_path, host=None)
            with self.closed_on_error():
                self.defer("made", lambda: done.append("undone"))
                raise RuntimeError("step two failed")

    with pytest.raises(RuntimeError, match="step two failed"):
        Half()
    assert done == ["undone"]


def test_the_environment_points_netplumb_at_the_labs_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETPLUMB_FAIL_AFTER", "2")
    monkeypatch.setenv("NETPLUMB_HOLDER", "c")
    by_dir = Lab(tmp_path, host=None)
    env = by_dir.environ({"EXTRA": "1"})
    assert env["NETPLUMB_STATE_DIR"] == str(tmp_path / "state") == str(by_dir.state)
    assert "NETPLUMB_FAIL_AFTER" not in env and env["EXTRA"] == "1"
    monkeypatch.setenv("NETPLUMB_HOLDER", "python")  # read when a command runs, not before
    assert by_dir.environ()["NETPLUMB_HOLDER"] == "python"

    by_root = Lab(tmp_path, host=None, state="root")
    env = by_root.environ()
    assert {k: v for k, v in env.items() if k.startswith("NETPLUMB_")} == {
        "NETPLUMB_STATE_ROOT": str(tmp_path / "netplumb")
    }


IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
READY = "print('ready', flush=True); time.sleep(60)"


@pytest.mark.parametrize(
    ("code", "grace", "status"),
    [
        ("import time; " + READY, 30, -signal.SIGTERM),  # ends on SIGTERM, within the grace
        (IGNORES_TERM + READY, 0.5, -signal.SIGKILL),  # ignores it: killed after the grace
        ("import time; " + READY, 0, -signal.SIGKILL),  # no grace: killed at once
    ],
)
def test_stop_process_terms_then_kills(code: str, grace: float, status: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    assert stop_process(proc, grace=grace) == status
    assert stop_process(proc, grace=grace) == status  # already ended: its status again
