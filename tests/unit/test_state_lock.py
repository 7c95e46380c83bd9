"""``state.lock.Lock``, the one lock every table of the records takes: exclusive while held,
free once the block ends (even when it raises), its file 0600 in a 0700 directory."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.state.lock import Lock


@pytest.fixture
def statedir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "state"
    monkeypatch.setattr(state, "_root", str(root))
    yield root


def _try_lock(path: Path) -> bool:
    """Whether another open file description gets the lock now (never waits)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_held_for_the_block_and_released_after(statedir: Path) -> None:
    path = statedir / "leases.d" / "net1.lock"
    with Lock("leases.d", "net1.lock") as lock:
        assert lock.fd >= 0
        assert not _try_lock(path)
    assert lock.fd == -1
    assert _try_lock(path)


def test_released_when_the_block_raises(statedir: Path) -> None:
    with pytest.raises(RuntimeError), Lock("ports.lock"):
        raise RuntimeError("boom")
    assert _try_lock(statedir / "ports.lock")


def test_its_file_and_directories_are_roots_alone(statedir: Path) -> None:
    old = os.umask(0)  # a permissive umask must not open them
    try:
        with Lock("lan", "deep", "bridge.lock"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((statedir / "lan" / "deep" / "bridge.lock").stat().st_mode) == 0o600
    assert stat.S_IMODE((statedir / "lan" / "deep").stat().st_mode) == 0o700
    assert stat.S_IMODE((statedir / "lan").stat().st_mode) == 0o700


def test_two_tables_lock_independently(statedir: Path) -> None:
    with Lock("leases.d", "a.lock"), Lock("leases.d", "b.lock"):
        assert not _try_lock(statedir / "leases.d" / "a.lock")
        assert not _try_lock(statedir / "leases.d" / "b.lock")
