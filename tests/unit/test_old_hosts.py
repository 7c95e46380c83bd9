"""Hosts started by a netplumb from before restart policies (issue 13 §5): their records have
no ``restart`` field and their holder is a plain process that takes no orders (no ``control``
file, no status; SIGUSR1 would kill it). ``stop`` and ``start`` refuse them with one line each,
and send them nothing: the host keeps running.

No namespace is needed to show it: the old holder was a ``sleep``, and so is this one; the
record is what that release wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb.kernel.proc import pid_start_time

BIN = Path(sys.executable).parent


@pytest.fixture
def old_host(tmp_path: Path) -> Iterator[tuple[dict[str, str], subprocess.Popen[bytes]]]:
    import marshal

    holder = subprocess.Popen(["sleep", "300"])
    try:
        start = pid_start_time(holder.pid)
        record = {  # an attach-era record: no "restart", no "files"
            "name": "old",
            "hostname": "old",
            "pid": holder.pid,
            "start": start,
            "holder": holder.pid,
            "holder_start": start,
            "netns": f"/proc/{holder.pid}/ns/net",
            "argv": ["sleep", "300"],
            "env": {},
            "user_env": [],
            "expose": [],
            "networks": [],
        }
        (tmp_path / "hosts").mkdir(mode=0o700)
        (tmp_path / "hosts" / "old").write_bytes(marshal.dumps(record))
        yield {**os.environ, "NETPLUMB_STATE_DIR": str(tmp_path)}, holder
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("verb", ["stop", "start"])
def test_stop_and_start_refuse_a_host_of_an_older_netplumb_in_one_line(
    old_host: tuple[dict[str, str], subprocess.Popen[bytes]], verb: str
) -> None:
    env, holder = old_host
    done = subprocess.run(
        [str(BIN / "netplumb"), verb, "old"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"netplumb {verb}: host old was started by an older netplumb: remove it and run it again\n"
    )
    assert holder.poll() is None  # sent nothing: it still runs


def test_a_host_whose_holder_is_gone_is_said_lost(
    old_host: tuple[dict[str, str], subprocess.Popen[bytes]],
) -> None:
    env, holder = old_host
    holder.kill()
    holder.wait()
    done = subprocess.run(
        [str(BIN / "netplumb"), "stop", "old"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stderr == (
        "netplumb stop: host old has lost its namespaces (its holder process is gone)\n"
    )
