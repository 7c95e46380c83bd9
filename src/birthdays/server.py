"""The HTTP server: connections on asyncio streams, graceful stop, and worker processes.

SIGTERM (or SIGINT): the listening socket closes at once, idle keep-alive connections are
closed, requests in flight are answered (with ``Connection: close``), queued documents are
committed, then the process exits 0. After ``shutdown_timeout`` seconds what remains is cut.

When the server closes a connection on which the client may still be sending (an error
answered before the body was read, a keep-alive request answered with ``Connection: close``),
the close "lingers" as nginx's and Apache's do: the answer goes out, the sending side is shut
down (FIN), and what still arrives is read and thrown away until the client closes, for at
most ``LINGER_TIME`` and ``LINGER_BYTES``. Closing a socket with unread data in its receive
buffer makes Linux send RST instead of FIN, and an RST can destroy the answer at the client
before it is read.

``--workers N`` binds the socket once and forks N processes that accept on it; the parent
forwards SIGTERM and restarts a worker that dies on its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from birthdays.app import RETRY_AFTER, App, error_response, problem
from birthdays.config import ServeConfig
from birthdays.errors import ConfigError, HTTPError, StoreError
from birthdays.h1parse import MAX_HEAD, Incoming
from birthdays.httpwire import IDLE, READ, WORK, WRITE, Activity, Body, Response, write_response
from birthdays.ratelog import RateLimited
from birthdays.store import MongoStore

log = logging.getLogger("birthdays")
# What one client can make the server log (a connection that fails, a response cut short) is
# rate-limited: a flood of bad requests cannot fill the disk.
client_log = RateLimited(log, per=10.0, burst=20)

IDLE_TIMEOUT = 60.0  # a keep-alive connection without a request
HEAD_TIMEOUT = 10.0  # a new connection without a request, or a request head being received
IO_TIMEOUT = 60.0  # a request head or body being read, or a response not being taken
SWEEP_EVERY = 5.0
# A lingering close ends at whichever bound comes first. A client that stops sending when the
# answer arrives (curl does) still has in flight what its send buffer and our receive buffer
# held at that moment: up to 4 MiB + 6 MiB with Linux's default tcp_wmem/tcp_rmem maxima, and
# at most 4.5 MiB measured on loopback with 64 MiB uploads; 16 MiB covers that with margin and costs
# ~10 ms of CPU to discard. 2 s is Apache's lingering time: far more than a round trip on any
# network this service is deployed on, and short enough that a client which keeps sending
# cannot hold a connection (or a graceful stop) for long.
LINGER_TIME = 2.0
LINGER_BYTES = 16 * 1024 * 1024
LINGER_READ = 256 * 1024
# At most this many lingering closes at once (beyond it a close is plain): a flood of
# connections refused with 503 must not turn into a flood of file descriptors held for 2 s.
# Separate from --max-connections, which may be as small as 1.
MAX_LINGERING = 1024
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass(slots=True, eq=False)
class _Conn:
    """A connection and what it is doing since when. Timeouts are enforced by one sweeper task
    looking at these, not by a timer per request: asyncio.timeout() twice per request was ~9%
    of the CPU of a POST (py-spy)."""

    writer: asyncio.StreamWriter
    activity: Activity
    incoming: Incoming


class Server:
    def __init__(self, app: App, config: ServeConfig) -> None:
        self._app = app
        self._config = config
        self._conns: set[_Conn] = set()
        # Connections in a lingering close: answered, bounded by LINGER_TIME, not counted
        # against max_connections, but waited for by a graceful stop (else the exit resets them).
        self._lingering: set[asyncio.StreamWriter] = set()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="sweeper")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.monotonic()
            for conn in list(self._conns):
                state, since = conn.activity.state, conn.activity.since
                if state == IDLE:
                    if conn.incoming.in_message:  # a head on its way
                        if now - conn.incoming.head_since > HEAD_TIMEOUT:
                            conn.writer.transport.abort()
                    elif now - since > (IDLE_TIMEOUT if conn.activity.served else HEAD_TIMEOUT):
                        conn.writer.transport.close()
                elif state in (READ, WRITE) and now - since > IO_TIMEOUT:
                    conn.writer.transport.abort()

    def _evict(self) -> bool:
        """Close the connection idle for longest that is not in the middle of a request (kept
        alive, or nothing sent yet); whether there was one."""
        idlest: _Conn | None = None
        for conn in self._conns:
            if (
                conn.activity.state == IDLE
                and not conn.incoming.in_message
                and (idlest is None or conn.activity.since < idlest.activity.since)
            ):
                idlest = conn
        if idlest is None:
            return False
        self._conns.discard(idlest)
        idlest.writer.transport.close()
        return True

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer, Activity(IDLE, time.monotonic()), Incoming(reader))
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and an
            # accepted socket inherits proto 0 from socket.create_server: without this, the
            # second write of a response waits for the client's delayed ACK (40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._stopping or (
            len(self._conns) >= self._config.max_connections and not self._evict()
        ):
            resp = problem(
                503, "Service Unavailable", "too many connections", (("Retry-After", RETRY_AFTER),)
            )
            # The client has likely sent its request already: unread, it would turn the close
            # into an RST that can destroy the 503 before the client reads it.
            await self._finish(writer, resp)
            await self._linger(reader, writer, None)
            return
        self._conns.add(conn)
        self._idle.clear()
        linger = False
        try:
            linger = await self._serve(reader, conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.transport.abort()
        except StoreError as exc:  # the database failed mid-stream: the response is cut short
            client_log.warning("response aborted: %s", exc)
            writer.transport.abort()
        except Exception:
            if not writer.transport.is_closing():  # else: the client left, uvloop says so late
                client_log.exception("connection failed")
            writer.transport.abort()
        finally:
            if linger:
                await self._linger(reader, writer, conn)
            else:
                self._conns.discard(conn)
                self._check_idle()
            writer.close()

    def _check_idle(self) -> None:
        if not self._conns and not self._lingering:
            self._idle.set()

    async def _serve(self, reader: asyncio.StreamReader, conn: _Conn) -> bool:
        """Serve requests until the connection is to be closed; whether the close must linger
        (the client may still be sending)."""
        writer, activity, incoming = conn.writer, conn.activity, conn.incoming
        while not self._stopping:
            try:
                request = await incoming.next_head()
            except HTTPError as exc:  # the rest of the request (its body, its head) is unread
                await self._finish(writer, error_response(exc))
                return True
            if request is None:
                return False
            activity.enter(WORK)
            body = Body(request, incoming, writer, activity)
            resp = await self._app.handle(request, body)
            unread = False
            if not body.consumed:
                unread = body.present()
            keep = request.keep_alive and not resp.close and not self._stopping and not unread
            http10 = request.version == "HTTP/1.0"
            if resp.stream is not None and http10:
                keep = False
            await write_response(
                writer,
                resp,
                keep_alive=keep,
                head_only=request.method == "HEAD",
                http10=http10,
                activity=activity,
            )
            activity.enter(IDLE)
            activity.served += 1
            if not keep:
                # A client that asked to close and whose request was read whole sends nothing
                # more (RFC 9112, 9.6); any other may have sent the next request already.
                return request.keep_alive or unread
        return True  # stopping between requests: a next one may be on its way

    async def _linger(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn | None
    ) -> None:
        """Close after the answer without an RST: half-close, discard what the client still
        sends (bounded: LINGER_TIME, LINGER_BYTES), then close. ``conn`` moves from the
        connections to the lingering ones before anything is awaited: a graceful stop always
        finds it in one of the two."""
        if conn is not None:
            self._conns.discard(conn)
        if len(self._lingering) >= MAX_LINGERING:
            self._check_idle()
            writer.transport.close()
            return
        self._lingering.add(writer)
        self._idle.clear()
        try:
            # write_eof shuts down the sending side once the transport's buffer has gone out
            # (asyncio and uvloop both wait for it), so the FIN follows the whole answer.
            if writer.can_write_eof() and not writer.transport.is_closing():
                writer.write_eof()
            left = LINGER_BYTES
            async with asyncio.timeout(LINGER_TIME):
                while left > 0 and (data := await reader.read(min(left, LINGER_READ))):
                    left -= len(data)
        except (TimeoutError, ConnectionError, OSError):
            pass  # a bound was reached or the client reset: nothing more to protect
        finally:
            self._lingering.discard(writer)
            self._check_idle()
            writer.close()

    async def _finish(self, writer: asyncio.StreamWriter, resp: Response) -> None:
        try:
            await write_response(writer, resp, keep_alive=False, head_only=False, http10=False)
        except ConnectionError:
            pass

    async def drain(self, timeout: float) -> None:
        """Stop taking requests, close idle connections, wait for the busy ones."""
        self._stopping = True
        self._sweeper.cancel()
        for conn in list(self._conns):
            if conn.activity.state == IDLE:
                conn.writer.transport.close()
        # Lingering connections end by themselves within LINGER_TIME: waited for, they keep
        # their answers; a shutdown_timeout shorter than that cuts them with the rest.
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            busy = len(self._conns) + len(self._lingering)
            log.warning("shutdown: cutting %d connections still busy", busy)
            for conn in list(self._conns):
                conn.writer.transport.abort()
            for writer in list(self._lingering):
                writer.transport.abort()


def bind(config: ServeConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.listen else socket.AF_INET
    try:
        return socket.create_server(
            (config.listen, config.port), family=family, backlog=1024, reuse_port=False
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"cannot listen on {config.listen}:{config.port}: {reason}") from None


def raise_open_files(config: ServeConfig) -> None:
    """Raise the soft limit of open files to what the connection limit needs: the connections,
    the lingering closes, and a margin for the database's pool, the log and the listener."""
    need = config.max_connections + MAX_LINGERING + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        want = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < need:
            log.warning(
                "open files limited to %d (hard limit); --max-connections %d needs %d",
                want,
                config.max_connections,
                need,
            )


async def serve(config: ServeConfig, sock: socket.socket) -> None:
    """Run one server process on ``sock`` until SIGTERM or SIGINT."""
    raise_open_files(config)
    store = MongoStore(config)
    app = App(store, config)
    server = Server(app, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by a fresh worker
    listener = await asyncio.start_server(server.connection, sock=sock, limit=MAX_HEAD)
    log.info(
        "listening on %s:%d, database %s (from %s), pid %d",
        config.listen,
        config.port,
        config.mongo.uri,
        config.mongo.source,
        os.getpid(),
    )
    await stop.wait()
    log.info("stopping: finishing requests in flight")
    listener.close()
    await server.drain(config.shutdown_timeout)
    await store.close()
    log.info("stopped")


def runner(choice: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's runner or asyncio's. uvloop costs ~20% less CPU per request here (measured with
    wrk: 40 vs 49-63 us per /healthz, 138-171 vs 175-189 us per POST; docs/service.md)."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("--loop uvloop: uvloop is not installed") from None
        else:
            return uvloop.run
    return asyncio.run


def run(config: ServeConfig) -> int:
    start = runner(config.loop)
    # The socket accepts connections from bind() on, before serve() has its handlers: a stop
    # signal in between would kill the process (exit -15) instead of stopping it. It stays
    # pending until the handlers are in place (serve() and _supervise() unblock it).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    sock = bind(config)
    if config.workers == 1:
        start(serve(config, sock))
        return 0
    return _supervise(config, sock, start)


def _supervise(
    config: ServeConfig, sock: socket.socket, start: Callable[[Coroutine[Any, Any, None]], None]
) -> int:
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        # A stop signal between fork and the worker's own handlers would run the parent's
        # handler in the child (killing its siblings) or the default (exit 143): it stays
        # blocked until serve() has its handlers in place.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for sig in STOP_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                start(serve(config, sock))
                code = 0
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = number
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for number in range(config.workers):
        spawn(number)
    # A stop signal that came before now (blocked since run()) reaches every worker.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        number = children.pop(pid, -1)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed = failed or code != 0
            continue
        log.warning("worker %d (pid %d) exited with %d; starting another", number, pid, code)
        time.sleep(0.5)
        if not stopping:
            spawn(number)
    sock.close()
    return 1 if failed else 0
