"""What ``ps`` shows, assembled from records, the kernel and Docker (reads only): the hosts
and the projects' Docker services (hence here, above ``ops``). The CLI prints the rows."""

from __future__ import annotations

import os
import shlex

from netplumb import state
from netplumb.hosts import runtime
from netplumb.kernel import netns
from netplumb.model.ip import IP
from netplumb.project import guests

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def ps_rows() -> list[Record]:
    """One row per host and per Docker service of a project: name, pid, state, addresses
    (read in its namespace), command."""
    rows: list[Record] = []
    for name in runtime.names():
        record = state.read("hosts", name)
        if record is None:
            continue
        now = runtime.current(record)
        st = str(now["state"])
        rows.append(
            {
                "name": name,
                "pid": now.get("pid") or record.get("pid"),
                "state": st,
                "addresses": addresses_in(record) if st != "lost" else [],
                "command": shlex.join(record.get("argv", [])),
            }
        )
    for row in guests.docker_rows():  # the Docker services of projects (netplumb up)
        pid = row["netns_pid"]
        rows.append(
            {
                "name": row["name"],
                "pid": row["pid"],
                "state": row["state"],
                "addresses": addresses_in({"netns": f"/proc/{pid}/ns/net"}) if pid else [],
                "command": row["command"],
            }
        )
    return rows


def addresses_in(record: Record) -> list[str]:
    """The global addresses of the namespace ``record[\"netns\"]`` names (empty if gone)."""
    try:
        fd = os.open(str(record["netns"]), os.O_RDONLY)
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
