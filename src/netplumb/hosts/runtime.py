"""Lightweight hosts: a process in its own network, UTS and mount namespaces.

``run`` forks a child that unshares its namespaces, brings loopback up, sets its hostname,
bind-mounts its own ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` (what
``ip netns exec`` does with ``/etc/netns/NAME/``) in its private mount namespace, and becomes
the host's *holder* (named ``netplumb-hold``): it keeps the namespaces alive, starts the
command detached from the terminal with its output to a log file, and supervises it per the
host's restart policy (``hosts/child.py``, ``hosts/supervise.py``; within ``ports.batch()``
the next host's child is forked ahead). A host whose command exits (and is not restarted)
shows as exited and keeps its network until ``rm``; ``stop``/``start`` end and resume its
command (``hosts/control.py``); ``remove_many`` removes many at a cost linear in their number.

Why a holder process rather than a bind mount of the namespace (``ip netns add``'s way): a bind
mount made under ``ip netns exec`` (how tests simulate whole machines) vanishes with that
command's private mount namespace, and this sandbox forbids joining PID 1's.
"""

from __future__ import annotations

import os
import signal
import time

from netplumb import state
from netplumb.errors import Conflict, InvalidValue, NetplumbError
from netplumb.hosts import child as children
from netplumb.hosts import control
from netplumb.hosts.files import (
    build_env,
    files_dir,
    hosts_file,
    remove_files,
    resolv_conf,
    write_hosts_file,
)
from netplumb.kernel import netns
from netplumb.kernel.proc import pid_start_time
from netplumb.model.restart import RestartPolicy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record

HOLDER_NAME = children.HOLDER_NAME
GRACE_SECONDS = 10.0


def check_name(name: str) -> str:
    """Docker's container-name rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, here at most 63 bytes."""
    ok = name[:1].isascii() and name[:1].isalnum() and len(name) <= 63
    ok = ok and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    if not ok:
        raise InvalidValue(
            f'invalid host name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (at most 63)'
        )
    return name


def run(
    name: str,
    argv: list[str],
    *,
    hostname: str | None = None,
    env: list[str] = [],  # noqa: B006 -- never mutated
    expose: list[str] = [],  # noqa: B006 -- never mutated
    extra: dict[str, object] | None = None,
    prepare: Callable[[Record], tuple[dict[str, str], list[str]]] | None = None,
    restart: RestartPolicy | None = None,
) -> Record:
    """Start a host; returns its record. Atomic: on failure nothing is left.

    ``prepare`` runs once the namespaces exist and the host can be named as a guest, before
    the command starts: it sets up the network and returns the variables to add to the
    command's environment (link variables; the host's own win) and extra ``/etc/hosts`` lines.
    """
    check_name(name)
    if not argv:
        raise InvalidValue("no command given: netplumb run --name NAME -- CMD [ARGS...]")
    hostname = hostname or name
    lock = _lock()
    try:
        if state.read("hosts", name) is not None:
            raise Conflict(
                f'Conflict. The host name "{name}" is already in use: '
                f"remove it first (netplumb rm {name})"
            )
        files = files_dir(name)
        for fname, text in (
            ("hosts", hosts_file(hostname, [])),
            ("hostname", hostname + "\n"),
            ("resolv.conf", resolv_conf()),
        ):
            # 0644 in a 0700 directory: the host's own processes, whoever they run as, read
            # them through the bind mount; nobody else reaches them
            state.write_file(f"{files}/{fname}", text.encode(), state.GUEST_FILE_MODE)
        log = os.path.join(state.ensure_dir("logs"), f"{name}.log")
        own_env = build_env(hostname, env, dict(os.environ))
        policy = restart or RestartPolicy()
        proc = children.take()
        # if it failed, its report says why
        proc.send((hostname, files, log, list(argv), (policy.name, policy.maximum_retry_count)))
        holder, error = proc.report()
        children.make_spare()  # within a batch: the next host's namespaces, made meanwhile
        pid = 0
        record: Record = {
            "name": name,
            "hostname": hostname,
            "pid": holder,  # the command's once it runs; until then its holder's
            "start": pid_start_time(holder) if holder else None,
            "restart": [policy.name, policy.maximum_retry_count],
            "files": files,
            "holder": holder,
            "holder_start": pid_start_time(holder) if holder else None,
            "netns": f"/proc/{holder}/ns/net",
            "argv": list(argv),
            "env": own_env,
            "user_env": [
                f"{k}={v}" for k, v in own_env.items() if k not in _BASE_KEYS or k in _given(env)
            ],
            "expose": list(expose),
            "log": log,
            "created": time.time(),
            **(extra or {}),
        }
        try:
            if error or not holder:
                raise NetplumbError(f"cannot start host {name}: {argv[0]}: {error or 'failed'}")
            state.write(record, "hosts", name)
            final_env, lines = prepare(record) if prepare else ({}, [])
            record = state.read("hosts", name) or record
            write_hosts_file(record, lines)
            merged = {**final_env, **own_env}
            proc.send(merged)
            proc.close_orders()
            _, error = proc.report()  # "pid N" (the command runs) or an error
            pid = proc.command
            if error or not pid:
                raise NetplumbError(f"cannot start host {name}: {argv[0]}: {error or 'failed'}")
            record["env"] = merged
            record["pid"] = pid
            record["start"] = pid_start_time(pid)  # exec keeps it
            state.write(record, "hosts", name)  # a file write costs ~0.5 ms under load
            return record
        except BaseException:
            proc.close_orders()
            _abort(name, record, proc.pid, pid)
            raise
        finally:
            proc.close()
    finally:
        os.close(lock)


_BASE_KEYS = ("PATH", "HOSTNAME", "HOME")


def _given(env: list[str]) -> set[str]:
    return {item.partition("=")[0] for item in env}


def _abort(name: str, record: Record, holder: int, command: int) -> None:
    """Undo a half-made host: its network, its processes, its records and files."""
    from netplumb.ops import cleanup

    if state.read("hosts", name) is not None:
        cleanup.release_owner(f"host:{name}")
    _kill(holder, signal.SIGKILL)
    if command:
        _kill(-command, signal.SIGKILL)
    try:
        os.waitpid(holder, 0)
    except ChildProcessError:
        pass
    state.remove("hosts", name)
    remove_files(name)


def _lock() -> int:
    """An exclusive lock on the host table, so two ``run``s cannot take the same name."""
    import fcntl

    fd = state.open_file(os.path.join(state.ensure_dir(), ".hosts.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int | None, start: int | None) -> bool:
    return control.alive(pid, start)


def current(record: Record) -> Record:
    """The record with its holder's last report (``control.current``)."""
    return control.current(record)


def status(record: Record) -> str:
    """running, restarting (in its back-off), exited (command ended or stopped, network kept)
    or lost (the namespace holder is gone)."""
    return control.status(record)


def get(name: str) -> Record:
    record = state.read("hosts", name)
    if record is None:
        raise NetplumbError(f"No such host: {name}")
    return record


def names() -> list[str]:
    return state.names("hosts")


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child (the process that ran it)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


Proc = tuple[int, "int | None"]


def _wait_exit(procs: list[Proc], timeout: float) -> list[Proc]:
    """Wait until every process (pid, start time) has exited, or ``timeout`` has passed;
    returns those still running. Each is watched through a pidfd, so the wait ends when the
    last one exits (no polling interval), and waiting for N processes costs O(N)."""
    import select

    deadline = time.monotonic() + timeout
    left: list[Proc] = []
    for i in range(0, len(procs), 512):  # a bounded number of descriptors open at once
        fds: dict[int, Proc] = {}
        try:
            for pid, start in procs[i : i + 512]:
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    continue
                if not _alive(pid, start):  # gone (a zombie, or its PID taken by another)
                    os.close(fd)
                    _reap(pid)
                    continue
                fds[fd] = (pid, start)
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            while fds:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
                events = poller.poll(wait_ms)
                if not events:
                    break
                for fd, _ in events:
                    poller.unregister(fd)
                    os.close(fd)
                    _reap(fds.pop(fd)[0])
        finally:
            left += fds.values()
            for fd in fds:
                os.close(fd)
    return left


def _stop_all(records: list[Record], force: bool) -> None:
    """SIGTERM to every command's process group, then wait for all of them at once; SIGKILL
    to those left after the grace period (or at once with ``force``). A supervised host's
    holder does it, told not to restart the command (``control.stop_many``)."""
    records, unreachable = control.stop_many(records, 0 if force else GRACE_SECONDS)
    for record in records:  # a holder that cannot be told goes first: it restarts no more
        holder, start = record.get("holder"), record.get("holder_start")
        if record["name"] in unreachable and isinstance(holder, int) and _alive(holder, start):
            _kill(holder, signal.SIGKILL)
    running: list[Proc] = []
    for record in records:
        pid, start = record.get("pid"), record.get("start")
        if isinstance(pid, int) and _alive(pid, start):
            running.append((pid, start))
    if not force:
        for pid, _ in running:
            _kill(-pid, signal.SIGTERM)
        running = _wait_exit(running, GRACE_SECONDS)
    for pid, _ in running:
        _kill(-pid, signal.SIGKILL)
    _wait_exit(running, 5)


def stop(record: Record, force: bool) -> None:
    """SIGTERM to the command's process group; SIGKILL after the grace period, or at once."""
    _stop_all([record], force)


def remove(name: str, force: bool = False) -> None:
    """Stop the host and remove its network (interfaces, DHCP clients, records) and files."""
    from netplumb.ops import cleanup

    record = get(name)
    cleanup.release_owner(f"host:{name}")
    stop(record, force)
    holder, holder_start = record.get("holder"), record.get("holder_start")
    if _alive(holder, holder_start):
        assert isinstance(holder, int)
        _kill(holder, signal.SIGKILL)
    state.remove("hosts", name)
    remove_files(name)


def remove_many(names: list[str], force: bool = False) -> list[str]:
    """Remove many hosts at a cost linear in their number; returns the names removed (names
    without a host are skipped: already gone).

    Unlike ``remove``, interfaces are not deleted one by one (an RCU grace period each, ~37 ms
    here): every command gets SIGTERM (SIGKILL with ``force`` or after the grace period), all
    are waited for at once, then the holders are killed, and the kernel deletes the
    namespaces' interfaces, and the host ends of their veths, in one batch. What would outlive
    a namespace (a physical interface, a DHCP client) is undone first; published ports and
    addresses are released under one lock each, with one ruleset rewrite.
    """
    from netplumb.ops import cleanup, networks, ports

    records: dict[str, Record] = {}
    for name in names:
        if name not in records:
            record = state.read("hosts", name)
            if record is not None:
                records[name] = record
    if not records:
        return []
    owners = [f"host:{name}" for name in records]
    left: list[tuple[str, Record]] = []
    for owner in owners:
        left += cleanup.release_before_exit(owner, cleanup.records_of(owner))
    _stop_all(list(records.values()), force)
    holders: list[Proc] = []
    for record in records.values():
        holder, start = record.get("holder"), record.get("holder_start")
        if isinstance(holder, int) and _alive(holder, start):
            _kill(holder, signal.SIGKILL)
            holders.append((holder, start))
    _wait_exit(holders, 5)
    with ports.batch():  # one nft transaction, at the end (or at the caller's batch's end)
        ports.release_many(owners)
        networks.release_many(owners)
        cleanup.release_after_exit(left)
        if ports.isolation_in_use():
            ports.isolation_changed()  # the guests' ports leave the isolated networks' sets
    ports.guests_went(list(records.values()))
    for name in records:
        state.remove("hosts", name)
        remove_files(name)
    return list(records)


# -- for gc: hosts whose records are moved aside or whose holder is gone -------------------


def stop_all(records: list[Record], force: bool) -> None:
    """``stop`` for many hosts at once (all signalled, then all waited for)."""
    _stop_all(records, force)


def alive(pid: int | None, start: int | None) -> bool:
    """Whether the process ``pid`` started at ``start`` still runs (not a zombie)."""
    return _alive(pid, start)


def kill(pid: int, sig: int) -> None:
    """``os.kill`` that ignores a process already gone."""
    _kill(pid, sig)


def enter(record: Record) -> None:
    """Join the host's network, UTS and mount namespaces (through its holder) in this process."""
    holder = record.get("holder")
    if not _alive(holder, record.get("holder_start")):
        raise NetplumbError(
            f"host {record['name']} has lost its namespaces (its holder process is gone)"
        )
    fds = [os.open(f"/proc/{holder}/ns/{ns}", os.O_RDONLY) for ns in ("net", "uts", "mnt")]
    for fd, kind in zip(
        fds, (netns.CLONE_NEWNET, netns.CLONE_NEWUTS, netns.CLONE_NEWNS), strict=True
    ):
        netns.setns(fd, kind, f"enter the namespaces of host {record['name']}")
        os.close(fd)
    os.chdir("/")
