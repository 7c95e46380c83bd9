"""Networks shared between projects.

Projects that declare the same network (same name, same definition) share it: the first ``up``
creates it and marks it as made by a project (``project-networks/NAME``); each project lists
the networks it uses in its record. A network goes when the last project using it releases
it and no guest holds an address in it. A network made by ``netplumb network create`` is used
but never removed by a project. All of this happens under one lock, so parallel ``down``s
cannot each leave the network to the other.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import Conflict
from netplumb.model.network import DEFAULT_NETWORK, Network
from netplumb.ops import networks
from netplumb.state import lock as state_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def Lock() -> state_lock.Lock:
    """One lock over every project's use of networks (the same flock as the network table's)."""
    return state_lock.Lock("projects", ".networks.lock")


def users(name: str, besides: str) -> list[str]:
    """The other projects whose records list network ``name``."""
    out = []
    for project in state.names("projects"):
        if project == besides:
            continue
        rec = state.read("projects", project) or {}
        if name in rec.get("networks", []):
            out.append(project)
    return out


def create(net: Network) -> None:
    """Create a network for a project (the caller holds ``Lock``); marked as a project's."""
    state.write({"network": net.name}, "project-networks", net.name)
    try:
        networks.create(net)
    except BaseException:
        state.remove("project-networks", net.name)
        raise


def release(name: str, project: str, drop: Callable[[str], None]) -> str:
    """``project`` stops using network ``name`` (``drop`` takes it out of its record); the
    network is removed when it was made by a project and nothing uses it. Says what happened."""
    with Lock():
        drop(name)
        if name == DEFAULT_NETWORK or networks.get(name) is None:
            state.remove("project-networks", name)
            return f"released network {name}"
        others = users(name, project)
        if others:
            return f"kept network {name}: project {others[0]} uses it"
        if state.read("project-networks", name) is None:
            return f"kept network {name}: it was not made by a project"
        try:
            networks.remove(name)
        except Conflict as exc:
            return f"kept network {name}: {exc}"
        state.remove("project-networks", name)
        return f"removed network {name}"
