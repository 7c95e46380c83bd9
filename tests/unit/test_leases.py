"""The one allocator (``state/leases.py``) and its tables: leasing, releasing, listing, records
of the layout before it. No kernel objects: the state directory is a temporary one, and the
oracles are a model of the table (a dict), the files on disk and parallel processes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netplumb import state
from netplumb.cni import ipam
from netplumb.errors import Conflict
from netplumb.lan.pool import LanPool
from netplumb.model.ip import IP, Interface
from netplumb.model.network import make_network
from netplumb.ops import lanpool, networks
from netplumb.state import leases

T = "%test"
SPAN = (10, 19)  # keys "10".."19"


@pytest.fixture
def statedir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "state"
    monkeypatch.setattr(state, "_root", str(root))
    yield root


def _lowest(owner: str, reserved: int | None = None) -> str | None:
    with leases.lock(T) as lk:
        return leases.take_lowest(lk, T, owner, SPAN, str, lambda n: n == reserved)


# -- the model: any sequence of leases and releases ----------------------------------------

OWNERS = ["a", "b", "c@eth1"]
step = st.one_of(
    st.tuples(st.just("lowest"), st.sampled_from(OWNERS)),
    st.tuples(st.just("want"), st.sampled_from(OWNERS), st.integers(*SPAN)),
    st.tuples(st.just("release"), st.sampled_from(OWNERS), st.integers(*SPAN)),
    st.tuples(st.just("release_owner"), st.sampled_from(OWNERS)),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, max_size=40))
def test_any_sequence_matches_a_dict_of_the_table(
    steps: list[tuple[object, ...]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key is leased twice, a release frees, the lowest free key comes first, and each
    owner's list names exactly what it holds."""
    root = tmp_path / f"s{time.monotonic_ns()}"
    monkeypatch.setattr(state, "_root", str(root))
    model: dict[str, str] = {}
    for s in steps:
        kind, owner = s[0], str(s[1])
        if kind == "lowest":
            free = [str(n) for n in range(SPAN[0], SPAN[1] + 1) if str(n) not in model]
            got = _lowest(owner)
            assert got == (free[0] if free else None)
            if got is not None:
                model[got] = owner
        elif kind == "want":
            key = str(s[2])
            with leases.lock(T):
                theirs = leases.take(T, key, owner)
            assert theirs == (model[key] if model.get(key, owner) != owner else None)
            model.setdefault(key, owner)
        elif kind == "release":
            key = str(s[2])
            assert leases.release(T, key, owner) == (model.get(key) == owner)
            if model.get(key) == owner:
                del model[key]
        else:
            mine = {k for k, o in model.items() if o == owner}
            assert leases.release_owner(owner) == len(mine)
            model = {k: o for k, o in model.items() if o != owner}
        assert leases.held(T) == model
        for o in OWNERS:
            assert sorted(k for _t, k in leases.leases_of(o)) == sorted(
                k for k, h in model.items() if h == o
            )


def test_a_reserved_key_is_never_leased_and_the_hint_skips_it(statedir: Path) -> None:
    assert [_lowest("a", reserved=10) for _ in range(3)] == ["11", "12", "13"]
    leases.release(T, "12", "a")
    assert _lowest("b", reserved=10) == "12"  # the release lowered the hint
    assert _lowest("b", reserved=10) == "14"


def test_a_key_refused_for_now_is_tried_again_next_time(statedir: Path) -> None:
    busy = {"10"}  # a port a process holds, say
    with leases.lock(T) as lk:
        assert leases.take_lowest(lk, T, "a", SPAN, str, usable=lambda k: k not in busy) == "11"
    with leases.lock(T) as lk:
        assert leases.take_lowest(lk, T, "a", SPAN, str) == "10"


def test_one_owner_in_several_tables_is_released_at_once(statedir: Path) -> None:
    state.write(make_network("n1", "npt-l1", "10.61.0.0/24").to_record(), "networks", "n1")
    owner = "pid:7:1@eth1"
    assert str(networks.lease("n1", owner)) == "10.61.0.2"
    with leases.lock(T):
        assert leases.take(T, "15", owner) is None
    assert sorted(leases.leases_of(owner)) == [("%test", "15"), ("n1", "10.61.0.2")]
    assert networks.leases_of(owner) == [("n1", "10.61.0.2")]  # its network addresses only
    assert leases.release_owner(owner) == 2
    assert leases.held(T) == {} and networks.leases("n1") == {}
    assert not (statedir / leases.BY_OWNER / owner).exists()


def test_releasing_network_addresses_keeps_the_owners_other_leases(statedir: Path) -> None:
    state.write(make_network("n1", "npt-l1", "10.61.0.0/24").to_record(), "networks", "n1")
    networks.lease("n1", "o")
    with leases.lock(T):
        leases.take(T, "15", "o")
    assert networks.release_many(["o"]) == 1
    assert leases.leases_of("o") == [(T, "15")]


def _racer(owner: str) -> list[str]:
    got = []
    for _ in range(3):
        key = _lowest(owner)
        if key is not None:
            got.append(key)
    return got


def test_twenty_processes_never_get_one_key_twice(statedir: Path) -> None:
    global SPAN  # noqa: PLW0603 -- a wider table for this test only (forked children see it)
    old, SPAN = SPAN, (1000, 1099)
    try:
        with multiprocessing.get_context("fork").Pool(20) as pool:
            got = pool.map(_racer, [f"p{i}" for i in range(20)])
    finally:
        SPAN = old
    flat = [k for keys in got for k in keys]
    assert len(flat) == 60 and len(set(flat)) == 60
    assert sorted(flat, key=int) == [str(n) for n in range(1000, 1060)]  # lowest first
    assert leases.held(T) == {k: f"p{i}" for i, keys in enumerate(got) for k in keys}


def test_the_hints_of_the_layout_before_are_ignored(statedir: Path) -> None:
    """A lock file with the relative offsets of the releases before (``"<v4> <v6>"``) is read
    as no hint: the lowest free address is still found."""
    state.write(make_network("n1", "npt-l1", "10.61.0.0/24").to_record(), "networks", "n1")
    state.ensure_dir(leases.LEASES)
    (statedir / leases.LEASES / "n1.lock").write_bytes(b"9 0".ljust(63) + b"\n")
    assert str(networks.lease("n1", "o")) == "10.61.0.2"


# -- records of the layout before the allocator --------------------------------------------

POOL = LanPool(
    Interface.parse("192.168.77.0/24"),
    IP.parse("192.168.77.200"),
    IP.parse("192.168.77.209"),
    IP.parse("192.168.77.1"),
    None,
    None,
)


def test_the_lan_pools_old_table_is_honoured_then_migrated(statedir: Path) -> None:
    now = time.time()
    old = {
        "192.168.77.200": ["g1@eth1", str(now)],
        "192.168.77.201": ["arp:02:00:00:00:00:09", str(now)],
        "192.168.77.202": ["arp:02:00:00:00:00:08", str(now - lanpool.ARP_HOLD - 5)],
        "192.168.77.203": ["lan-shim", str(now - 3600)],
    }
    state.write({"bridge": "x"}, "attach", "g1@eth1")
    state.write(old, "lan", "leases")
    listed = lanpool.leases()  # reading changes nothing
    assert listed["192.168.77.200"] == "g1@eth1" and len(listed) == 4
    assert (statedir / "lan" / "leases").exists()
    with pytest.raises(
        Conflict, match=r"192\.168\.77\.200 is already leased on the LAN \(by g1@eth1\)"
    ):
        lanpool.lease(POOL, "g2@eth1", IP.parse("192.168.77.200"), set())
    assert not (statedir / "lan" / "leases").exists()
    # the expired ARP hold went; the live one and the shim's lease stay
    assert str(lanpool.lease(POOL, "g2@eth1", None, set())) == "192.168.77.202"
    assert lanpool.leases() == {
        "192.168.77.200": "g1@eth1",
        "192.168.77.201": "arp:02:00:00:00:00:09",
        "192.168.77.202": "g2@eth1",
        "192.168.77.203": "lan-shim",
    }
    assert abs((leases.since(lanpool.TABLE, "192.168.77.200") or 0) - now) < 1  # its time kept
    lanpool.release_holder("lan-shim")
    assert "192.168.77.203" not in lanpool.leases()


def test_a_stale_lan_lease_goes_and_an_arp_hold_is_asked_again(statedir: Path) -> None:
    lanpool.lease(POOL, "dead@eth1", IP.parse("192.168.77.200"), set())  # no attach record
    entry = statedir / leases.LEASES / lanpool.TABLE / "192.168.77.200"
    old = time.time() - lanpool.STALE - 5
    os.utime(entry, (old, old), follow_symlinks=False)
    lanpool.release(IP.parse("192.168.77.201"), "nobody")  # not the holder: nothing
    lanpool.lease(POOL, "x@eth1", IP.parse("192.168.77.201"), set())
    lanpool.release(IP.parse("192.168.77.201"), "x@eth1", arp_holder=None)
    assert str(lanpool.lease(POOL, "g@eth1", None, set())) == "192.168.77.200"  # stale: freed
    lanpool.release(IP.parse("192.168.77.200"), "g@eth1", arp_holder=None)
    lanpool.lease(POOL, "h@eth1", IP.parse("192.168.77.205"), set())
    from netplumb.model.mac import Mac

    lanpool.release(IP.parse("192.168.77.205"), "h@eth1", arp_holder=Mac.parse("02:00:00:00:00:07"))
    assert lanpool.leases()["192.168.77.205"] == "arp:02:00:00:00:00:07"
    assert lanpool.lease(POOL, "h@eth1", IP.parse("192.168.77.205"), set())  # the probe decides
    lanpool.set_pool(POOL)
    with pytest.raises(Conflict, match="the LAN pool has leases: h@eth1"):
        lanpool.remove_pool()


def test_a_cni_pools_old_table_is_honoured_then_migrated(statedir: Path) -> None:
    gw = Interface.parse("10.88.0.1/24")
    state.write({"10.88.0.2": "cni:aaa:eth0", "10.88.0.4": "cni:bbb:eth0"}, ipam.POOLS, "mv")
    assert ipam.pool_owners("mv") == {"cni:aaa:eth0", "cni:bbb:eth0"}
    with pytest.raises(
        Conflict, match=r"10\.88\.0\.2 is already in use in network mv \(by cni:aaa:eth0\)"
    ):
        ipam.pool_lease("mv", gw, "cni:ccc:eth0", IP.parse("10.88.0.2"))
    assert str(ipam.pool_lease("mv", gw, "cni:ccc:eth0", None)) == "10.88.0.3"
    assert str(ipam.pool_lease("mv", gw, "cni:ddd:eth0", None)) == "10.88.0.5"
    assert not (statedir / ipam.POOLS / "mv").exists()
    ipam.pool_release("mv", "cni:aaa:eth0")
    assert ipam.pool_owners("mv") == {"cni:bbb:eth0", "cni:ccc:eth0", "cni:ddd:eth0"}
    assert str(ipam.pool_lease("mv", gw, "cni:eee:eth0", None)) == "10.88.0.2"


def test_the_records_written_by_the_release_before_read_as_they_are(statedir: Path) -> None:
    """Network address leases kept their layout: an entry and an owner's list written the way
    the release before wrote them are leased and released as the allocator's own."""
    state.write(make_network("n1", "npt-l1", "10.61.0.0/24").to_record(), "networks", "n1")
    os.makedirs(statedir / "leases.d" / "n1")
    os.symlink("pid:5:1", statedir / "leases.d" / "n1" / "10.61.0.2")
    os.makedirs(statedir / "leases.by-owner")
    (statedir / "leases.by-owner" / "pid:5:1").write_bytes(b"+n1@10.61.0.2\n")
    assert str(networks.lease("n1", "pid:6:1")) == "10.61.0.3"
    assert networks.leases_of("pid:5:1") == [("n1", "10.61.0.2")]
    assert networks.release_many(["pid:5:1"]) == 1
    assert str(networks.lease("n1", "pid:6:1")) == "10.61.0.2"
    assert networks.leases("n1") == {
        "10.61.0.2": "pid:6:1",
        "10.61.0.3": "pid:6:1",
    }
