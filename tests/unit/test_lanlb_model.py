"""The LAN path's pure parts: which entries the ports map gets, when a foreign firewall makes it
step aside, and the programs' instructions (labelled jumps resolved, every jump inside)."""

from __future__ import annotations

from struct import unpack_from

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.model import bpfasm as a
from netplumb.model import lanlb
from netplumb.model.socklb import Binding

LAN = lanlb.Lan(
    uplinks=(("192.0.2.1", 2), ("198.51.100.1", 3)),
    bridges=(("10.89.0.0/16", 7), ("10.90.0.0/24", 8)),
    guests=(("10.89.0.2", 21),),
)


def test_a_port_on_every_address_gets_an_entry_per_uplink_address() -> None:
    got = lanlb.entries([Binding(None, 8080, "10.89.0.2", 80)], LAN)
    assert got == {
        lanlb.key("192.0.2.1", 8080): lanlb.value("10.89.0.2", 80, 7, 21),
        lanlb.key("198.51.100.1", 8080): lanlb.value("10.89.0.2", 80, 7, 21),
    }
    raw = bytes([10, 89, 0, 2, 0, 80, 0, 0, 7, 0, 0, 0, 21, 0, 0, 0])
    assert got[lanlb.key("192.0.2.1", 8080)] == raw
    assert lanlb.value_bridge(got[lanlb.key("192.0.2.1", 8080)]) == 7


def test_a_port_on_one_address_gets_that_address_only() -> None:
    got = lanlb.entries([Binding("198.51.100.1", 9000, "10.90.0.5", 9000)], LAN)
    # a guest whose veth is not known: 0, the bridge delivers
    assert got == {lanlb.key("198.51.100.1", 9000): lanlb.value("10.90.0.5", 9000, 8, 0)}


@pytest.mark.parametrize(
    "binding",
    [
        Binding("127.0.0.1", 8080, "10.89.0.2", 80),  # loopback only: no LAN reaches it
        Binding("192.0.2.99", 8080, "10.89.0.2", 80),  # an address of no uplink
        Binding(None, 8080, "172.16.0.2", 80),  # a guest on no bridge of the lan
    ],
)
def test_bindings_no_lan_reaches_get_no_entry(binding: Binding) -> None:
    assert lanlb.entries([binding], LAN) == {}


@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, "192.0.2.1", "198.51.100.1", "127.0.0.1"]),
            st.integers(1, 65535),
            st.sampled_from(["10.89.0.2", "10.89.3.4", "10.90.0.9", "172.16.0.1"]),
            st.integers(1, 65535),
        ),
        max_size=6,
    )
)
def test_every_entry_is_an_uplink_address_and_a_bridge_holding_the_guest(
    raw: list[tuple[str | None, int, str, int]],
) -> None:
    uplink_addresses = {a for a, _i in LAN.uplinks}
    for key, value in lanlb.entries([Binding(*r) for r in raw], LAN).items():
        address = ".".join(str(b) for b in key[:4])
        assert address in uplink_addresses
        assert key[6:] == b"\0\0" and len(key) == lanlb.KEY_SIZE
        assert len(value) == lanlb.VALUE_SIZE
        guest = ".".join(str(b) for b in value[:4])
        assert LAN.bridge_of(guest) == lanlb.value_bridge(value)


DOCKER_USER = [
    "-N DOCKER-USER",
    '-A DOCKER-USER -i np0 -m comment --comment "netplumb:network:np0" -j ACCEPT',
    "-A DOCKER-USER -j RETURN",
]
OURS = [("inet", "netplumb", "raw_prerouting", "prerouting")]
DOCKERS = [("ip", "filter", "FORWARD", "forward"), ("ip", "raw", "PREROUTING", "prerouting")]


def test_netplumbs_and_dockerds_own_firewall_leave_the_lan_path_on() -> None:
    assert lanlb.foreign_filter(OURS, None, False) is None
    assert lanlb.foreign_filter([*OURS, *DOCKERS], DOCKER_USER, False) is None
    # chains at other hooks filter nothing a DNATed connection crosses
    assert lanlb.foreign_filter([("inet", "ufw", "input", "input")], None, False) is None


@pytest.mark.parametrize(
    ("chains", "docker_user", "legacy", "why"),
    [
        (
            [("inet", "firewalld", "filter_FORWARD", "forward")],
            None,
            False,
            "the forward chain inet firewalld filter_FORWARD",
        ),
        (
            [*DOCKERS, ("ip", "mangle", "PREROUTING", "prerouting")],
            DOCKER_USER,
            False,
            "the prerouting chain ip mangle PREROUTING",
        ),
        # ip filter FORWARD is dockerd's only where its DOCKER-USER is
        (DOCKERS, None, False, "the forward chain ip filter FORWARD"),
        (
            DOCKERS,
            [*DOCKER_USER[:2], "-A DOCKER-USER -s 192.0.2.66/32 -j DROP", DOCKER_USER[2]],
            False,
            "a rule in DOCKER-USER (-A DOCKER-USER -s 192.0.2.66/32 -j DROP)",
        ),
        ([], None, True, "a legacy iptables filter table"),
    ],
)
def test_a_foreign_firewall_makes_the_lan_path_step_aside(
    chains: list[tuple[str, str, str, str]], docker_user: list[str] | None, legacy: bool, why: str
) -> None:
    assert lanlb.foreign_filter(chains, docker_user, legacy) == why


def _jumps(code: bytes) -> list[tuple[int, int]]:
    """(pc, target) of every jump, for the instructions' class JMP (0x05)."""
    out = []
    pc = 0
    while pc * 8 < len(code):
        op, _regs, off, _imm = unpack_from("<BBhi", code, pc * 8)
        if op == 0x18:  # a 16-byte load
            pc += 2
            continue
        if op & 0x07 == 0x05 and op not in (a.CALL, a.EXIT):
            out.append((pc, pc + 1 + off))
        pc += 1
    return out


@pytest.mark.parametrize("program", [lanlb.in_program(3, 4), lanlb.out_program(4)])
def test_the_programs_jumps_land_inside_and_they_end_in_exit(program: bytes) -> None:
    assert len(program) % 8 == 0
    slots = len(program) // 8
    jumps = _jumps(program)
    assert jumps
    for pc, target in jumps:
        assert pc < target < slots, (pc, target)  # forward only: no loop
    assert program[-8] == a.EXIT


def test_labels_resolve_forward_and_backward() -> None:
    p = a.Program()
    p.label("top")
    p.emit(a.mov_imm(0, 1))
    p.jump(a.JEQ_IMM, "end", 0, 1)
    p.emit(a.load_map(1, 5))  # two slots
    p.jump(a.JA, "top")
    p.label("end")
    p.emit(a.ins(a.EXIT))
    code = p.build()
    assert unpack_from("<BBhi", code, 8) == (a.JEQ_IMM, 0, 3, 1)  # over the load and the JA
    assert unpack_from("<BBhi", code, 32) == (a.JA, 0, -5, 0)
    with pytest.raises(ValueError, match="placed twice"):
        p.label("top")
