"""The per-owner list of attach records (``state.group_names``) and the index of published
host ports (``netplumb.state.portindex``): what they list must follow the records, checked on
the files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.state import Record, portindex


@pytest.fixture
def statedir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "state"
    monkeypatch.setattr(state, "_root", str(root))
    yield root


def test_an_owners_attach_records_are_listed_without_reading_the_others(statedir: Path) -> None:
    for owner in ("host:a", "host:b", "pid:12:345"):
        for ifname in ("eth0", "eth1"):
            state.write({"owner": owner, "ifname": ifname}, "attach", f"{owner}@{ifname}")
    state.write({"owner": "host:a", "ifname": "eth0", "again": True}, "attach", "host:a@eth0")
    assert state.group_names("attach", "host:a") == ["host:a@eth0", "host:a@eth1"]
    assert state.group_names("attach", "pid:12:345") == ["pid:12:345@eth0", "pid:12:345@eth1"]
    assert state.group_names("attach", "host:zz") == []
    # the list is one small file per owner, outside the attach folder tests and tools list
    assert sorted(p.name for p in (statedir / "attach").iterdir()) == sorted(
        f"{o}@{i}" for o in ("host:a", "host:b", "pid:12:345") for i in ("eth0", "eth1")
    )
    state.remove("attach", "host:a@eth0")
    assert [n for n in state.group_names("attach", "host:a") if state.read("attach", n)] == [
        "host:a@eth1"
    ]
    state.remove("attach", "host:a@eth1")
    assert state.group_names("attach", "host:a") == []
    assert not (statedir / "attach.by-owner" / "host:a").exists()
    assert state.group_names("attach", "host:b") == ["host:b@eth0", "host:b@eth1"]


def test_records_of_other_folders_are_not_listed(statedir: Path) -> None:
    state.write({"x": 1}, "hosts", "web@1")
    assert not (statedir / "hosts.by-owner").exists()


def _binding(owner: str, port: int, family: int = 4, host_ip: str | None = None) -> Record:
    return {"owner": owner, "proto": "tcp", "family": family, "host_port": port, "host_ip": host_ip}


def test_port_index_follows_added_and_dropped_bindings(statedir: Path) -> None:
    a = [_binding("host:a", 8080), _binding("host:a", 8080, 6)]
    b = [_binding("host:b", 9090, 4, "127.0.0.1"), _binding("host:b", 9090, 4, "10.0.0.1")]
    portindex.add(a)
    portindex.add(b)
    assert portindex.holders("tcp", 8080) == [(4, None), (6, None)]
    assert portindex.holders("tcp", 9090) == [(4, "127.0.0.1"), (4, "10.0.0.1")]
    assert portindex.holders("udp", 8080) == []
    assert portindex.holders("tcp", 8081) == []
    portindex.drop(b[:1])
    assert portindex.holders("tcp", 9090) == [(4, "10.0.0.1")]
    portindex.drop(a + b)
    assert portindex.holders("tcp", 8080) == portindex.holders("tcp", 9090) == []
    assert list((statedir / "leases.d" / "%ports").iterdir()) == []


def test_the_port_index_of_the_release_before_is_honoured_then_moved(
    statedir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ports.d/<proto>-<port>`` entries (the layout before the allocator) still hold their
    ports: the folder moves into the allocator's table the first time the index is used, and is
    merged into it when the table exists already."""
    monkeypatch.setattr(portindex, "_checked", [])
    os.makedirs(statedir / "ports.d")
    os.symlink("4@*@host:old", statedir / "ports.d" / "tcp-8080")
    assert portindex.holders("tcp", 8080) == [(4, None)]
    assert not (statedir / "ports.d").exists()
    monkeypatch.setattr(portindex, "_checked", [])
    os.makedirs(statedir / "ports.d")
    os.symlink("6@*@host:old", statedir / "ports.d" / "tcp-8080")
    os.symlink("4@127.0.0.1@host:old", statedir / "ports.d" / "udp-53")
    portindex.add([_binding("host:new", 9000)])
    assert portindex.holders("tcp", 8080) == [(4, None), (6, None)]
    assert portindex.holders("udp", 53) == [(4, "127.0.0.1")]
    assert not (statedir / "ports.d").exists()


def test_stale_port_index_entries_are_dropped(statedir: Path) -> None:
    live = _binding("host:a", 8080)
    stale = _binding("host:gone", 8080, 4, "127.0.0.1")
    portindex.add([live, stale])
    records = {"host:a": [live]}
    assert portindex.drop_stale(lambda owner: records.get(owner, [])) == 1
    assert portindex.holders("tcp", 8080) == [(4, None)]
    assert portindex.drop_stale(lambda owner: records.get(owner, [])) == 0
