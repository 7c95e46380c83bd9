"""What a run killed before its cleanup leaves, found and removed by the next run
(``tests/leaks.py``; tests/conftest.py removes it when no other run is live).

The test makes the objects such a run leaves (it is that dead run, in effect): a namespace with
a process inside, a process of netplumb's started with a state under pytest's temporary root,
and a container netplumb would have made for that state, named as the demo names its own (not
``npt-``): only its label says it is a test's. Read with ``ip``, ``/proc`` and ``docker``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from lab import kill, run, stop_process
from leaks import LABEL_STATE, earlier_test_objects, find_leaks, pytest_temp_root, reclaim
from netns_helpers import BUSYBOX_IMAGE, busybox_image

pytestmark = [pytest.mark.kernel, pytest.mark.docker]


def test_a_killed_runs_namespace_process_and_container_are_found_and_removed(
    tmp_path: Path,
) -> None:
    busybox_image()
    state = tmp_path / "state"
    assert str(state).startswith(pytest_temp_root())
    tag = secrets.token_hex(3)
    ns, container = f"npt-{tag}-old", f"nptr{tag}"
    run(["ip", "netns", "add", ns])
    inside = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "1000"])
    holder = subprocess.Popen(
        ["bash", "-c", "exec -a netplumb-test-marker sleep 1000"],
        env={**os.environ, "NETPLUMB_STATE_DIR": str(state)},
    )
    try:
        run(["docker", "create", "--name", container, "--label", f"{LABEL_STATE}={state}",
             BUSYBOX_IMAGE, "sleep", "1000"], timeout=120)  # fmt: skip
        ours = [f"docker container {container}", f"netns {ns}", f"test process {holder.pid}"]
        found = find_leaks()
        assert set(ours) <= set(earlier_test_objects(found))
        assert (
            found[f"docker container {container}"] == f"docker container {container} (of {state})"
        )
        assert found[f"test process {holder.pid}"].endswith(
            f"netplumb-test-marker 1000 (of {state})"
        )

        assert reclaim(ours) == []

        assert holder.wait(timeout=10) == -9
        assert inside.wait(timeout=10) == -9  # killed: it kept the namespace alive
        assert ns not in run(["ip", "netns", "list"]).stdout.split()
        names = run(["docker", "ps", "-a", "--format", "{{.Names}}"]).stdout.split()
        assert container not in names
        assert not set(ours) & set(find_leaks())
    finally:
        kill(holder.pid)
        stop_process(inside)
        run(["ip", "netns", "del", ns], check=False)
        run(["docker", "rm", "-f", container], check=False, timeout=120)


def test_a_process_of_another_state_is_not_a_tests(tmp_path: Path) -> None:
    """netplumb's processes of a state outside pytest's temporary root (the README's demo, a
    developer's hosts) are never a test's: counted by kind, never removed."""
    proc = subprocess.Popen(
        ["bash", "-c", "exec -a netplumb-test-marker sleep 1000"],
        env={**os.environ, "NETPLUMB_STATE_DIR": "/run/netplumb/host"},
    )
    try:
        found = find_leaks()
        assert f"test process {proc.pid}" not in found
        assert any(line.startswith(f"process {proc.pid} ") for line in found.values())
        assert reclaim([f"test process {proc.pid}"]) == []  # not a test's: left running
        assert proc.poll() is None
    finally:
        stop_process(proc)
