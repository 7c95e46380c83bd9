"""The records of published ports (``portrecords.py``): a record followed by appended changes.

Publishing appends (no rewrite of an owner's other bindings); reading replays; unpublishing
writes the file compact once changes pile up; a change cut short by a crash is not there; a
record written by an older netplumb (one object, no changes) reads as before.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.errors import StateError
from netplumb.state import portrecords


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("NETPLUMB_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(state, "_root", None)
    portrecords._cache.clear()
    yield tmp_path
    monkeypatch.setattr(state, "_root", None)


def b(port: int, family: int = 4, owner: str = "host:web") -> dict[str, object]:
    return {
        "owner": owner,
        "guest": "web",
        "family": family,
        "host_ip": None,
        "host_port": port,
        "container_ip": "10.89.0.2" if family == 4 else "fd00::2",
        "container_port": 80,
        "proto": "tcp",
    }


def test_publishing_appends_and_reading_replays(state_dir: Path) -> None:
    assert portrecords.bindings("host:web") == []
    assert portrecords.add("host:web", "web", [b(8080), b(8080, 6)]) == -1  # created
    first = (state_dir / "ports" / "host:web").stat().st_size
    assert portrecords.add("host:web", "web", [b(8081)]) == first
    assert (state_dir / "ports" / "host:web").read_bytes().startswith(portrecords.MAGIC)
    assert portrecords.bindings("host:web") == [b(8080), b(8080, 6), b(8081)]
    assert (state_dir / "ports" / "host:web").stat().st_mode & 0o777 == 0o600
    assert portrecords.all_bindings() == [b(8080), b(8080, 6), b(8081)]


def test_an_append_costs_the_same_whatever_the_owner_holds(state_dir: Path) -> None:
    portrecords.add("host:web", "web", [b(p) for p in range(1000)])
    size = (state_dir / "ports" / "host:web").stat().st_size
    portrecords.add("host:web", "web", [b(5000)])
    grown = (state_dir / "ports" / "host:web").stat().st_size - size
    assert grown == 4 + len(marshal.dumps({"add": [b(5000)]}))


def test_undo_of_an_add(state_dir: Path) -> None:
    before = portrecords.add("host:web", "web", [b(8080)])
    portrecords.undo_add("host:web", before)
    assert not portrecords.exists("host:web")
    portrecords.add("host:web", "web", [b(8080)])
    before = portrecords.add("host:web", "web", [b(8081)])
    portrecords.undo_add("host:web", before)
    assert portrecords.bindings("host:web") == [b(8080)]


def test_drop_appends_then_compacts_and_removes_with_the_last(state_dir: Path) -> None:
    portrecords.add("host:web", "web", [b(1)])
    for port in range(2, 2 + portrecords.COMPACT_AFTER):
        portrecords.add("host:web", "web", [b(port)])
    path = state_dir / "ports" / "host:web"
    long = path.stat().st_size
    portrecords.drop("host:web", [b(1)])
    assert path.stat().st_size < long  # rewritten compact: one record, no changes
    data = path.read_bytes()
    assert data.startswith(portrecords.MAGIC)
    frame = data[len(portrecords.MAGIC) :]
    assert int.from_bytes(frame[:4], "little") == len(frame) - 4  # one frame: the record
    assert marshal.loads(frame[4:])["bindings"] == [b(p) for p in range(2, 66)]
    portrecords.drop("host:web", [b(2)])
    assert portrecords.bindings("host:web") == [b(p) for p in range(3, 66)]
    portrecords.drop("host:web", [b(p) for p in range(3, 66)])
    assert not path.exists()


def test_adds_are_compacted_once_they_outgrow_the_record(state_dir: Path) -> None:
    """Publishing one port after another appends; once the appended changes outgrow the record
    (an eighth of it, at least 16 KiB) the next add writes it compact first, so that reading a
    guest's 1,000 ports (which ``publish`` prints) replays a bounded number of changes. An add
    that compacted is undone as any other."""
    most, compacted = 0, 0
    for port in range(1, 1001):
        before = portrecords.add("host:web", "web", [b(port), b(port, 6)])
        changes = portrecords.load("host:web")[1]
        most = max(most, changes)
        if changes == 1 and port > 1:  # this add wrote the record compact, then appended
            compacted += 1
            portrecords.undo_add("host:web", before)
            assert portrecords.bindings("host:web") == [
                b(p, f) for p in range(1, port) for f in (4, 6)
            ]
            portrecords.add("host:web", "web", [b(port), b(port, 6)])
    assert portrecords.bindings("host:web") == [b(p, f) for p in range(1, 1001) for f in (4, 6)]
    assert most < 150 and compacted > 5  # 1,000 changes to replay without compaction


def test_a_change_cut_short_is_not_there(state_dir: Path) -> None:
    portrecords.add("host:web", "web", [b(8080)])
    path = state_dir / "ports" / "host:web"
    whole = len(path.read_bytes())
    portrecords.add("host:web", "web", [b(8081)])
    os.truncate(path, len(path.read_bytes()) - 5)  # a crash in the middle of a write
    assert portrecords.bindings("host:web") == [b(8080)]
    os.truncate(path, whole + 2)  # even within the frame's length
    assert portrecords.bindings("host:web") == [b(8080)]


def test_a_record_of_an_older_netplumb_reads_as_before(state_dir: Path) -> None:
    state.write({"owner": "host:web", "guest": "web", "bindings": [b(8080)]}, "ports", "host:web")
    assert portrecords.bindings("host:web") == [b(8080)]
    before = portrecords.add("host:web", "web", [b(8081)])  # written in this format first
    assert portrecords.bindings("host:web") == [b(8080), b(8081)]
    portrecords.undo_add("host:web", before)
    assert portrecords.bindings("host:web") == [b(8080)]


def test_a_damaged_record_is_one_line(state_dir: Path) -> None:
    os.makedirs(state_dir / "ports")
    (state_dir / "ports" / "host:web").write_bytes(b"\x00garbage")
    with pytest.raises(StateError, match=r"^cannot read netplumb record .*host:web: "):
        portrecords.bindings("host:web")
