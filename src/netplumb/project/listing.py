"""What ``netplumb ps`` lists: netplumb's hosts and the Docker services of projects (this
package's: ops/ may not reach up to project/), each with its state and the addresses its
network namespace has now (read, never changed)."""

from __future__ import annotations

import os
import shlex

from netplumb import state
from netplumb.hosts import runtime
from netplumb.kernel import netns
from netplumb.model.ip import IP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def addresses(netns_path: str) -> list[str]:
    """The global addresses in a namespace (no loopback, no link-local), ``ADDR/PREFIX``."""
    try:
        fd = os.open(netns_path, os.O_RDONLY)
    except OSError:
        return []
    try:
        with netns.socket_in(fd) as nl:
            return [
                f"{IP(a.address)}/{a.prefixlen}"
                for a in nl.addresses()
                if len(a.address) in (4, 16)
                and not IP(a.address).is_loopback
                and not a.address.startswith(b"\xfe\x80")
            ]
    finally:
        os.close(fd)


def rows() -> list[Record]:
    """One row per guest: name, pid, state, addresses, command."""
    out: list[Record] = []
    for name in runtime.names():
        record = state.read("hosts", name)
        if record is None:
            continue
        now = runtime.current(record)
        st = str(now["state"])
        out.append(
            {
                "name": name,
                "pid": now.get("pid") or record.get("pid"),
                "state": st,
                "addresses": addresses(str(record["netns"])) if st != "lost" else [],
                "command": shlex.join(record.get("argv", [])),
            }
        )
    from netplumb.project import guests

    for row in guests.docker_rows():  # the Docker services of projects (netplumb up)
        pid = row["netns_pid"]
        out.append(
            {
                "name": row["name"],
                "pid": row["pid"],
                "state": row["state"],
                "addresses": addresses(f"/proc/{pid}/ns/net") if pid else [],
                "command": row["command"],
            }
        )
    return out
