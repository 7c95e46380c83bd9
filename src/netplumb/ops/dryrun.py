"""``--dry-run`` of the changing commands besides attach and up/down: each observes what it
would change, refuses what the command would refuse (same words), and returns the plan's
typed actions, changing nothing (reads only: records, netlink dumps)."""

from __future__ import annotations

from netplumb.ops import networks
from netplumb.plan.actions import Action
from netplumb.plan.upsteps import remove_steps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.model.network import Network
    from netplumb.model.ports import PortMapping


def network_create(net: Network) -> list[Action]:
    """The plan ``network create`` applies (``networks.plan_create``)."""
    from netplumb.kernel.netlink import Netlink

    with Netlink() as nl:
        return networks.plan_create(net, nl)


def network_remove(name: str) -> list[Action]:
    """The plan ``network rm`` applies (``networks.plan_remove``)."""
    from netplumb.kernel.netlink import Netlink

    with Netlink() as nl:
        return networks.plan_remove(name, nl)


def publish(guest_name: str, mappings: list[PortMapping]) -> list[Action]:
    """The plan ``publish`` applies (``ports.plan_publish``)."""
    from netplumb.ops import ports

    return list(ports.plan_publish(guest_name, mappings))


def unpublish(owner: str, mappings: list[PortMapping]) -> list[Action]:
    """The plan ``unpublish`` applies (``ports.plan_unpublish``)."""
    from netplumb.ops import ports

    return list(ports.plan_unpublish(owner, mappings))


def rm(name: str) -> list[Action]:
    """``rm NAME``: its ports, interfaces (one by one), leases, then its process."""
    from netplumb.hosts import runtime
    from netplumb.ops.holdings import guest

    record = runtime.get(name)  # "No such host: NAME", as rm says
    running = runtime.status(record) in ("running", "restarting")
    g = guest(name, "host", None, None, running, f"host:{name}")
    return list(remove_steps(g, one_by_one=True))
