"""bench/scale.py leaves nothing behind when its worker fails midway (issue 13).

The worker starts hosts (holder processes in namespaces of their own) inside a throwaway
"machine" namespace. Deleting that namespace does not end them: a worker that failed after
some hosts used to leave their holders and commands running, with nothing left to name them.
Now the worker removes the hosts it recorded on an error, and ``bench/sweep.py`` removes what
a worker killed outright left (by the records, then by the run's marks). Checked from outside:
the processes of the machine, its namespaces and the run's directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# bench/ on the path only while its modules load: left there, bench/service.py would shadow
# the tests' own service package for every test collected after this file
sys.path.insert(0, str(ROOT / "bench"))
try:
    import scale
    import sweep
finally:
    sys.path.remove(str(ROOT / "bench"))

pytestmark = pytest.mark.kernel


def holders() -> set[int]:
    """The PIDs of netplumb hosts' holders on this machine, whoever made them."""
    out = subprocess.run(["pgrep", "-x", "netplumb-hold"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def marked() -> set[int]:
    """Processes carrying any benchmark run's mark."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if any(v.startswith(sweep.MARK.encode() + b"=") for v in f.read().split(b"\0")):
                    found.add(int(pid))
        except OSError:
            pass
    return found


def with_files_in(tmp: Path) -> set[int]:
    """Processes with a file of ``tmp`` open (a host's command writes its log there), the file
    deleted or not."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{tmp}/") for fd in fds):
                found.add(int(pid))
        except OSError:
            pass
    return found


def scale_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {
        line.split()[0] for line in out.splitlines() if line.endswith("-scale") or "-scale " in line
    }


@pytest.mark.parametrize("how", ["error", "kill"])
def test_a_worker_that_fails_midway_leaves_nothing(how: str, tmp_path: Path) -> None:
    before = (holders(), marked(), scale_namespaces())
    fail = {"NPB_SCALE_FAIL_AFTER": "3", "NPB_SCALE_FAIL_HOW": how}
    with pytest.raises(subprocess.CalledProcessError) as failed:
        scale.netplumb_side(5, str(tmp_path), fail)
    if how == "error":  # the worker got that far: three hosts were up
        assert "injected failure after 3 hosts" in failed.value.stderr
    else:  # killed: its own clean-up never ran, the sweep did it
        assert failed.value.returncode in (-9, 137)
    assert holders() <= before[0]
    assert marked() <= before[1]
    assert with_files_in(tmp_path) == set()  # the hosts' commands too
    assert scale_namespaces() <= before[2]
    assert list(tmp_path.iterdir()) == []


def test_the_sweep_ends_a_marked_process_no_record_names(tmp_path: Path) -> None:
    """A process of the run that netplumb never recorded (a worker killed before it wrote a
    host's record) is found by the run's mark, and only it: an unmarked one is left alone."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = sweep.marked(dict(os.environ), "npt-sweep-test")
    mine = subprocess.Popen(["sleep", "300"], env=env)
    other = subprocess.Popen(["sleep", "300"])
    logged = subprocess.Popen(["sleep", "300"], stdout=(run_dir / "log").open("w"))
    try:
        found = sweep.sweep("npt-sweep-nonexistent", run_dir, "npt-sweep-test", env)
        assert found == {"hosts": 0, "processes_killed": 2}
        assert mine.wait(timeout=10) == -9 and logged.wait(timeout=10) == -9
        assert other.poll() is None
        assert not run_dir.exists()
    finally:
        for p in (mine, other, logged):
            p.kill()
            p.wait()
