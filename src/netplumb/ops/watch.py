"""``netplumb watch``: keep the kernel in step with the records, on events.

It reconciles everything once (``reconcile.reconcile``; after a reboot that first pass also puts
back Docker guests' kept records, ``ops/restore.py``), says it is ready, then reconciles again
when something happens:

- a Docker container starts (``start``; a ``docker restart`` is a ``die`` then a ``start``):
  its records are applied again in its new namespace. The events come from the Docker Engine
  API (the ``docker`` SDK) in a thread; when the stream breaks (dockerd stopped) it reconnects
  with back-off, and a dockerd that comes back gets netplumb's DOCKER-USER rules
  (``dockeruser.sync``) and a full pass (containers may have started meanwhile);
- an interface or an address goes, in netplumb's namespace (an interface with netplumb's mark)
  or in a guest that has records (one rtnetlink socket each, reopened after each pass, closed
  when its Docker container dies so that the dead namespace can go);
- netplumb's nftables table drifts (``nft flush ruleset``): checked when the kernel announces
  the deletion of a part of it (``kernel/nftevents.py``) and every ``DRIFT_EVERY`` seconds, by
  its rule count, the check ``portrules.reconcile_if_drifted`` makes;
- and a full pass every ``FULL_EVERY`` seconds, for what no event reports.

One watch per state directory: the lock ``watch.lock`` holds its PID. This module prints
nothing: the CLI gives it ``log`` (one line per repair) and ``ready``.
"""

from __future__ import annotations

import os
import queue
import selectors
import signal
import threading
import time

from netplumb import state
from netplumb.errors import Conflict, NetplumbError
from netplumb.kernel.monitor import Monitor, Removal
from netplumb.kernel.nftevents import TableEvents
from netplumb.model.names import mark_owner
from netplumb.ops import reconcile
from netplumb.ops.portrules import TABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Log = Callable[[str], None]

LOCK = "watch.lock"
DRIFT_EVERY = 1.0
FULL_EVERY = 30.0
SETTLE = 0.005  # after a first event, gather those that come with it into one pass
BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def take_lock() -> int:
    """The watch lock of this state directory, or ``Conflict`` naming the watch that has it."""
    import fcntl

    state.ensure_dir()
    fd = state.open_file(state.path(LOCK), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise Conflict(f"netplumb watch: already running (pid {pid})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class _Docker(threading.Thread):
    """Docker's container events, put on a queue; reconnects with back-off."""

    def __init__(self, events: queue.Queue[tuple[str, str]], wake: int) -> None:
        super().__init__(name="docker-events", daemon=True)
        self.events = events
        self.wake = wake
        self.stopping = threading.Event()

    def _put(self, kind: str, ident: str) -> None:
        self.events.put((kind, ident))
        try:
            os.write(self.wake, b"d")
        except OSError:
            pass

    def run(self) -> None:
        import docker

        attempt = 0
        broken = False
        while not self.stopping.is_set():
            try:
                api = docker.APIClient(base_url=_docker_url(), timeout=None)
                api.ping()
                if broken:
                    self._put("dockerd", "")
                attempt, broken = 0, False
                filters = {"type": "container", "event": ["start", "die"]}
                for ev in api.events(decode=True, filters=filters):
                    if self.stopping.is_set():
                        return
                    ident = str(ev.get("id") or ev.get("Actor", {}).get("ID") or "")
                    self._put(str(ev.get("status") or ev.get("Action")), ident)
            except Exception:  # a dockerd that is down or went away: any error of the SDK
                pass
            broken = True
            self.stopping.wait(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1


def _docker_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class Watch:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.host = Monitor()
        self.guests: dict[str, Monitor] = {}
        self.stop = False
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.sel.register(self.host, selectors.EVENT_READ, "host")
        self.nft = TableEvents(TABLE)
        self.sel.register(self.nft, selectors.EVENT_READ, "nft")

    def pass_(self, owners: set[str] | None = None, sweep: bool = False) -> None:
        try:
            reconcile.reconcile(self.log, owners, sweep=sweep, rewrite_tables=False)
        except NetplumbError as exc:
            self.log(f"reconcile failed: {exc}")
        # What the pass itself removed (a stale veth, an attempt rolled back) is no news: a
        # failed restore must not set off the next pass, and the next, forever. A removal by
        # someone else during the pass waits for the next full pass.
        self.host.removals()
        self._watch_guests()

    def _watch_guests(self) -> None:
        """One monitor per live guest with records, opened afresh (a restarted container has a
        new namespace; the old socket would keep the dead one alive)."""
        for owner in list(self.guests):
            self._unwatch(owner)
        for owner, recs in reconcile.records().items():
            guest = reconcile.find_guest(owner, str(recs[0][1].get("guest", "")))
            if guest is None:
                continue
            with guest:
                try:
                    mon = Monitor(guest.fd)
                except (NetplumbError, OSError):
                    continue
            self.guests[owner] = mon
            self.sel.register(mon, selectors.EVENT_READ, owner)

    def _unwatch(self, owner: str) -> None:
        mon = self.guests.pop(owner, None)
        if mon is not None:
            self.sel.unregister(mon)
            mon.close()

    def _relevant(self, where: str, removals: list[Removal]) -> bool:
        if where == "host":  # only netplumb's own interfaces, in netplumb's namespace
            return any(r.kind != "link" or mark_owner(r.alias) is not None for r in removals)
        return bool(removals)

    def run(self, ready: Callable[[], None]) -> None:
        import contextlib

        docker_thread: _Docker | None = None
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.pass_(sweep=True)
        from netplumb.kernel import dockeruser

        with contextlib.suppress(NetplumbError):
            dockeruser.sync()
        ready()
        if os.path.exists("/var/run/docker.sock") or os.environ.get("DOCKER_HOST"):
            docker_thread = _Docker(self.events, self.wake_w)
            docker_thread.start()
        next_drift = time.monotonic() + DRIFT_EVERY
        next_full = time.monotonic() + FULL_EVERY
        try:
            while not self.stop:
                timeout = max(0.0, min(next_drift, next_full) - time.monotonic())
                ready_keys = self.sel.select(timeout)
                if self.stop:
                    break
                if ready_keys:
                    time.sleep(SETTLE)  # the rest of a burst (a restart: link, addresses)
                self._handle(ready_keys)
                now = time.monotonic()
                if now >= next_full:
                    self.pass_()
                    next_full = now + FULL_EVERY
                    next_drift = now + DRIFT_EVERY
                elif now >= next_drift:
                    self._drift()
                    next_drift = now + DRIFT_EVERY
        finally:
            if docker_thread is not None:
                docker_thread.stopping.set()
            for owner in list(self.guests):
                self._unwatch(owner)
            self.host.close()
            self.nft.close()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop = True

    def _drift(self) -> None:
        from netplumb.ops import portrules

        try:
            if portrules.reconcile_if_drifted():
                self.log("restored netplumb's nftables table")
        except NetplumbError as exc:
            self.log(f"cannot restore netplumb's nftables table: {exc}")
        try:
            if portrules.redirect_if_drifted():
                self.log("restored the socket and LAN redirection of published ports")
        except NetplumbError as exc:
            self.log(f"cannot restore the socket redirection of published ports: {exc}")
        from netplumb.ops import dns

        if dns.died() and dns.ensure():
            self.log("started the name server again")
        # The repair's own events (the table deleted and made anew) are in by now: the kernel
        # sends them before it acknowledges the transaction. They must not set off another.
        self.nft.deleted()

    def _handle(self, ready_keys: list[tuple[selectors.SelectorKey, int]]) -> None:
        full = False
        for key, _mask in ready_keys:
            if key.data == "nft":
                if self.nft.deleted():
                    self._drift()
                continue
            if key.data == "wake":
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            mon: Monitor = key.fileobj  # type: ignore[assignment]
            full = self._relevant(str(key.data), mon.removals()) or full
        started: set[str] = set()
        dockerd = False
        while True:
            try:
                kind, ident = self.events.get_nowait()
            except queue.Empty:
                break
            if kind == "start":
                started.add(f"docker:{ident[:12]}")
            elif kind == "die":
                self._unwatch(f"docker:{ident[:12]}")  # let its namespace go
            elif kind == "dockerd":
                dockerd = True
        if dockerd:
            from netplumb.kernel import dockeruser

            self.log("dockerd is back: restoring netplumb's DOCKER-USER rules")
            try:
                dockeruser.sync()
            except NetplumbError as exc:
                self.log(f"cannot restore DOCKER-USER rules: {exc}")
        if full or dockerd:
            self.pass_()
        elif started:
            self.pass_(started)


def run(log: Log, ready: Callable[[], None]) -> None:
    """Watch until SIGTERM or SIGINT; ``Conflict`` if another watch has this state directory."""
    lock = take_lock()
    try:
        Watch(log).run(ready)
    finally:
        os.close(lock)
