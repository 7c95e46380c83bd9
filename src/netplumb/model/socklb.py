"""Published ports on ``127.0.0.1`` taken off NAT: the machine's own connections are sent to the
guest when they are made (a cgroup ``connect4`` BPF program), not translated packet by packet.

A connection from the machine to ``127.0.0.1:PORT`` of a published TCP port goes through the
kernel's DNAT otherwise: every packet of it is looked up in conntrack and rewritten, both ways,
and the loopback source must be masqueraded to leave ``lo``. Measured in ``bench/ports.py``, a
plain bridge with the fewest nftables rules for the same DNAT (the "floor") gives 0.86-0.91x
the requests/s of connecting to the guest directly, with a longer tail; netplumb's rules, the
same. The cost is the translation itself, so no rule can remove it: the socket must connect to
the guest in the first place. This is what Cilium's socket load balancer does.

- ``connect4`` (attached to the machine's cgroup v2 root): a TCP socket of the namespace whose
  netns cookie is in the *services* map, connecting to a key's ``127.0.0.1:PORT``, connects to
  the value's guest address and port instead. It remembers the address the program changed,
  by socket cookie, in the *peers* map (LRU: a socket's entry needs no removal, a cookie is
  never reused).
- ``getpeername4``: such a socket still names ``127.0.0.1:PORT`` as its peer, as it would
  through DNAT (and through Docker's proxy).

Only TCP on ``127.0.0.1``, of ports published on every address or on ``127.0.0.1``: UDP has
no connection to carry the change (a reply would come from the guest's address), and another
local address of the machine would need the machine's addresses in the map. Those keep the
DNAT, as does every process outside the cgroup the programs are attached to.

This module is pure: the programs' instructions and the maps' bytes. ``kernel/socklb.py``
loads, attaches and fills them.
"""

from __future__ import annotations

from socket import inet_aton
from struct import pack

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
# helpers (enum bpf_func_id)
MAP_LOOKUP, MAP_UPDATE, SOCKET_COOKIE, NETNS_COOKIE = 1, 2, 46, 122


def qualifies(family: int, host_ip: str | None, proto: str) -> bool:
    """Whether a binding also gets the redirection: IPv4 TCP published on every address or on
    ``127.0.0.1``."""
    return family == 4 and proto == "tcp" and host_ip in (None, "", "0.0.0.0", LOOPBACK)


def endpoint(ip: str, port: int) -> bytes:
    """An address and port as the programs read and write them in ``bpf_sock_addr``."""
    return inet_aton(ip) + pack("!H", port) + b"\0\0"


def key(netns_cookie: int, host_port: int) -> bytes:
    return pack("<Q", netns_cookie) + endpoint(LOOPBACK, host_port)


def key_cookie(raw: bytes) -> int:
    """The netns cookie a services key belongs to."""
    return int.from_bytes(raw[:8], "little")


def value(container_ip: str, container_port: int) -> bytes:
    return endpoint(container_ip, container_port)


def _ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return pack("<BBhi", code, (src << 4) | dst, off, imm)


def _mov(dst: int, src: int) -> bytes:
    return _ins(0xBF, dst, src)


def _ldx32(dst: int, src: int, off: int) -> bytes:
    return _ins(0x61, dst, src, off)


def _stx32(dst: int, src: int, off: int) -> bytes:
    return _ins(0x63, dst, src, off)


def _stx64(dst: int, src: int, off: int) -> bytes:
    return _ins(0x7B, dst, src, off)


def _add(dst: int, imm: int) -> bytes:
    return _ins(0x07, dst, imm=imm)


def _call(helper: int) -> bytes:
    return _ins(0x85, imm=helper)


def _map(dst: int, fd: int) -> bytes:
    """``dst = map`` (a 16-byte load of the map's fd, which the verifier turns into the map)."""
    return _ins(0x18, dst, 1, imm=fd) + _ins(0)


def _return_one() -> bytes:
    return _ins(0xB7, 0, imm=1) + _ins(0x95)


def _stream_only(skip: int) -> bytes:
    """r6 = ctx; leave (``skip`` instructions on) unless the socket is TCP."""
    return _mov(6, 1) + _ldx32(2, 6, TYPE) + _ins(0x55, 2, off=skip, imm=SOCK_STREAM)


def _join(*parts: bytes) -> bytes:
    return b"".join(parts)


def _lookup(map_fd: int, key_at: int) -> bytes:
    """``r0 = lookup(map, fp + key_at)``."""
    return _join(_map(1, map_fd), _mov(2, 10), _add(2, key_at), _call(MAP_LOOKUP))


def _write_found() -> bytes:
    """The entry found (r0: address, port) becomes the socket's address (ctx is r6)."""
    return _join(_ldx32(1, 0, 0), _stx32(6, 1, USER_IP4), _ldx32(1, 0, 4), _stx32(6, 1, USER_PORT))


def connect_program(services_fd: int, peers_fd: int) -> bytes:
    """``connect4``: ``127.0.0.1:PORT`` of a published port becomes the guest's address."""
    body = _join(
        _mov(1, 6),
        _call(NETNS_COOKIE),
        _stx64(10, 0, -16),  # key: netns cookie at fp-16, address at fp-8, port at fp-4
        _ldx32(7, 6, USER_IP4),
        _stx32(10, 7, -8),
        _ldx32(8, 6, USER_PORT),
        _stx32(10, 8, -4),
        _lookup(services_fd, -16),
    )
    rewrite = _join(
        _write_found(),
        _stx32(10, 7, -32),  # the address asked for, at fp-32, for getpeername
        _stx32(10, 8, -28),
        _mov(1, 6),
        _call(SOCKET_COOKIE),
        _stx64(10, 0, -24),
        _map(1, peers_fd),
        _mov(2, 10),
        _add(2, -24),
        _mov(3, 10),
        _add(3, -32),
        _ins(0xB7, 4, imm=0),
        _call(MAP_UPDATE),
    )
    found = _ins(0x15, 0, off=len(rewrite) // 8, imm=0)  # no entry: leave the socket alone
    rest = (len(body) + len(found) + len(rewrite)) // 8
    # A socket bound to a loopback address cannot leave for the guest (nothing would translate
    # its source): the DNAT takes it, as before.
    bound = _join(
        _ins(0x79, 1, 6, SK),
        _ldx32(2, 1, SK_SRC_IP4),
        _ins(0x57, 2, imm=0xFF),  # the address's first byte
        _ins(0x15, 2, off=rest, imm=127),
    )
    return _join(_stream_only(rest + len(bound) // 8), bound, body, found, rewrite) + _return_one()


def peername_program(peers_fd: int) -> bytes:
    """``getpeername4``: a redirected socket names the address it asked for."""
    body = _join(
        _mov(1, 6),
        _call(SOCKET_COOKIE),
        _stx64(10, 0, -8),
        _lookup(peers_fd, -8),
    )
    rewrite = _write_found()
    found = _ins(0x15, 0, off=len(rewrite) // 8, imm=0)
    return (
        _join(_stream_only((len(body) + len(found) + len(rewrite)) // 8), body, found, rewrite)
        + _return_one()
    )
