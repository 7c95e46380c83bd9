"""The LAN pool's validation and allocation, and the MAC checks."""

from __future__ import annotations

import pytest

from netplumb.errors import InvalidValue
from netplumb.lan.checks import check_mac
from netplumb.lan.pool import LanPool, make_pool
from netplumb.model.ip import IP


def _pool() -> LanPool:
    return make_pool(
        "192.168.1.0/24",
        "192.168.1.200-192.168.1.239",
        "192.168.1.1",
        "192.168.1.100-192.168.1.150",
    )


def test_a_pool_and_its_candidates() -> None:
    pool = _pool()
    assert pool.size == 40
    assert str(next(pool.candidates(set()))) == "192.168.1.200"
    assert str(next(pool.candidates({"192.168.1.200"}))) == "192.168.1.201"
    assert LanPool.from_record(pool.to_record()) == pool
    assert [str(c) for c in pool.cidrs()] == [
        "192.168.1.200/29",
        "192.168.1.208/28",
        "192.168.1.224/28",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("192.168.1.0/24", "192.168.1.9-192.168.1.1"),
            "invalid pool range 192.168.1.9-192.168.1.1: 192.168.1.9 comes after 192.168.1.1",
        ),
        (
            ("192.168.1.0/24", "192.168.1.200"),
            "invalid pool range '192.168.1.200': expected FIRST-LAST",
        ),
        (
            ("192.168.1.0/24", "192.168.1.200-192.168.2.10"),
            "invalid pool range 192.168.1.200-192.168.2.10: "
            "192.168.2.10 is not a host address of 192.168.1.0/24",
        ),
        (("192.168.1.0/24", "192.168.1.250-192.168.1.255"), "is not a host address"),
        (
            ("192.168.1.5/24", "192.168.1.200-192.168.1.210"),
            "invalid LAN subnet 192.168.1.5/24: host bits set",
        ),
        (("fd00::/64", "fd00::5-fd00::9"), "invalid LAN subnet fd00::/64: IPv4 only"),
        (
            ("192.168.1.0/24", "192.168.1.200-192.168.1.210", "192.168.1.205"),
            "it contains the gateway 192.168.1.205",
        ),
        (
            ("192.168.1.0/24", "192.168.1.140-192.168.1.160", None, "192.168.1.100-192.168.1.150"),
            "it overlaps the LAN's DHCP range",
        ),
    ],
)
def test_bad_pools_are_refused(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        make_pool(*args)
    assert message in str(exc.value)


def test_a_wanted_address_is_checked() -> None:
    pool = _pool()
    pool.check_wanted(IP.parse("192.168.1.20"))  # in the subnet, outside the range: allowed
    for ip, message in [
        ("192.168.1.1", "address 192.168.1.1 is the LAN's gateway"),
        (
            "192.168.1.120",
            "address 192.168.1.120 is in the LAN's DHCP range 192.168.1.100-192.168.1.150",
        ),
        ("10.0.0.1", "address 10.0.0.1 is not a host address of the LAN 192.168.1.0/24"),
        ("192.168.1.255", "is not a host address"),
    ]:
        with pytest.raises(InvalidValue) as exc:
            pool.check_wanted(IP.parse(ip))
        assert message in str(exc.value)


def test_macs() -> None:
    mac, warning = check_mac("02:00:00:00:00:05")
    assert str(mac) == "02:00:00:00:00:05" and warning is None
    _mac, warning = check_mac("00:16:3e:00:00:05")
    assert warning is not None and warning.startswith(
        "warning: MAC 00:16:3e:00:00:05 is not locally administered"
    )
    with pytest.raises(InvalidValue, match="a multicast address cannot be assigned"):
        check_mac("01:00:5e:00:00:01")
