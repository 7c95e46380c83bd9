"""Published ports reached from the LAN, translated by two tc programs of netplumb's own instead
of the kernel's DNAT: the machine's netfilter (conntrack, NAT, routing) is not on their path.

Why: a LAN neighbour's connection to a published port comes from outside, so the socket
redirection (``model/socklb.py``) cannot reach it. Through the kernel's DNAT, every packet is
looked up in conntrack and translated, both ways, and routed; ``bench/ports.py`` measured
0.89-0.90x the requests/s of the same hops untranslated at 10-200 connections, and the floor
(the fewest nftables rules for the same DNAT) no better. This kernel has no flowtable
(``CONFIG_NF_FLOW_TABLE``) to shorten it. What Cilium does for NodePort services is done here:

- ``np_lan_in``, at tc ingress (tcx) of each *uplink* (a link holding one of the machine's
  addresses): an IPv4 TCP packet to an address and port published there (the *ports* map)
  gets the guest's address and port (checksums updated incrementally) and is delivered. Into
  the guest's namespace straight away where its veth is known and the route and neighbour
  table name the guest's MAC (``bpf_fib_lookup``): ``bpf_redirect_peer`` to the host end of
  its veth, past the bridge and the second trip through the backlog queue, as Cilium delivers
  to a pod. Otherwise it is handed to the guest network's bridge (``bpf_redirect_neigh``,
  which resolves the neighbour). Its connection is remembered in the *conns* map (LRU), keyed
  as its replies will read:
  guest address, client address, guest port, client port. The value holds what the replies
  need: the published address and port, the Ethernet addresses the packet came with (its
  source: the neighbour or the router it came through) and the uplink.
- ``np_lan_out``, at tc ingress of the host end of each published guest's veth (of its
  bridge where the veth is not known), so before the bridge: a reply whose connection is in
  *conns* gets the published address and port back, the Ethernet header the other way round,
  and leaves by the uplink it came in by (``bpf_redirect``).

What they leave to the kernel (its DNAT rules stay, and serve it as before): packets with IP
options, fragments, VLAN tags; IPv6 and UDP; packets not addressed to the uplink's own MAC.
Every packet they do not translate goes on (``TCX_NEXT``): other programs attached after
them still run.

A connection made directly to the guest (routed, untranslated) may meet the 4-tuple of an
earlier translated one, whose entry would then turn its replies: a SYN to anything else than a
published port deletes the entry its replies would find.

Going around netfilter means that no firewall rule sees these connections. So the LAN path
steps aside (``foreign_filter``) wherever a firewall other than netplumb's and dockerd's own
could filter them: a base chain of type filter at the ``prerouting`` or ``forward`` hook of
another table, a rule of the user's in Docker's ``DOCKER-USER`` chain (Docker's documented
place to restrict published ports), a legacy (x_tables) filter table nf_tables cannot see.
The DNAT then serves them, through those rules. (An ``input`` chain never saw them: a DNATed
connection is forwarded.) ``NETPLUMB_LAN_FASTPATH=off`` turns the LAN path off altogether.

This module is pure: the programs' instructions and the maps' bytes. ``kernel/lanlb.py``
loads, attaches and fills them.
"""

from __future__ import annotations

from struct import pack

from netplumb.model import bpfasm as a
from netplumb.model.ip import IP, Interface
from netplumb.model.socklb import WILDCARD, Binding, endpoint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

PORTS = "np_lan_ports"  # map names: 15 bytes at most
CONNS = "np_lan_conns"
IN = "np_lan_in"  # program names
OUT = "np_lan_out"
KEY_SIZE = 8  # address (4 bytes), port (2 bytes, network order), 2 zero
VALUE_SIZE = 16  # guest address, port as above, bridge ifindex, guest's veth ifindex (0: none)
CONN_KEY_SIZE = 12  # guest address, client address, guest port, client port
CONN_VALUE_SIZE = 24  # published address, port, 2 zero; Ethernet dst and src; uplink ifindex
PORTS_MAX = 65536
CONNS_MAX = 65536

# struct __sk_buff (include/uapi/linux/bpf.h)
PKT_TYPE, VLAN_PRESENT, IFINDEX, DATA, DATA_END = 4, 20, 40, 76, 80
# offsets in an Ethernet frame carrying IPv4 without options and TCP
ETH_TYPE, IP_VER_IHL, IP_FRAG, IP_PROTO, IP_CSUM, IP_SRC, IP_DST = 12, 14, 20, 23, 24, 26, 30
TCP_SPORT, TCP_DPORT, TCP_FLAGS, TCP_CSUM, HEADERS = 34, 36, 47, 50, 54
ETH_IPV4 = 0x0008  # 0x0800 as read from the frame (little-endian)
FRAG_MASK = 0xFF3F  # the MF flag and the fragment offset, as read
SYN, ACK = 0x02, 0x10
AF_INET = 2
# struct bpf_fib_lookup (64 bytes): where its fields are
FIB_SIZE, FIB_PROTO, FIB_IFINDEX, FIB_SRC, FIB_DST, FIB_SMAC, FIB_DMAC = 64, 1, 8, 16, 32, 52, 58
F_PSEUDO_HDR = 0x10  # BPF_F_PSEUDO_HDR: the address is in TCP's pseudo-header
TCX_NEXT = -1


class Lan:
    """Where the programs work: the uplinks (each machine address with its link's ifindex),
    the guest networks' bridges (subnet, bridge ifindex) and the guests' veths (address, the
    ifindex of the veth's end on the bridge). Plain class: see ``socklb.Reach``."""

    __slots__ = ("_nets", "_veths", "bridges", "guests", "uplinks")

    def __init__(
        self,
        uplinks: tuple[tuple[str, int], ...] = (),
        bridges: tuple[tuple[str, int], ...] = (),
        guests: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self.uplinks, self.bridges, self.guests = uplinks, bridges, guests
        self._nets = tuple((Interface.parse(s), i) for s, i in bridges)
        self._veths = dict(guests)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lan) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Lan{self._fields()}"

    def _fields(self) -> tuple[object, ...]:
        return (self.uplinks, self.bridges, self.guests)

    def veth_of(self, ip: str) -> int:
        """The ifindex of the host end of the veth of the guest at ``ip`` (0: not known)."""
        return self._veths.get(ip, 0)

    def bridge_of(self, ip: str) -> int | None:
        """The ifindex of the bridge whose subnet holds ``ip``."""
        addr = IP.parse(ip)
        for net, index in self._nets:
            if net.contains(addr):
                return index
        return None


# dockerd's own base chains: its FORWARD chain jumps to DOCKER-USER first (where netplumb's
# accepts are), its raw PREROUTING one (engine 28) drops packets to containers' addresses
DOCKER_BASE_CHAINS = {("ip", "filter", "FORWARD"), ("ip", "raw", "PREROUTING")}
DOCKER_USER_OWN = ("-N DOCKER-USER", "-A DOCKER-USER -j RETURN")


def foreign_filter(
    chains: Iterable[tuple[str, str, str, str]], docker_user: list[str] | None, legacy: bool
) -> str | None:
    """What, besides netplumb's and dockerd's own rules, could filter a LAN connection to a
    published port (the LAN path then steps aside), or None. ``chains``: the nf_tables base
    chains of type filter, as (family, table, chain, hook); ``docker_user``: ``iptables -S
    DOCKER-USER``'s lines, None without the chain; ``legacy``: an x_tables filter table
    exists."""
    if legacy:
        return "a legacy iptables filter table"
    for family, table, chain, hook in chains:
        if family not in ("ip", "inet") or hook not in ("prerouting", "forward"):
            continue
        if table == "netplumb" or (
            docker_user is not None and (family, table, chain) in DOCKER_BASE_CHAINS
        ):
            continue
        return f"the {hook} chain {family} {table} {chain}"
    for line in docker_user or ():
        if line.strip() and line not in DOCKER_USER_OWN and '"netplumb:' not in line:
            return f"a rule in DOCKER-USER ({line})"
    return None


def entries(bindings: Iterable[Binding], lan: Lan) -> dict[bytes, bytes]:
    """The ports map's entries: each uplink address a binding is published on, to the guest's
    address, port and bridge. A port published on a loopback address only, or whose guest is
    on no bridge of the ``lan``, has none."""
    out: dict[bytes, bytes] = {}
    for b in bindings:
        bridge = lan.bridge_of(b.container_ip)
        if bridge is None:
            continue
        wildcard = b.host_ip in WILDCARD
        for address, _index in lan.uplinks:
            if wildcard or address == b.host_ip:
                out[key(address, b.host_port)] = value(
                    b.container_ip, b.container_port, bridge, lan.veth_of(b.container_ip)
                )
    return out


def key(address: str, port: int) -> bytes:
    return endpoint(address, port)


def value(container_ip: str, container_port: int, bridge: int, veth: int = 0) -> bytes:
    return endpoint(container_ip, container_port) + pack("<II", bridge, veth)


def value_bridge(raw: bytes) -> int:
    return int.from_bytes(raw[8:12], "little")


def value_return(raw: bytes) -> int:
    """Where the replies of a ports map entry's connections are turned: the ifindex of the
    guest's veth (host end), or of its bridge where that is not known."""
    return int.from_bytes(raw[12:16], "little") or value_bridge(raw)


def _ip_tcp_only(p: a.Program, skip: str) -> None:
    """r6 = ctx; r2 = the frame (its headers in reach); goes to ``skip`` unless the packet is
    an untagged IPv4 TCP packet without options, not a fragment."""
    p.emit(
        a.mov(6, 1),
        a.ldx(32, 2, 6, DATA),
        a.ldx(32, 3, 6, DATA_END),
        a.mov(4, 2),
        a.add(4, HEADERS),
    )
    p.jump(a.JGT_REG, skip, 4, src=3)
    p.emit(a.ldx(32, 4, 6, VLAN_PRESENT))
    p.jump(a.JNE_IMM, skip, 4, 0)
    for size, off, want in ((16, ETH_TYPE, ETH_IPV4), (8, IP_VER_IHL, 0x45), (8, IP_PROTO, 6)):
        p.emit(a.ldx(size, 4, 2, off))
        p.jump(a.JNE_IMM, skip, 4, want)
    p.emit(a.ldx(16, 4, 2, IP_FRAG), a.ins(a.AND_IMM, 4, imm=FRAG_MASK))
    p.jump(a.JNE_IMM, skip, 4, 0)


def _call(helper: int, *args: bytes) -> bytes:
    """A helper call, its arguments set up by ``args``."""
    return a.join(*args, a.call(helper))


def _rewrite(
    old_ip: bytes, new_ip: bytes, ip_field: int, ip_at: bytes,
    old_port: bytes, new_port: bytes, port_field: int, port_at: bytes,
) -> bytes:  # fmt: skip
    """Replace an address and a port of the packet (ctx in r6), checksums updated: ``old_*``
    and ``new_*`` load values into r3 and r4, ``*_at`` points r3 at the new bytes."""
    return a.join(
        _call(a.L4_CSUM_REPLACE, a.mov(1, 6), a.mov_imm(2, TCP_CSUM), old_ip, new_ip,
              a.mov_imm(5, F_PSEUDO_HDR | 4)),
        _call(a.L3_CSUM_REPLACE, a.mov(1, 6), a.mov_imm(2, IP_CSUM), old_ip, new_ip,
              a.mov_imm(5, 4)),
        _call(a.SKB_STORE_BYTES, a.mov(1, 6), a.mov_imm(2, ip_field), ip_at, a.mov_imm(4, 4),
              a.mov_imm(5, 0)),
        _call(a.L4_CSUM_REPLACE, a.mov(1, 6), a.mov_imm(2, TCP_CSUM), old_port, new_port,
              a.mov_imm(5, 2)),
        _call(a.SKB_STORE_BYTES, a.mov(1, 6), a.mov_imm(2, port_field), port_at,
              a.mov_imm(4, 2), a.mov_imm(5, 0)),
    )  # fmt: skip


def in_program(ports_fd: int, conns_fd: int) -> bytes:
    """``np_lan_in`` (see the module's text). Its stack: the ports key at fp-8 (address,
    port), the conns key at fp-24 (guest address, client address, guest port, client port),
    the conns value at fp-48 (published address, port; Ethernet header turned round at
    fp-40; the uplink at fp-28)."""
    p = a.Program()
    _ip_tcp_only(p, "next")
    p.emit(a.ldx(32, 4, 6, PKT_TYPE))
    p.jump(a.JNE_IMM, "next", 4, 0)  # PACKET_HOST: addressed to this uplink
    p.emit(
        a.ldx(32, 4, 2, IP_DST), a.stx(32, a.FP, 4, -8), a.stx(32, a.FP, 4, -48),
        a.ldx(16, 4, 2, TCP_DPORT), a.stx(32, a.FP, 4, -4), a.stx(32, a.FP, 4, -44),
        a.ldx(32, 4, 2, IP_SRC), a.stx(32, a.FP, 4, -20),
        a.ldx(16, 4, 2, TCP_SPORT), a.stx(16, a.FP, 4, -14),
        a.ldx(32, 4, 6, IFINDEX), a.stx(32, a.FP, 4, -28),
        a.ldx(8, 9, 2, TCP_FLAGS),
    )  # fmt: skip
    # the replies' Ethernet header: this packet's source, then its destination (2-byte
    # moves: the stack is only written aligned)
    for i, at in enumerate((6, 8, 10, 0, 2, 4)):
        p.emit(a.ldx(16, 4, 2, at), a.stx(16, a.FP, 4, -40 + 2 * i))
    p.emit(_call(a.MAP_LOOKUP, a.load_map(1, ports_fd), a.stack_ptr(2, -8)))
    p.jump(a.JEQ_IMM, "other", 0, 0)
    p.emit(
        a.mov(7, 0),  # the guest: address, port, bridge
        a.ldx(32, 4, 7, 0), a.stx(32, a.FP, 4, -24),
        a.ldx(16, 4, 7, 4), a.stx(16, a.FP, 4, -16),
        a.mov(4, 9), a.ins(a.AND_IMM, 4, imm=SYN),
    )  # fmt: skip
    p.jump(a.JNE_IMM, "remember", 4, 0)  # a new connection: its entry is (made) new
    p.emit(_call(a.MAP_LOOKUP, a.load_map(1, conns_fd), a.stack_ptr(2, -24)))
    p.jump(a.JNE_IMM, "translate", 0, 0)  # known (or evicted meanwhile: made again)
    p.label("remember")
    p.emit(
        _call(
            a.MAP_UPDATE,
            a.load_map(1, conns_fd),
            a.stack_ptr(2, -24),
            a.stack_ptr(3, -48),
            a.mov_imm(4, 0),
        )
    )
    p.label("translate")
    p.emit(
        _rewrite(
            a.ldx(32, 3, a.FP, -8),
            a.ldx(32, 4, 7, 0),
            IP_DST,
            a.stack_ptr(3, -24),
            a.ldx(16, 3, a.FP, -4),
            a.ldx(16, 4, 7, 4),
            TCP_DPORT,
            a.stack_ptr(3, -16),
        ),
    )
    _deliver(p)
    # Not a published port. A new connection (SYN without ACK), made directly to a guest
    # maybe: the entry its replies would find (this 4-tuple, translated earlier) goes.
    p.label("other")
    p.emit(a.mov(4, 9), a.ins(a.AND_IMM, 4, imm=SYN | ACK))
    p.jump(a.JNE_IMM, "next", 4, SYN)
    p.emit(
        a.ldx(32, 4, a.FP, -8), a.stx(32, a.FP, 4, -24),
        a.ldx(16, 4, a.FP, -4), a.stx(16, a.FP, 4, -16),
        _call(a.MAP_DELETE, a.load_map(1, conns_fd), a.stack_ptr(2, -24)),
    )  # fmt: skip
    p.label("next")
    p.emit(a.ret(TCX_NEXT))
    return p.build()


def _deliver(p: a.Program) -> None:
    """The translated packet (ctx in r6, the ports map's value in r7) to the guest: into its
    namespace through its veth's peer when the veth is known and the FIB names the guest's
    MAC, else to its bridge, whose neighbour table resolves it. The FIB lookup's struct is at
    fp-112."""
    fib = -112
    p.emit(a.ldx(32, 8, 7, 12))
    p.jump(a.JEQ_IMM, "bridge", 8, 0)
    p.emit(
        *(a.st(64, a.FP, fib + 8 * i, 0) for i in range(FIB_SIZE // 8)),
        a.st(8, a.FP, fib, AF_INET), a.st(8, a.FP, fib + FIB_PROTO, 6),
        a.ldx(32, 4, a.FP, -28), a.stx(32, a.FP, 4, fib + FIB_IFINDEX),  # in by the uplink
        a.ldx(32, 4, a.FP, -20), a.stx(32, a.FP, 4, fib + FIB_SRC),  # the client
        a.ldx(32, 4, a.FP, -24), a.stx(32, a.FP, 4, fib + FIB_DST),  # the guest
        _call(a.FIB_LOOKUP, a.mov(1, 6), a.stack_ptr(2, fib), a.mov_imm(3, FIB_SIZE),
              a.mov_imm(4, 0)),
    )  # fmt: skip
    p.jump(a.JNE_IMM, "bridge", 0, 0)  # no route, no neighbour yet: the bridge resolves it
    p.emit(
        _call(a.SKB_STORE_BYTES, a.mov(1, 6), a.mov_imm(2, 0), a.stack_ptr(3, fib + FIB_DMAC),
              a.mov_imm(4, 6), a.mov_imm(5, 0)),
        _call(a.SKB_STORE_BYTES, a.mov(1, 6), a.mov_imm(2, 6), a.stack_ptr(3, fib + FIB_SMAC),
              a.mov_imm(4, 6), a.mov_imm(5, 0)),
        _call(a.REDIRECT_PEER, a.mov(1, 8), a.mov_imm(2, 0)),
        a.ins(a.EXIT),
    )  # fmt: skip
    p.label("bridge")
    p.emit(
        _call(a.REDIRECT_NEIGH, a.ldx(32, 1, 7, 8), a.mov_imm(2, 0), a.mov_imm(3, 0),
              a.mov_imm(4, 0)),
        a.ins(a.EXIT),
    )  # fmt: skip


def out_program(conns_fd: int) -> bytes:
    """``np_lan_out`` (see the module's text). Its stack: the conns key at fp-16."""
    p = a.Program()
    _ip_tcp_only(p, "next")
    p.emit(
        a.ldx(32, 7, 2, IP_SRC), a.stx(32, a.FP, 7, -16),
        a.ldx(32, 4, 2, IP_DST), a.stx(32, a.FP, 4, -12),
        a.ldx(32, 4, 2, TCP_SPORT), a.stx(32, a.FP, 4, -8),  # both ports
        a.ldx(16, 8, 2, TCP_SPORT),
        _call(a.MAP_LOOKUP, a.load_map(1, conns_fd), a.stack_ptr(2, -16)),
    )  # fmt: skip
    p.jump(a.JEQ_IMM, "next", 0, 0)
    p.emit(
        a.mov(9, 0),
        _rewrite(
            a.mov(3, 7), a.ldx(32, 4, 9, 0), IP_SRC, a.mov(3, 9),
            a.mov(3, 8), a.ldx(16, 4, 9, 4), TCP_SPORT, a.join(a.mov(3, 9), a.add(3, 4)),
        ),
        _call(a.SKB_STORE_BYTES, a.mov(1, 6), a.mov_imm(2, 0),
              a.join(a.mov(3, 9), a.add(3, 8)), a.mov_imm(4, 12), a.mov_imm(5, 0)),
        _call(a.REDIRECT, a.ldx(32, 1, 9, 20), a.mov_imm(2, 0)),
        a.ins(a.EXIT),
    )  # fmt: skip
    p.label("next")
    p.emit(a.ret(TCX_NEXT))
    return p.build()
