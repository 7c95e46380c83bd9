"""The name server of netplumb's networks: a daemon (``ops/dns.py`` starts it).

One process per state directory (a lock makes a second one exit at once). For every network it
binds UDP and TCP port 53 on the network's gateway addresses, on the network's bridge only
(``SO_BINDTODEVICE``), and answers askers inside the network's subnets only; anyone else gets
nothing (never an open resolver). Names come from the zone (``model/zone.py``) rebuilt from the
records whenever a record directory changes (inotify, coalesced over a few milliseconds); names
that are not netplumb's are forwarded (``ops/dnsforward.py``) to the name servers of the
machine's ``/etc/resolv.conf``, queried from this namespace, so loopback ones work. It exits
once no network has a member, removing its PID file.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import sys
import time
from functools import partial

from netplumb import state
from netplumb.model import dnswire as w
from netplumb.model.zone import Zone, pack
from netplumb.ops import dns
from netplumb.ops.dns import INHERIT, inherited, listening_socket
from netplumb.ops.dnsforward import Forwarder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MEMO_SIZE = 65536
RELOAD_DELAY = 0.003  # seconds: records written together are read together
RELOAD_DELAY_MAX = 0.03


def _log(text: str) -> None:
    """A line in the server's log (its standard error, ``logs/dns.log``)."""
    os.write(2, f"netplumb-dns: {text}\n".encode())


class _UdpListener:
    """A gateway's UDP socket, read straight from the event loop's reader callback until it
    has nothing more (asyncio's datagram transport costs several times more per query: a
    callback and a ``sendto`` wrapper per packet, see ``bench/dns_asyncio.py``). An answer the
    server gave before to the same asker and question is sent again from ``Server.memo``."""

    BURST = 256  # queries read in one go before other callbacks get a turn

    def __init__(self, server: Server, network: str, sock: socket.socket) -> None:
        self.server = server
        self.network = network
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self.ready)

    def ready(self) -> None:
        sock, server, network = self.sock, self.server, self.network
        if server.dirty:
            server.refresh()
        memo = server.memo
        for _ in range(self.BURST):
            try:
                data, addr = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error for an asker that went
            hit = memo.get((network, addr[0], data[2:]))
            try:
                if hit is not None:
                    sock.sendto(data[:2] + hit, addr)
                else:
                    server.handle(network, addr[0], data, partial(_send, sock, addr), udp=True)
            except OSError:
                continue  # its buffer is full: a lost datagram, the asker asks again

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


def _send(sock: socket.socket, addr: tuple[str, int], out: bytes) -> None:
    try:
        sock.sendto(out, addr)
    except OSError:
        pass


class Server:
    def __init__(self, adopt: dict[tuple[str, str, str], tuple[int, int]] | None = None) -> None:
        # sockets bound by the command that started this server (``dns.start_with_sockets``), by
        # (network, address, bridge): used instead of binding them again
        self.adopt = dict(adopt or {})
        self.zone = Zone([], [])
        self.forwarder = Forwarder()
        self.bound: dict[tuple[str, str, str], list[object]] = {}  # (network, ip, bridge) ->
        self.done = asyncio.Event()
        self.reload_pending = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.records = dns.Records()
        self.reloading = asyncio.Lock()
        self.reload_cost = 0.0  # seconds the last reload took
        # records changed since the zone was made: it is made again before the next answer
        # (many hosts starting at once cost one rebuild, not one per record written)
        self.dirty = False
        # answers given, by (network, asker, query without its ID); emptied when the zone
        # changes, so it never answers what the zone would not
        self.memo: dict[tuple[str, str, bytes], bytes] = {}

    def handle(
        self, network: str, host: str, data: bytes, reply: Callable[[bytes], None], udp: bool
    ) -> None:
        """Answer ``data`` from ``host`` on ``network`` through ``reply`` (now, or once an
        upstream answered); an asker outside the network's subnets gets nothing."""
        try:
            source = pack(host.partition("%")[0])
        except OSError:
            return
        if self.dirty:
            self.refresh()
        zone = self.zone
        if not zone.answers_to(network, source):
            return
        q = w.parse_query(data)
        if q is None:
            out = w.refuse(data, w.FORMERR)
            if out is not None:
                reply(out)
            return
        if q.qclass != w.CLASS_IN:
            reply(w.answer(q, w.NOTIMP, authoritative=False))
            return
        found = zone.lookup(network, source, q.name, q.qtype)
        if found is not None:
            rcode, records = found
            out = w.answer(q, rcode, records, limit=q.udp_size if udp else None)
            if udp and len(records) <= 1:  # replicas' order varies: never the same answer
                if len(self.memo) >= MEMO_SIZE:
                    self.memo.clear()
                self.memo[(network, host, data[2:])] = out[2:]
            reply(out)
        elif not zone.forwards(network):
            reply(w.answer(q, w.REFUSED, authoritative=False))
        else:
            self.forwarder.forward(data, reply, udp)

    async def reload(self) -> None:
        """The zone again from the records; sockets for new gateways, none for old ones.
        One at a time: a change while one runs sets off the next."""
        async with self.reloading:
            start = time.monotonic()
            await self._reload()
            self.reload_cost = time.monotonic() - start

    def refresh(self) -> None:
        """The zone again from the records (the cache re-reads what changed)."""
        self.dirty = False
        self.zone = dns.zone(self.records)
        self.memo.clear()  # answers of the zone before
        self.forwarder.read_resolv_conf()

    async def _reload(self) -> None:
        self.reload_pending = False
        self.refresh()
        zone = self.zone
        wanted = {
            (net.name, ip, net.bridge) for net in zone.networks.values() for ip in net.gateways
        }
        for key in [k for k in self.bound if k not in wanted]:
            for item in self.bound.pop(key):
                item.close()  # type: ignore[attr-defined]
        for key in sorted(wanted - set(self.bound)):
            network, ip, bridge = key
            fds = self.adopt.pop(key, None)
            try:
                if fds is not None:
                    udp, tcp = socket.socket(fileno=fds[0]), socket.socket(fileno=fds[1])
                else:
                    udp = listening_socket(ip, bridge, socket.SOCK_DGRAM)
                    try:
                        tcp = listening_socket(ip, bridge, socket.SOCK_STREAM)
                    except OSError:
                        udp.close()
                        raise
            except OSError as exc:
                _log(f"cannot listen on {ip} ({bridge}): {exc}")
                continue  # its bridge is not there (yet): the next change tries again
            listener = _UdpListener(self, network, udp)
            server = await asyncio.start_server(
                lambda r, wr, network=network: self._tcp(network, r, wr),  # type: ignore[misc]
                sock=tcp,
            )
            self.bound[key] = [listener, server]
        for fds in self.adopt.values():  # of a network gone meanwhile
            for fd in fds:
                os.close(fd)
        self.adopt.clear()
        if zone.members == 0 and self._last_look():
            self.done.set()

    def _last_look(self) -> bool:
        """Whether to end, the zone being empty: the PID file goes first, then the records are
        read afresh. A command that wrote a member's record and found this server running
        did so before the file went, so its member is seen here, and the server stays (its
        file back); one that comes after finds no server and starts one."""
        pidfile = state.path(dns.PIDFILE)
        try:
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
        if dns.zone().members == 0:
            return True
        state.write_file(pidfile, f"{os.getpid()}\n".encode())
        return False

    async def _tcp(
        self, network: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if peer else ""
        try:
            if not self.zone.answers_to(network, pack(host.partition("%")[0])):
                return
            while True:
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 10), "big")
                data = await asyncio.wait_for(reader.readexactly(size), 10)
                answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

                def reply(out: bytes, answered: asyncio.Future[bytes] = answered) -> None:
                    if not answered.done():
                        answered.set_result(out)

                self.handle(network, host, data, reply, udp=False)
                if not answered.done() and w.parse_query(data) is None and len(data) < 12:
                    return  # not even a header to answer to
                out = await answered
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            writer.close()

    def changed(self) -> None:
        """Records changed: reload soon. Changes that come together are read together: the
        wait grows with what a reload costs (many hosts starting at once), bounded well
        below the 100 ms a change may take to be visible."""
        if not self.reload_pending:
            self.reload_pending = True
            delay = min(RELOAD_DELAY_MAX, max(RELOAD_DELAY, 3 * self.reload_cost))
            asyncio.get_running_loop().call_later(delay, self._reload_soon)

    def _reload_soon(self) -> None:
        task = asyncio.ensure_future(self.reload())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def _serve(ready: bool, adopt: dict[tuple[str, str, str], tuple[int, int]]) -> None:
    from netplumb.kernel import daemon
    from netplumb.kernel.inotify import Watcher

    server = Server(adopt)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, server.done.set if sig != signal.SIGHUP else server.changed)
    watcher = Watcher()

    def watch_all() -> None:
        watcher.watch(state.state_dir())
        for folder in dns.FOLDERS:
            watcher.watch(state.path(folder))

    top = state.state_dir()

    def on_event() -> None:
        changed = watcher.drain()
        if changed is None:  # events were lost: read everything again
            server.records = dns.Records()
        else:
            # a record's write is a temporary file renamed over it: only the rename counts
            changed = {(w, n) for w, n in changed if not n.endswith(".tmp")}
            if not changed:
                return
            urgent = False
            for where, name in changed:
                if where == top:  # a folder came or went
                    server.records.forget(name)
                    urgent = True
                    continue
                folder = os.path.basename(where)
                server.records.forget(folder, name)
                # what changes the sockets (a network), or may leave no member (a removal),
                # is read now; the rest when the next question comes
                if folder == "networks" or not os.path.exists(os.path.join(where, name)):
                    urgent = True
            server.dirty = True
            if not urgent:
                return
        watch_all()
        server.changed()

    watch_all()
    loop.add_reader(watcher.fd, on_event)
    await server.reload()
    await server.forwarder.start()
    if ready:
        daemon.say_ready()
    await server.done.wait()
    loop.remove_reader(watcher.fd)
    watcher.close()


def main(args: list[str]) -> None:
    """The daemon: ``args`` is the state directory it serves."""
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # where it is, in its log: kill -USR1 PID
    if args:
        os.environ["NETPLUMB_STATE_DIR"] = args[0]
    adopt: dict[tuple[str, str, str], tuple[int, int]] = {}
    given = os.environ.pop(INHERIT, "")
    if given:  # started by ``dns.start_with_sockets``: its lock (taken) and sockets; nobody waits
        lock, adopt = inherited(given)
    else:
        lock = os.open(state.path(dns.LOCKFILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from netplumb.kernel import daemon

            daemon.say_ready()  # another one serves
            return
    pidfile = state.path(dns.PIDFILE)
    state.write_file(pidfile, f"{os.getpid()}\n".encode())
    code = 1
    try:
        asyncio.run(_serve(ready=not given, adopt=adopt))
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()  # into its log
    finally:
        try:
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
        # The lock goes with the process, not before: ``dns.settle`` waits for it, and a
        # command that returns then leaves no server process behind.
        sys.stderr.flush()
        os._exit(code)
