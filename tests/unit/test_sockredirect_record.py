"""The socket redirection's reach record (``ops/sockredirect.py``): read back as written, and a
guest that goes leaves it (its cookie no longer listed, so no later publication writes entries
for it). The entries themselves are ``tests/kernel/test_socklb.py``'s, on real BPF maps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.model import socklb as model
from netplumb.ops import sockredirect


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("NETPLUMB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("NETPLUMB_SOCKLB_CGROUP", "off")  # no BPF here: the record only
    monkeypatch.setattr(state, "_root", None)
    yield tmp_path
    monkeypatch.setattr(state, "_root", None)


REACH = model.Reach(7, ("192.0.2.1",), (("10.89.0.0/16", (11, 12)), ("10.77.0.0/24", (13,))))


def test_the_record_reads_back_with_this_namespaces_cookie(state_dir: Path) -> None:
    sockredirect._store(REACH, {11, 12, 13, 14})
    stored = sockredirect._stored(99)
    assert stored is not None
    reach, written = stored
    assert reach == model.Reach(99, REACH.addresses, REACH.networks)
    assert written == {11, 12, 13, 14}


def test_guests_that_go_leave_the_record(state_dir: Path) -> None:
    sockredirect._store(REACH, {11, 12, 13})
    sockredirect.forget([12, 13])
    stored = sockredirect._stored(7)
    assert stored is not None
    assert stored[0].networks == (("10.89.0.0/16", (11,)),)  # an emptied network goes
    assert stored[1] == {11}
    assert stored[0].guests_of("10.89.0.5") == (11,)


def test_without_the_redirection_nothing_is_read_or_written(state_dir: Path) -> None:
    binding = {
        "owner": "host:web", "guest": "web", "family": 4, "host_ip": None, "host_port": 80,
        "container_ip": "10.89.0.2", "container_port": 8080, "proto": "tcp",
    }  # fmt: skip
    assert sockredirect.redirect([binding], []) is False
    assert sockredirect.refresh() is False
    assert state.read(*sockredirect.REACH) is None
