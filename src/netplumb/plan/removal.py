"""The typed actions of ``gc``'s plan (``rm``'s are ``steps.py``'s: unpublish, detach, release,
stop), and the line ``gc`` prints for each once it is done.

``gc`` removes only what belongs to dead guests; each action names the object and its owner
as the records or the kernel's mark say, so ``gc --dry-run`` prints what ``gc`` would remove,
in the order it removes it. ``str(action)`` is the line ``--dry-run`` prints; ``removed`` the
one ``gc`` prints after it (``removed <that>``), the same words as before the plan existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from netplumb.plan.actions import Action
from netplumb.plan.lan import ReleaseLanLeases
from netplumb.plan.steps import DetachInterface, ReleaseAddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True)
class SweepTemporary(Action):
    """A write's temporary file whose process died before the rename (``kill -9``)."""

    path: str  # relative to the state directory

    def __str__(self) -> str:
        return f"rm {self.path}  # an interrupted write"

    @property
    def removed(self) -> str:
        return f"interrupted write {self.path}"


@dataclass(frozen=True)
class RemoveStaleRecords(Action):
    """The records of a network namespace that is gone, and the hosts they name that run."""

    folder: str
    name: str  # its base name

    def __str__(self) -> str:
        return f"stop its hosts, remove the records of a namespace that is gone ({self.name})"

    @property
    def removed(self) -> str:
        return f"records of a namespace that is gone ({self.name})"


@dataclass(frozen=True)
class RemoveLostHost(Action):
    """A host whose holder is gone: its ports, leases and attachments' host ends, its records."""

    name: str

    def __str__(self) -> str:
        return f"forget host {self.name} (its holder is gone): ports, leases, interfaces, records"

    @property
    def removed(self) -> str:
        return f"host {self.name}"


@dataclass(frozen=True)
class ReleasePorts(Action):
    owner: str
    count: int

    def __str__(self) -> str:
        return f"nft: unpublish the {self.count} published port(s) of {self.owner}"

    @property
    def removed(self) -> str:
        return f"published ports of {self.owner}"


def lease_text(table: str, key: str) -> str:
    """A lease as a person reads it: ``10.0.0.2 in network n1``, ``... in the LAN pool``."""
    if table == "%lan":
        return f"{key} in the LAN pool"
    if table.startswith("%cni-"):
        return f"{key} in CNI pool {table[5:]}"
    if table.startswith("%"):
        return f"{key} in table {table}"
    return f"{key} in network {table}"


@dataclass(frozen=True)
class ReleaseLeases(Action):
    """Every lease of a dead owner, in every allocator table (``state/leases.py``)."""

    owner: str
    leases: tuple[tuple[str, str], ...]  # (table, key)

    def __str__(self) -> str:
        held = ", ".join(lease_text(t, k) for t, k in self.leases)
        return f"release the leases of {self.owner}: {held}"

    @property
    def removed_lines(self) -> list[str]:
        # a network's address keeps the words ``gc`` has always printed
        return [
            f"address {k} of {self.owner}"
            if not t.startswith("%")
            else f"address {lease_text(t, k)} of {self.owner}"
            for t, k in self.leases
        ]


@dataclass(frozen=True)
class ForgetAttachment(Action):
    """An attachment of a dead guest: its DHCP client stopped, its veth's host end deleted
    (if it still carries the owner's mark), its record removed."""

    name: str  # the attach record: <owner>@<ifname>
    host_name: str | None  # a veth's host end, None for the others (gone with the guest)

    def __str__(self) -> str:
        if self.host_name:
            return f"ip link del {self.host_name}; forget attachment {self.name}"
        return f"forget attachment {self.name}"

    @property
    def removed(self) -> str:
        return f"attachment {self.name}"


@dataclass(frozen=True)
class DeleteMarkedLink(Action):
    """An interface that carries netplumb's mark: a dead owner's, or an unused bridge."""

    name: str
    mark: str  # its alias, checked again before deleting
    bridge: bool  # an unused bridge of netplumb's (deleted only while it has no port)

    def __str__(self) -> str:
        why = "a bridge of netplumb's without ports" if self.bridge else f'mark "{self.mark}"'
        return f"ip link del {self.name}  # {why}"

    @property
    def removed(self) -> str:
        return f"bridge {self.name}" if self.bridge else f"link {self.name}"


@dataclass(frozen=True)
class Tidy(Action):
    """Indexes and rules that follow what went: port index entries no record backs, the
    ``DOCKER-USER`` rules of the bridges left. Changes nothing when nothing is stale."""

    def __str__(self) -> str:
        return "tidy: port index entries no record backs; DOCKER-USER rules of the bridges left"


def detach_steps(
    ifname: str,
    host_end: str | None,
    addresses: Iterable[tuple[str, str]],
    holder: str,
    held: Iterable[tuple[str, str]],
) -> list[Action]:
    """``detach`` (and ``lan detach``) of one interface, from its attach record: the interface
    (a veth goes by its host end, which takes the guest end with it), the network ``addresses``
    (network, ip) its guest holds for it, then what the attachment (``holder``, its record's
    name) holds in the allocator's other tables (``held``: (table, key)), the LAN pool's in the
    words ``lan detach`` has always printed."""
    steps: list[Action] = [DetachInterface(ifname, host_end)]
    steps += [ReleaseAddress(net, ip) for net, ip in addresses]
    held = tuple(held)
    if any(table == "%lan" for table, _ in held):
        steps.append(ReleaseLanLeases(holder))
    others = tuple(pair for pair in held if pair[0] != "%lan")
    if others:
        steps.append(ReleaseLeases(holder, others))
    return steps
