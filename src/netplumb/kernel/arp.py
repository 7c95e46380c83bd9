"""ARP probing and announcing on an interface, from an AF_PACKET socket (RFC 5227).

The socket lives in the namespace the calling thread is in: for a LAN, the host's own (bound
to the bridge, or to the parent of the macvlans); for an announcement, the guest's.
"""

from __future__ import annotations

import errno as _errno
import os
import select
import socket
import time

from netplumb.errors import KernelError
from netplumb.lan import arp as packets
from netplumb.model.ip import IP
from netplumb.model.mac import Mac

PACKET_OUTGOING = 4


def _open(ifname: str) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(packets.ETH_P_ARP))
    except OSError as exc:
        raise KernelError("cannot open an ARP socket", exc.errno or _errno.EPERM) from None
    try:
        sock.bind((ifname, packets.ETH_P_ARP))
    except OSError as exc:
        sock.close()
        raise KernelError(f'cannot send ARP on "{ifname}"', exc.errno or _errno.ENODEV) from None
    return sock


def _mac_of(sock: socket.socket, ifname: str) -> Mac:
    addr = sock.getsockname()
    mac = addr[4] if len(addr) > 4 else b""
    if len(mac) != 6:
        raise KernelError(f'"{ifname}" has no Ethernet address to probe with', _errno.EINVAL)
    return Mac(mac)


def probe(ifname: str, target: IP, timing: packets.Timing) -> Mac | None:
    """Probe ``target`` on ``ifname``; the MAC of whoever holds it, or None when free."""
    sock = _open(ifname)
    try:
        own = _mac_of(sock, ifname)
        frame = packets.probe(own, target)
        sent = 0
        next_send = time.monotonic()
        deadline = next_send + timing.total
        while True:
            now = time.monotonic()
            if sent < timing.count and now >= next_send:
                _send(sock, frame, ifname)
                sent += 1
                next_send = now + timing.interval
            if now >= deadline and sent >= timing.count:
                return None
            wake = min(deadline, next_send) if sent < timing.count else deadline
            ready, _, _ = select.select([sock], [], [], max(0.0, wake - now))
            while ready:
                try:
                    data, addr = sock.recvfrom(2048, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                pkt = packets.parse(data)
                if pkt is not None:
                    holder = packets.conflict(pkt, target, own)
                    if holder is not None:
                        return holder
    finally:
        sock.close()


def announce(ifname: str, address: IP, timing: packets.Timing) -> None:
    """RFC 5227 announcements: ``address`` is now at this interface's MAC."""
    sock = _open(ifname)
    try:
        frame = packets.announcement(_mac_of(sock, ifname), address)
        for i in range(timing.announce):
            if i:
                time.sleep(timing.announce_interval)
            _send(sock, frame, ifname)
    finally:
        sock.close()


def _send(sock: socket.socket, frame: bytes, ifname: str) -> None:
    try:
        sock.send(frame)
    except OSError as exc:
        if exc.errno == _errno.ENETDOWN:
            raise KernelError(f'cannot send ARP on "{ifname}": it is down', exc.errno) from None
        raise KernelError(f'cannot send ARP on "{ifname}"', exc.errno or _errno.EIO) from None


def local_addresses() -> set[bytes]:
    """IPv4 addresses of this namespace (an address the host holds answers no probe of its
    own: the kernel does not reply to frames it sent)."""
    from netplumb.kernel.session import host_socket

    return {a.address for a in host_socket().addresses(socket.AF_INET)}


def timing_from_env() -> packets.Timing:
    return packets.parse_timing(os.environ.get("NETPLUMB_ARP_TIMING", ""))
