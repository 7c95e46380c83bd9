"""Address leases on disk (``netplumb.ops.networks``): one entry per address, an owner's list, the
lowest-free offset; checked with parallel processes, with ``ipaddress`` and the state files as
the oracle. No kernel objects: the network record is written directly (``lease`` only reads it).
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.errors import Conflict, InvalidValue
from netplumb.model.ip import IP
from netplumb.model.network import make_network
from netplumb.ops import networks

NET = "t"


@pytest.fixture
def statedir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "state"
    monkeypatch.setattr(state, "_root", str(root))
    state.write(
        make_network(NET, "npt-lease0", "10.50.0.0/24", subnet6="fd50::/64").to_record(),
        "networks",
        NET,
    )
    yield root


def _fork() -> multiprocessing.context.ForkContext:
    return multiprocessing.get_context("fork")


def _lease_some(owner: str, count: int, family: int) -> list[str]:
    return [str(networks.lease(NET, owner, family=family)) for _ in range(count)]


def _release(owner: str) -> int:
    return networks.release_many([owner])


def _want(owner: str, ip: str) -> str:
    try:
        networks.lease(NET, owner, IP.parse(ip))
    except Conflict as exc:
        return f"conflict: {exc}"
    return "ok"


def test_sixteen_parallel_processes_get_distinct_lowest_addresses(statedir: Path) -> None:
    owners = [f"pid:{i}:1" for i in range(16)]
    with _fork().Pool(16) as pool:
        v4 = pool.starmap(_lease_some, [(o, 6, 4) for o in owners])
        v6 = pool.starmap(_lease_some, [(o, 2, 6) for o in owners])
    got4 = [ip for ips in v4 for ip in ips]
    got6 = [ip for ips in v6 for ip in ips]
    assert len(set(got4)) == len(got4) == 96
    assert len(set(got6)) == len(got6) == 32
    # lowest free: exactly the 96 host addresses after the gateway, whatever the interleaving
    hosts = list(ipaddress.ip_network("10.50.0.0/24").hosts())[1:97]
    assert sorted(got4, key=ipaddress.ip_address) == [str(h) for h in hosts]
    assert sorted(ipaddress.ip_address(a) for a in got6) == [
        ipaddress.ip_address(f"fd50::{i:x}") for i in range(2, 34)
    ]
    table = networks.leases(NET)
    assert len(table) == 128
    for owner, mine4, mine6 in zip(owners, v4, v6, strict=True):
        assert sorted(ip for _n, ip in networks.leases_of(owner)) == sorted(mine4 + mine6)
        assert all(table[ip] == owner for ip in mine4 + mine6)


def test_parallel_release_frees_the_addresses_and_the_index(statedir: Path) -> None:
    owners = [f"pid:{i}:1" for i in range(16)]
    with _fork().Pool(16) as pool:
        got = pool.starmap(_lease_some, [(o, 4, 4) for o in owners])
        freed = pool.map(_release, owners[::2])
    assert freed == [4] * 8
    for owner in owners[::2]:
        assert networks.leases_of(owner) == []
        assert not (statedir / "leases.by-owner" / owner).exists()
    by_owner = dict(zip(owners, got, strict=True))
    kept = {ip for owner in owners[1::2] for ip in by_owner[owner]}
    assert set(networks.leases(NET)) == kept
    assert sorted(os.listdir(statedir / "leases.by-owner")) == sorted(owners[1::2])
    # the lowest address freed is the next one handed out
    lowest_freed = min(
        (ip for owner in owners[::2] for ip in by_owner[owner]), key=ipaddress.ip_address
    )
    assert str(networks.lease(NET, "pid:99:1")) == lowest_freed


def test_one_wanted_address_goes_to_one_of_sixteen_parallel_processes(statedir: Path) -> None:
    with _fork().Pool(16) as pool:
        results = pool.starmap(_want, [(f"pid:{i}:1", "10.50.0.77") for i in range(16)])
    assert results.count("ok") == 1
    winner = f"pid:{results.index('ok')}:1"
    for r in results:
        if r != "ok":
            assert r == (
                f"conflict: address 10.50.0.77 is already in use in network {NET} (by {winner})"
            )
    assert networks.leases(NET) == {"10.50.0.77": winner}
    assert networks.leases_of(winner) == [(NET, "10.50.0.77")]


def test_lowest_free_skips_static_leases_and_reuses_released_ones(statedir: Path) -> None:
    networks.lease(NET, "pid:1:1", IP.parse("10.50.0.3"))  # static, above the next free one
    assert str(networks.lease(NET, "pid:2:1")) == "10.50.0.2"
    assert str(networks.lease(NET, "pid:2:1")) == "10.50.0.4"  # .3 is taken: skipped
    networks.release_address(NET, "10.50.0.2", "pid:2:1")
    networks.release_address(NET, "10.50.0.2", "pid:9:1")  # not the holder: nothing happens
    assert networks.leases_of("pid:2:1") == [(NET, "10.50.0.4")]
    assert str(networks.lease(NET, "pid:3:1")) == "10.50.0.2"
    assert networks.leases(NET) == {
        "10.50.0.2": "pid:3:1",
        "10.50.0.3": "pid:1:1",
        "10.50.0.4": "pid:2:1",
    }


def test_leasing_again_what_one_holds_is_a_no_op(statedir: Path) -> None:
    ip = IP.parse("10.50.0.9")
    assert networks.lease(NET, "pid:1:1", ip) == ip
    assert networks.lease(NET, "pid:1:1", ip) == ip
    assert networks.leases_of("pid:1:1") == [(NET, "10.50.0.9")]


def test_errors_change_nothing(statedir: Path) -> None:
    with pytest.raises(Conflict, match=r"^address 10\.50\.0\.1 is not available in network t "):
        networks.lease(NET, "pid:1:1", IP.parse("10.50.0.1"))  # the gateway
    with pytest.raises(Conflict, match=r"^address 10\.60\.0\.5 is not available in network t "):
        networks.lease(NET, "pid:1:1", IP.parse("10.60.0.5"))
    assert networks.leases(NET) == {}
    assert networks.leases_of("pid:1:1") == []


def test_a_full_subnet_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "_root", str(tmp_path / "state"))
    state.write(make_network("s", "npt-lease1", "10.51.0.0/29").to_record(), "networks", "s")
    got = [str(networks.lease("s", f"pid:{i}:1")) for i in range(5)]
    assert got == [f"10.51.0.{i}" for i in range(2, 7)]
    with pytest.raises(InvalidValue, match=r"^no free address left in 10\.51\.0\.1/29$"):
        networks.lease("s", "pid:9:1")
    networks.release("s", "pid:3:1")
    assert str(networks.lease("s", "pid:9:1")) == "10.51.0.5"


def _die_once_linked(how: str) -> None:
    """In a child: lease an address and be killed (SIGKILL) the moment its entry exists."""
    import signal

    from netplumb.state import leases

    real = leases._link

    def link_then_die(table: str, key: str, owner: str) -> bool:
        made = real(table, key, owner)
        if made:
            os.kill(os.getpid(), signal.SIGKILL)
        return made

    leases._link = link_then_die
    if how == "lowest":
        networks.lease(NET, "host:killed", family=4)
    else:
        networks.lease(NET, "host:killed", IP.parse("10.50.0.77"))


@pytest.mark.parametrize("how", ["lowest", "wanted"])
def test_a_taker_killed_once_its_entry_exists_leaves_nothing_its_release_misses(
    statedir: Path, how: str
) -> None:
    # ``down`` after a ``kill -9`` of ``up`` once found a lease that the owner's list did not
    # name: the entry was made, the list's line not yet
    child = _fork().Process(target=_die_once_linked, args=(how,))
    child.start()
    child.join(30)
    assert child.exitcode == -9  # killed where it was meant to be
    held = {k: v for k, v in _held(statedir).items() if v == "host:killed"}
    assert len(held) == 1, held
    assert _release("host:killed") == 1
    assert {k: v for k, v in _held(statedir).items() if v == "host:killed"} == {}


def _held(root: Path) -> dict[str, str]:
    return {p.name: os.readlink(p) for p in (root / "leases.d" / NET).glob("*") if p.is_symlink()}
