"""The ``/etc/hosts`` link lines of Docker guests that have netplumb links (``up``'s Docker
services with ``links:``), put back by ``reconcile`` and ``watch``.

Docker writes a container's ``/etc/hosts`` again each time it starts, from what the container
was created with (``up`` gives the links as ``extra_hosts``): the addresses the targets had
then. A target that has another address since (a host ``up`` made again, a Docker container
that got another one on its restart) would leave a restarted guest with a stale line, and a
line removed inside the container would stay removed until the next restart. So a pass writes
each such guest's link lines as they are now (``links.hosts_lines``, as a host's), in place
(the file is a bind mount of Docker's ``HostsPath``: a rename would not be seen), through
``/proc/<pid>/root`` (the container's own view of it, wherever Docker keeps the file).

Link *variables* cannot follow: a process's environment is fixed when it starts, and Docker
keeps the one it was created with (its own legacy links have the same limit). They hold the
target's address at creation; a new address reaches a guest's processes through its
``/etc/hosts`` only.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.hosts import files as hostfiles
from netplumb.ops import links
from netplumb.plan.reconcile import hosts_with_links

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Log = Callable[[str], None]


def restore(log: Log) -> None:
    """Bring every running Docker guest's link lines up to date; one line per file changed."""
    from netplumb.runtimes import docker

    for name in state.names("docker"):
        record = state.read("docker", name)
        pairs = links.record_links(record) if record else []
        if record is None or not pairs:
            continue
        owner = str(record.get("owner", ""))
        try:
            attrs = docker.inspect(owner.partition(":")[2] or name)
        except NetplumbError:
            return  # no Docker to ask: nothing of it runs
        if attrs is None or not attrs["State"].get("Running"):
            continue
        if f"docker:{str(attrs['Id'])[:12]}" != owner:
            continue  # another container under the name: not the record's
        wanted = links.hosts_lines(pairs)
        names = {n for pair in pairs for n in pair}
        try:
            _rewrite(int(attrs["State"]["Pid"]), wanted, names, name, log)
        except OSError as exc:
            log(f"cannot restore /etc/hosts link lines of {name}: {exc.strerror}")


def _rewrite(pid: int, wanted: list[str], names: set[str], name: str, log: Log) -> None:
    import os

    fd = os.open(f"/proc/{pid}/root/etc/hosts", os.O_RDWR | os.O_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            current = f.read().decode(errors="replace")
        new = hosts_with_links(current, wanted, names)
        if new == current:
            return
        data = new.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
    log(f"restored /etc/hosts link lines of {name}")


def follow(owners: set[str] | None, log: Log) -> None:
    """Hosts whose link lines are out of step with their targets' addresses of now: those
    that link to a Docker container that (re)started (``owners``; one on a Docker network may
    get another address at each start), or every host with links (None: a full pass). Only a
    file out of step is written, and logged."""
    import os

    from netplumb.hosts import control, runtime

    names = _started_names(owners) if owners is not None else None
    if names is not None and not names:
        return
    for host in runtime.names():
        record = state.read("hosts", host)
        pairs = links.record_links(record) if record else []
        if record is None or not pairs or not control.holder_alive(record):
            continue  # a lost host's files may be gone with it: gc's business
        if names is not None and not any(target in names for target, _ in pairs):
            continue
        wanted = links.hosts_lines(pairs)
        path = os.path.join(control.files_of(record), "hosts")
        try:
            with open(path, "rb") as f:
                current = f.read().decode(errors="replace")
            if hosts_with_links(current, wanted, {n for p in pairs for n in p}) == current:
                continue
            hostfiles.write_hosts_file(record, wanted)
        except OSError as exc:
            log(f"cannot restore /etc/hosts link lines of {host}: {exc.strerror}")
            continue
        log(f"restored /etc/hosts link lines of {host}")


def _started_names(owners: set[str]) -> set[str]:
    """The names of the Docker containers among ``owners``."""
    from netplumb.runtimes import docker

    names = set()
    for owner in owners:
        kind, _, short_id = owner.partition(":")
        if kind != "docker":
            continue
        try:
            attrs = docker.inspect(short_id)
        except NetplumbError:
            return set()
        if attrs is not None:
            names.add(str(attrs.get("Name", "")).lstrip("/"))
    return names
