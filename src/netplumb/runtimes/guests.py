"""Resolve a guest reference to an open namespace descriptor.

Every command that takes a container accepts, tried in this order: a netplumb host name, an
``ip netns`` name, a PID, ``/proc/PID/ns/net`` or any namespace path, and a Docker container
name or id. The namespace is opened once here and the descriptor held for the whole command:
a PID that dies and is reused meanwhile can never send an interface into another container.
"""

from __future__ import annotations

import posix

from netplumb import state
from netplumb.errors import GuestNotFound, NetplumbError, RuntimeUnavailable

# Guest and pid_start_time are named here too, where callers have always found them.
from netplumb.kernel.proc import pid_start_time as pid_start_time  # noqa: PLC0414
from netplumb.lightos import exists
from netplumb.runtimes.guest import Guest as Guest  # noqa: PLC0414
from netplumb.runtimes.guest import open_netns

NETNS_RUN_DIR = "/run/netns"


def _netns_key(fd: int) -> str:
    st = posix.fstat(fd)
    return f"{st.st_dev}-{st.st_ino}"


def from_host(name: str) -> Guest | None:
    record = state.read("hosts", name)
    if record is None:
        return None
    holder = record.get("holder")
    if not holder or pid_start_time(holder) != record.get("holder_start"):
        raise GuestNotFound(f"host {name} has lost its namespaces (its holder process is gone)")
    try:
        fd = open_netns(record["netns"])
    except FileNotFoundError:
        raise GuestNotFound(
            f"host {name} has lost its namespaces (its holder process is gone)"
        ) from None
    return Guest(f"host:{name}", "host", name, fd, record.get("pid"), str(record.get("pid", "")))


def from_pid(pid: int, ref: str) -> Guest:
    fd = open_netns(f"/proc/{pid}/ns/net")
    start = pid_start_time(pid)
    if start is None:  # died between open and stat: the descriptor may be a dead namespace
        posix.close(fd)
        raise GuestNotFound(f"guest {ref}: process {pid} exited")
    return Guest(f"pid:{pid}:{start}", "pid", ref, fd, pid, str(pid))


def resolve(ref: str) -> Guest:
    """The guest ``ref`` names; ``GuestNotFound`` lists the kinds that were tried."""
    if not ref:
        raise GuestNotFound("no guest given")
    plain = "/" not in ref and ref not in (".", "..")
    if plain:
        guest = from_host(ref)
        if guest is not None:
            return guest
        path = f"{NETNS_RUN_DIR}/{ref}"
        if exists(path):
            fd = open_netns(path)
            return Guest(
                f"netns:{ref}:{_netns_key(fd)}", "netns", ref, fd, None, _netns_key(fd)[-6:]
            )
        if ref.isdigit():
            try:
                return from_pid(int(ref), ref)
            except FileNotFoundError:
                raise GuestNotFound(f"no such guest {ref}: no process with PID {ref}") from None
    else:
        try:
            fd = open_netns(ref)
        except FileNotFoundError:
            raise GuestNotFound(f"no such guest {ref}: no such file") from None
        except OSError as exc:
            raise GuestNotFound(f"guest {ref}: not a network namespace ({exc.strerror})") from None
        parts = ref.split("/")
        if len(parts) == 5 and parts[1] == "proc" and parts[2].isdigit():
            pid = int(parts[2])
            start = pid_start_time(pid)
            if start is not None:
                return Guest(f"pid:{pid}:{start}", "pid", ref, fd, pid, str(pid))
        return Guest(f"path:{_netns_key(fd)}", "path", ref, fd, None, _netns_key(fd)[-6:])
    docker_note = ""
    try:
        from netplumb.runtimes import docker

        found = docker.guest(ref)
        if found is not None:
            return found
    except RuntimeUnavailable as exc:
        docker_note = f" ({exc})"
    except NetplumbError:
        raise
    raise GuestNotFound(
        f"no such guest {ref}: not a netplumb host, an ip netns name, a PID, "
        f"a namespace path or a Docker container{docker_note}"
    )


def alive(key: str) -> bool:
    """Whether the guest a record or mark names still exists (for ``gc``)."""
    kind, _, rest = key.partition(":")
    if kind == "host":
        record = state.read("hosts", rest)
        if record is None or not isinstance(record.get("holder"), int):
            return False
        return pid_start_time(record["holder"]) == record.get("holder_start")
    if kind == "pid":
        pid, _, start = rest.partition(":")
        return str(pid_start_time(int(pid))) == start
    if kind == "netns":
        name, _, nskey = rest.partition(":")
        try:
            st = posix.stat(f"{NETNS_RUN_DIR}/{name}")
        except OSError:
            return False
        return f"{st.st_dev}-{st.st_ino}" == nskey
    if kind == "docker":
        try:
            from netplumb.runtimes import docker

            # A stopped container keeps its records, as Docker keeps its network settings:
            # `docker start` (or a restart policy after a reboot) brings it back, and
            # reconcile/watch attach it again. Only a removed container is dead.
            return docker.inspect(rest) is not None
        except RuntimeUnavailable:
            return True  # cannot tell: never remove what might still be in use
    # "path:" namespaces cannot be found again once the descriptor is closed: alive while the
    # interface that carries the mark still exists, which the caller checks.
    return True
