"""A host's state as its holder reports it, and the orders ``stop``, ``start`` and ``rm`` give it.

The holder (``hosts/supervise.py``) supervises the command and writes its ``status``; this
module reads it (``status``, ``current``) and gives orders: it writes ``control`` (atomically,
0600) and sends SIGUSR1, then waits until the holder's status acknowledges the order's token
(a bounded poll of one small file per host: the wait ends when the holder has acted, not when
a clock says so). Hosts started by a netplumb before restart policies have a ``sleep``
holder and no status: they are stopped the old way, and cannot be started again.
"""

from __future__ import annotations

import os
import signal
import time

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.hosts import holderfile
from netplumb.model import restart
from netplumb.runtimes.guests import pid_start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

ACK_MARGIN = 5.0  # seconds a holder gets, beyond the grace period, to acknowledge an order


def alive(pid: object, start: object) -> bool:
    """The process ``pid`` runs (not a zombie) and is the one that started at ``start``."""
    if not isinstance(pid, int) or not pid:
        return False
    now = pid_start_time(pid)
    if now is None or now != start:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] != b"Z"
    except OSError:
        return False


def files_of(record: Record) -> str:
    """The host's files directory, where its holder reads orders and writes its status (the
    path it was given: records moved aside name a directory that is no longer there)."""
    return str(record.get("files") or state.path("hosts.d", str(record["name"])))


def supervised(record: Record) -> bool:
    """Whether the host's holder supervises its command (every host since restart policies)."""
    return "restart" in record


def policy(record: Record) -> restart.RestartPolicy:
    name, count = record.get("restart") or (restart.NO, 0)
    return restart.RestartPolicy(str(name), int(count))


def holder_alive(record: Record) -> bool:
    return alive(record.get("holder"), record.get("holder_start"))


def current(record: Record) -> Record:
    """The record with what its holder last reported: ``state``, the command's ``pid`` and
    ``start``, ``restart_count``, ``exit_code`` (a copy; records on disk are not changed)."""
    out = dict(record)
    if not holder_alive(record):
        out.update(state="lost", restart_count=0, exit_code=0)
        return out
    reported = holderfile.read_status(files_of(record)) if supervised(record) else None
    if reported is None:  # a holder from before restart policies: only alive or not
        running = alive(record.get("pid"), record.get("start"))
        out.update(state="running" if running else "exited", restart_count=0, exit_code=0)
        return out
    out.update(
        {k: reported.get(k) for k in ("pid", "start", "restart_count", "exit_code", "error")}
    )
    # what the holder said, as Docker shows a container: running until the exit is handled
    out["state"] = str(reported.get("state", "exited"))
    return out


def status(record: Record) -> str:
    """running, restarting (waiting out the back-off), exited (command ended or stopped,
    network kept) or lost (the namespace holder is gone)."""
    return str(current(record)["state"])


def _order(record: Record, words: str) -> str:
    """Give the holder an order; returns its token."""
    token = f"{os.getpid()}.{time.monotonic_ns()}"
    files = files_of(record)
    path = os.path.join(files, holderfile.CONTROL)
    tmp = f"{path}.{os.getpid()}.tmp"
    verb, _, rest = words.partition(" ")
    state.write_file(tmp, f"{verb} {token} {rest}".strip().encode())
    os.replace(tmp, path)
    holder = record["holder"]
    try:
        os.kill(int(holder), signal.SIGUSR1)
    except ProcessLookupError:
        pass
    return token


def _wait_acks(pending: dict[str, tuple[Record, str]], timeout: float) -> list[str]:
    """Wait until each holder has acknowledged its order; the names of those that have not
    within ``timeout`` seconds (a holder that died counts as done)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while pending:
        for name, (record, token) in list(pending.items()):
            reported = holderfile.read_status(files_of(record)) or {}
            if reported.get("ack") == token or not holder_alive(record):
                del pending[name]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return list(pending)


def stop_many(records: list[Record], grace: float) -> tuple[list[Record], list[str]]:
    """Stop the commands of supervised hosts (SIGTERM, SIGKILL after ``grace`` seconds; at once
    with 0), their holders told not to restart them. Returns the records to stop the old way
    (hosts from before restart policies, lost hosts, and hosts whose holder did not
    acknowledge, with the command's PID it last reported) and the names of the latter."""
    pending: dict[str, tuple[Record, str]] = {}
    left: list[Record] = []
    unreachable: list[Record] = []
    for record in records:
        if not supervised(record):
            left.append(record)
        elif holder_alive(record):
            try:
                pending[str(record["name"])] = (record, _order(record, f"stop {grace:g}"))
            except OSError:  # its files are gone (records moved aside): it cannot be told
                unreachable.append(record)
        else:  # lost: its holder died, its command may live on (and keep the namespace)
            last = holderfile.read_status(files_of(record)) if supervised(record) else None
            pid = dict(record)
            if last is not None:  # the command it last started (the record has the first)
                pid.update(pid=last.get("pid"), start=last.get("start"))
            left.append(pid)
    late = _wait_acks(dict(pending), grace + ACK_MARGIN)
    unreachable += [pending[name][0] for name in late]
    left += [current(record) for record in unreachable]
    return left, [str(record["name"]) for record in unreachable]


def stop(record: Record, grace: float) -> None:
    """``netplumb stop``: the command ends, the host keeps its network; its restart policy
    does not start it again until ``start``."""
    _check(record)
    if stop_many([record], grace)[1]:
        raise NetplumbError(f"the holder of host {record['name']} did not stop its command")


def _check(record: Record) -> None:
    name = record["name"]
    if not holder_alive(record):
        raise NetplumbError(f"host {name} has lost its namespaces (its holder process is gone)")
    if not supervised(record):
        raise NetplumbError(
            f"host {name} was started by an older netplumb: remove it and run it again"
        )


def start(record: Record) -> Record:
    """``netplumb start``: run the command again in the host's namespaces (nothing to do if
    it runs); the restart count starts again from 0, as with ``docker start``."""
    name = record["name"]
    _check(record)
    token = _order(record, "start")
    if _wait_acks({str(name): (record, token)}, ACK_MARGIN):
        raise NetplumbError(f"the holder of host {name} did not start its command")
    now = current(record)
    if now["state"] != "running" and now.get("error"):
        raise NetplumbError(f"cannot start host {name}: {record['argv'][0]}: {now['error']}")
    return now
