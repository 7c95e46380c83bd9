"""Forwarding the names that are not netplumb's, for the name server (``ops/dnsserver.py``).

Upstreams are the first three ``nameserver`` lines of ``/etc/resolv.conf`` as this namespace
sees it (the machine's own, loopback ones included: the server runs there, not in a guest).
A query goes to the first; on a timeout (``TIMEOUT`` each), SERVFAIL or REFUSED it goes to the
next, and when none is left the asker gets SERVFAIL: never a hang. UDP queries go out over
one connected socket per upstream, their IDs rewritten so answers find their askers; at most
``MAX_IN_FLIGHT`` at once (more get SERVFAIL at once). TCP queries go out over TCP.
"""

from __future__ import annotations

import asyncio
import socket

from netplumb.model import dnswire as w

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Reply = Callable[[bytes], None]

TIMEOUT = 2.0  # seconds per upstream
MAX_UPSTREAMS = 3
MAX_IN_FLIGHT = 1024
RESOLV_CONF = "/etc/resolv.conf"


def upstreams(text: str) -> list[str]:
    """The name servers of a resolv.conf, at most three, in order."""
    out: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and words[1] not in out:
            out.append(words[1].partition("%")[0])
    return out[:MAX_UPSTREAMS]


def servfail(data: bytes) -> bytes | None:
    q = w.parse_query(data)
    return w.answer(q, w.SERVFAIL, authoritative=False) if q else w.refuse(data, w.SERVFAIL)


class _Pending:
    __slots__ = ("at", "data", "id", "reply", "timer")

    def __init__(self, id_: int, data: bytes, reply: Reply) -> None:
        self.id = id_  # the asker's
        self.data = data  # with our ID
        self.reply = reply
        self.at = -1  # the upstream asked now
        self.timer: asyncio.TimerHandle | None = None


class Forwarder:
    def __init__(self) -> None:
        self.upstreams: list[str] = []
        self.socks: dict[str, socket.socket] = {}
        self.pending: dict[int, _Pending] = {}
        self.next_id = 0
        self.tasks: set[asyncio.Task[None]] = set()  # TCP forwards under way

    def read_resolv_conf(self) -> None:
        try:
            with open(RESOLV_CONF) as f:
                found = upstreams(f.read())
        except OSError:
            found = []
        if found != self.upstreams:
            for ip in [ip for ip in self.socks if ip not in found]:
                self._close(ip)
            self.upstreams = found

    async def start(self) -> None:
        pass  # sockets are made on first use

    def _close(self, ip: str) -> None:
        sock = self.socks.pop(ip)
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()

    def _sock(self, ip: str) -> socket.socket:
        sock = self.socks.get(ip)
        if sock is None:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            sock.connect((ip, 53))
            self.socks[ip] = sock
            asyncio.get_running_loop().add_reader(sock.fileno(), self._answers, ip, sock)
        return sock

    def forward(self, data: bytes, reply: Reply, udp: bool) -> None:
        if not self.upstreams or (udp and len(self.pending) >= MAX_IN_FLIGHT):
            out = servfail(data)
            if out is not None:
                reply(out)
            return
        if not udp:
            task = asyncio.ensure_future(self._tcp(data, reply))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        for _ in range(65536):
            self.next_id = (self.next_id + 1) & 0xFFFF
            if self.next_id not in self.pending:
                break
        p = _Pending(int.from_bytes(data[:2], "big"), w.with_id(data, self.next_id), reply)
        self.pending[self.next_id] = p
        self._next(self.next_id, p)

    def _next(self, key: int, p: _Pending) -> None:
        """Ask the next upstream, or give up with SERVFAIL."""
        loop = asyncio.get_running_loop()
        while True:
            p.at += 1
            if p.timer is not None:
                p.timer.cancel()
                p.timer = None
            if p.at >= len(self.upstreams):
                del self.pending[key]
                out = servfail(p.data)
                if out is not None:
                    p.reply(w.with_id(out, p.id))
                return
            try:
                self._sock(self.upstreams[p.at]).send(p.data)
            except OSError:
                continue  # unreachable: the next one
            p.timer = loop.call_later(TIMEOUT, self._timeout, key, p.at)
            return

    def _timeout(self, key: int, at: int) -> None:
        p = self.pending.get(key)
        if p is not None and p.at == at:
            self._next(key, p)

    def _answers(self, ip: str, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                continue  # an ICMP error (port unreachable): the timer moves on
            if len(data) < 12:
                continue
            key = int.from_bytes(data[:2], "big")
            p = self.pending.get(key)
            if p is None or p.at >= len(self.upstreams) or self.upstreams[p.at] != ip:
                continue  # late, or from an upstream already given up on
            if w.response_rcode(data) in (w.SERVFAIL, w.REFUSED):
                self._next(key, p)
                continue
            del self.pending[key]
            if p.timer is not None:
                p.timer.cancel()
            p.reply(w.with_id(data, p.id))

    async def _tcp(self, data: bytes, reply: Reply) -> None:
        for ip in list(self.upstreams):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, 53), TIMEOUT)
                try:
                    writer.write(len(data).to_bytes(2, "big") + data)
                    size = int.from_bytes(
                        await asyncio.wait_for(reader.readexactly(2), TIMEOUT), "big"
                    )
                    out = await asyncio.wait_for(reader.readexactly(size), TIMEOUT)
                finally:
                    writer.close()
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                continue
            if w.response_rcode(out) not in (w.SERVFAIL, w.REFUSED):
                reply(out)
                return
        out2 = servfail(data)
        if out2 is not None:
            reply(out2)
