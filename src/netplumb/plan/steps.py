"""The fine-grained actions of a project's plan besides an attach's (``actions.py``).

An ``up`` plan is a list of steps (create a network, start a guest, wait, remove a guest);
each step carries the fine-grained actions it takes, the attach ones from the one attach
planner (``plan/attach.py``), a network's from ``plan/networks.py``, its published ports' from
``plan/ports.py``, and these: the leases, the guest's process, its link variables and
``/etc/hosts`` lines, and what removing a guest undoes. ``str(action)`` is the line
``--dry-run`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from netplumb.model.ip import IP
from netplumb.plan.actions import Action


@dataclass(frozen=True)
class LeaseAddress(Action):
    network: str
    ip: IP
    chosen: bool  # False: the lowest free address, as the leases stand now

    def __str__(self) -> str:
        how = "" if self.chosen else " (the lowest free one now)"
        return f"lease {self.ip} in network {self.network}{how}"


@dataclass(frozen=True)
class ReleaseAddress(Action):
    network: str
    ip: str

    def __str__(self) -> str:
        return f"release {self.ip} in network {self.network}"


@dataclass(frozen=True)
class StartHost(Action):
    """A netplumb host: a holder process in a new network namespace (and mount namespace
    for its ``/etc/hosts``); its command starts once its interfaces are set up."""

    name: str

    def __str__(self) -> str:
        return f"start host {self.name}: holder process in a new netns (GUEST)"


@dataclass(frozen=True)
class RunCommand(Action):
    command: tuple[str, ...]

    def __str__(self) -> str:
        import shlex

        return f"GUEST: exec {shlex.join(self.command)}"


@dataclass(frozen=True)
class CreateContainer(Action):
    name: str
    image: str

    def __str__(self) -> str:
        return (
            f"docker create --name {self.name} --network none {self.image} && "
            f"docker start {self.name} (GUEST)"
        )


@dataclass(frozen=True)
class LinkVariable(Action):
    text: str

    def __str__(self) -> str:
        return f"GUEST: env {self.text}"


@dataclass(frozen=True)
class HostsLine(Action):
    text: str

    def __str__(self) -> str:
        return f"GUEST: /etc/hosts += {self.text.replace(chr(9), ' ')}"


@dataclass(frozen=True)
class StopGuest(Action):
    name: str
    runtime: str

    def __str__(self) -> str:
        if self.runtime == "docker":
            return f"docker rm -f {self.name}"
        return f"stop host {self.name} (its netns and the veth ends in it go with it)"


@dataclass(frozen=True)
class DetachInterface(Action):
    ifname: str
    host_name: str | None

    def __str__(self) -> str:
        if self.host_name:
            return f"ip link del {self.host_name}  # the veth of GUEST's {self.ifname}"
        return f"GUEST: ip link del {self.ifname}"


@dataclass(frozen=True)
class UnpublishPorts(Action):
    owner: str
    count: int

    def __str__(self) -> str:
        return f"nft: unpublish the {self.count} published port(s) of {self.owner}"


@dataclass(frozen=True)
class Refused(Action):
    """Where applying the plan would stop: the error it would give (and roll back)."""

    error: str

    def __str__(self) -> str:
        return f"refused: {self.error}"
