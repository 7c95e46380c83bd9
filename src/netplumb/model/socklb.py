"""Published ports taken off NAT for the machine's and its guests' own connections: they are sent
to the guest when they are made (a cgroup ``connect4`` BPF program), not translated packet by
packet.

A connection from the machine to ``127.0.0.1:PORT`` of a published TCP port goes through the
kernel's DNAT otherwise: every packet of it is looked up in conntrack and rewritten, both ways,
and the loopback source must be masqueraded to leave ``lo``. Measured in ``bench/ports.py``, a
plain bridge with the fewest nftables rules for the same DNAT (the "floor") gives 0.86-0.91x
the requests/s of connecting to the guest directly, with a longer tail; netplumb's rules, the
same. The cost is the translation itself, so no rule can remove it: the socket must connect to
the guest in the first place. This is what Cilium's socket load balancer does.

- ``connect4`` (attached to the machine's cgroup v2 root): a TCP socket of the namespace whose
  netns cookie is in the *services* map, connecting to a key's address and port (say
  ``127.0.0.1:PORT``), connects to the value's guest address and port instead. It remembers
  the address the program changed, by socket cookie, in the *peers* map (LRU: a socket's
  entry needs no removal, a cookie is never reused).
- ``getpeername4``: such a socket still names the address it asked for as its peer, as it would
  through DNAT (and through Docker's proxy).

Who is redirected where (``clients``):

- the machine's own sockets, to ``127.0.0.1:PORT`` of a port published there or on every
  address, and to each of its other addresses (not 127/8) the port is published on;
- the sockets of the guests of the target's own network, to the same machine addresses (the
  hairpin path: a guest reaching a published port through the machine's address). A guest is
  only redirected on an open network: on an isolated one the guests must not reach each other
  directly, and the DNAT path is how they may reach a published port; on an internal one
  nothing of the machine's is theirs to reach. A guest of another network keeps the DNAT too
  (netplumb drops direct traffic between networks).

Only TCP: UDP has no connection to carry the change (a reply would come from the guest's
address). Only IPv4 (``connect6`` is not written). Every other client keeps the DNAT, as does
every process outside the cgroup the programs are attached to.

The guest sees the client's own address rather than a NAT source: the machine's source for
its connections (the bridge's address, as with the DNAT's loopback NAT source), a guest's own
address for a hairpin (a translated hairpin showed the network's hairpin source).

This module is pure: the programs' instructions and the maps' bytes. ``kernel/socklb.py``
loads, attaches and fills them.
"""

from __future__ import annotations

from _socket import inet_aton  # not ``socket``: its import costs a publication ~5 ms
from struct import pack

from netplumb.model import bpfasm as a
from netplumb.model.ip import IP, Interface

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

LOOPBACK = "127.0.0.1"
SERVICES = "np_services"  # map names: 15 bytes at most
PEERS = "np_peers"
CONNECT = "np_connect4"  # program names
PEERNAME = "np_peername4"
KEY_SIZE = 16  # netns cookie (u64), address (4 bytes), port (2 bytes, network order), 2 zero
VALUE_SIZE = 8  # address, port as above
PEER_KEY_SIZE = 8  # socket cookie
SERVICES_MAX = 65536
PEERS_MAX = 32768

# struct bpf_sock_addr (include/uapi/linux/bpf.h): offsets of the fields read and written
USER_IP4, USER_PORT, TYPE, SK = 4, 24, 32, 64
SK_SRC_IP4 = 24  # in struct bpf_sock
SOCK_STREAM = 1


WILDCARD = (None, "", "0.0.0.0")


class Reach:
    """Whose connections are redirected: the machine's namespace (its netns cookie) and its
    addresses other than 127/8, and each open network's subnet with the netns cookies of its
    guests. (Plain classes here: ``dataclasses`` and ``typing`` would cost every publication
    their import.)"""

    __slots__ = ("_nets", "addresses", "machine", "networks")

    def __init__(
        self,
        machine: int,
        addresses: tuple[str, ...] = (),
        networks: tuple[tuple[str, tuple[int, ...]], ...] = (),
    ) -> None:
        self.machine, self.addresses, self.networks = machine, addresses, networks
        self._nets = tuple((Interface.parse(s), c) for s, c in networks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reach) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Reach{self._fields()}"

    def _fields(self) -> tuple[object, ...]:
        return (self.machine, self.addresses, self.networks)

    def guests_of(self, ip: str) -> tuple[int, ...]:
        """The cookies of the guests on the open network whose subnet holds ``ip``."""
        addr = IP.parse(ip)
        out: list[int] = []
        for net, cookies in self._nets:
            if net.contains(addr):
                out += cookies
        return tuple(out)

    def guests(self) -> set[int]:
        return {c for _s, cookies in self.networks for c in cookies}


class Binding(tuple[str | None, int, str, int]):
    """A published IPv4 TCP port: where it is published (``host_ip`` None: every address) and
    the guest's address and port it goes to."""

    __slots__ = ()

    def __new__(
        cls, host_ip: str | None, host_port: int, container_ip: str, container_port: int
    ) -> Binding:
        return super().__new__(cls, (host_ip, host_port, container_ip, container_port))

    @property
    def host_ip(self) -> str | None:
        return self[0]

    @property
    def host_port(self) -> int:
        return self[1]

    @property
    def container_ip(self) -> str:
        return self[2]

    @property
    def container_port(self) -> int:
        return self[3]


def clients(reach: Reach, binding: Binding) -> list[tuple[int, str]]:
    """The (netns cookie, address) pairs whose connections to the binding's port are made to
    the guest (see the module's text); the machine's ``127.0.0.1`` first."""
    wildcard = binding.host_ip in WILDCARD
    out = [(reach.machine, LOOPBACK)] if wildcard or binding.host_ip == LOOPBACK else []
    addresses = [a for a in reach.addresses if wildcard or a == binding.host_ip]
    if addresses:
        for cookie in (reach.machine, *reach.guests_of(binding.container_ip)):
            out += [(cookie, a) for a in addresses]
    return out


def entries(bindings: Iterable[Binding], reach: Reach) -> dict[bytes, bytes]:
    """The services map's entries for these bindings: every binding's ``127.0.0.1`` entry
    before any other, so that a full map (``SERVICES_MAX``) leaves out the others first."""
    first: dict[bytes, bytes] = {}
    rest: dict[bytes, bytes] = {}
    for b in bindings:
        to = value(b.container_ip, b.container_port)
        for cookie, address in clients(reach, b):
            (first if address == LOOPBACK else rest)[key(cookie, b.host_port, address)] = to
    return {**first, **rest}


def endpoint(ip: str, port: int) -> bytes:
    """An address and port as the programs read and write them in ``bpf_sock_addr``."""
    return inet_aton(ip) + pack("!H", port) + b"\0\0"


def key(netns_cookie: int, host_port: int, address: str = LOOPBACK) -> bytes:
    return pack("<Q", netns_cookie) + endpoint(address, host_port)


def key_cookie(raw: bytes) -> int:
    """The netns cookie a services key belongs to."""
    return int.from_bytes(raw[:8], "little")


def value(container_ip: str, container_port: int) -> bytes:
    return endpoint(container_ip, container_port)


def _ld(dst: int, src: int, off: int) -> bytes:
    return a.ldx(32, dst, src, off)


def _st(dst: int, src: int, off: int) -> bytes:
    return a.stx(32, dst, src, off)


def _st64(dst: int, src: int, off: int) -> bytes:
    return a.stx(64, dst, src, off)


def _return_one() -> bytes:
    return a.ret(1)


def _stream_only(skip: int) -> bytes:
    """r6 = ctx; leave (``skip`` instructions on) unless the socket is TCP."""
    return a.mov(6, 1) + _ld(2, 6, TYPE) + a.ins(0x55, 2, off=skip, imm=SOCK_STREAM)


def _lookup(map_fd: int, key_at: int) -> bytes:
    """``r0 = lookup(map, fp + key_at)``."""
    return a.join(a.load_map(1, map_fd), a.mov(2, 10), a.add(2, key_at), a.call(a.MAP_LOOKUP))


def _write_found() -> bytes:
    """The entry found (r0: address, port) becomes the socket's address (ctx is r6)."""
    return a.join(_ld(1, 0, 0), _st(6, 1, USER_IP4), _ld(1, 0, 4), _st(6, 1, USER_PORT))


def connect_program(services_fd: int, peers_fd: int) -> bytes:
    """``connect4``: ``127.0.0.1:PORT`` of a published port becomes the guest's address."""
    body = a.join(
        a.mov(1, 6),
        a.call(a.NETNS_COOKIE),
        _st64(10, 0, -16),  # key: netns cookie at fp-16, address at fp-8, port at fp-4
        _ld(7, 6, USER_IP4),
        _st(10, 7, -8),
        _ld(8, 6, USER_PORT),
        _st(10, 8, -4),
        _lookup(services_fd, -16),
    )
    rewrite = a.join(
        _write_found(),
        _st(10, 7, -32),  # the address asked for, at fp-32, for getpeername
        _st(10, 8, -28),
        a.mov(1, 6),
        a.call(a.SOCKET_COOKIE),
        _st64(10, 0, -24),
        a.load_map(1, peers_fd),
        a.mov(2, 10),
        a.add(2, -24),
        a.mov(3, 10),
        a.add(3, -32),
        a.ins(0xB7, 4, imm=0),
        a.call(a.MAP_UPDATE),
    )
    found = a.ins(0x15, 0, off=len(rewrite) // 8, imm=0)  # no entry: leave the socket alone
    rest = (len(body) + len(found) + len(rewrite)) // 8
    # A socket bound to a loopback address cannot leave for the guest (nothing would translate
    # its source): the DNAT takes it, as before.
    bound = a.join(
        a.ins(0x79, 1, 6, SK),
        _ld(2, 1, SK_SRC_IP4),
        a.ins(0x57, 2, imm=0xFF),  # the address's first byte
        a.ins(0x15, 2, off=rest, imm=127),
    )
    return a.join(_stream_only(rest + len(bound) // 8), bound, body, found, rewrite) + _return_one()


def peername_program(peers_fd: int) -> bytes:
    """``getpeername4``: a redirected socket names the address it asked for."""
    body = a.join(
        a.mov(1, 6),
        a.call(a.SOCKET_COOKIE),
        _st64(10, 0, -8),
        _lookup(peers_fd, -8),
    )
    rewrite = _write_found()
    found = a.ins(0x15, 0, off=len(rewrite) // 8, imm=0)
    return (
        a.join(_stream_only((len(body) + len(found) + len(rewrite)) // 8), body, found, rewrite)
        + _return_one()
    )
