"""One record per CNI attachment (network, container, interface), in netplumb's state
directory under ``cni/<network>/<container>@<ifname>``.

The record is created, exclusively, before anything is allocated: a second ADD of the same
attachment fails without allocating, and a DEL after an ADD that failed halfway (or was
killed) still knows the owner its leases, ports and interface were made under. It is removed
last, when everything it names is gone.
"""

from __future__ import annotations

import marshal
import posix

from netplumb import state
from netplumb.errors import StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

DIR = "cni"


def name(container_id: str, ifname: str) -> str:
    return f"{container_id}@{ifname}"


def split(record_name: str) -> tuple[str, str]:
    cid, _, ifname = record_name.partition("@")  # a container id has no '@'
    return cid, ifname


def owner(container_id: str, ifname: str) -> str:
    """The owner of leases and published ports (no '/': it names a state file)."""
    return f"cni:{container_id}:{ifname}"


def veth_name(container_id: str, ifname: str) -> str:
    """The host end of the veth: derived from the attachment alone, so that a DEL with no
    record and no namespace can still find it (and deletes it only if it carries the mark)."""
    from _md5 import md5

    return "npc" + str(md5(f"{container_id}@{ifname}".encode()).hexdigest())[:12]


def create(network: str, record_name: str, record: Record) -> bool:
    """Write the record unless it exists; False if it did (link(2) is the atomic test)."""
    state.ensure_dir(DIR, network)
    path = state.path(DIR, network, record_name)
    tmp = f"{path}.{posix.getpid()}.tmp"
    try:
        with open(state.open_file(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC), "wb") as f:
            marshal.dump(record, f)
        try:
            posix.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            posix.unlink(tmp)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {path}: {exc.strerror}") from None
    return True


def read(network: str, record_name: str) -> Record | None:
    return state.read(DIR, network, record_name)


def write(network: str, record_name: str, record: Record) -> None:
    state.write(record, DIR, network, record_name)


def remove(network: str, record_name: str) -> None:
    state.remove(DIR, network, record_name)


def names(network: str) -> list[str]:
    return state.names(DIR, network)
