"""The actions of ``netplumb lan attach`` and ``lan detach`` besides an attach's and a
detach's (``actions.py``, ``steps.py``): the LAN pool's lease (after an ARP probe) and the
gratuitous ARP that announces the address once the interface is up."""

from __future__ import annotations

from netplumb.model.ip import IP
from netplumb.plan.actions import Action


class ClaimLanAddress(Action):
    """Probe ``ip`` with ARP on the LAN (refused if someone answers) and lease it in the pool.
    ``chosen`` False: the lowest free address as the pool stands now, one that answers the
    probe being skipped."""

    __slots__ = ("chosen", "holder", "ip")
    ip: IP
    chosen: bool
    holder: str

    def __init__(self, ip: IP, chosen: bool, holder: str) -> None:
        self.ip = ip
        self.chosen = chosen
        self.holder = holder
        self._freeze()

    def __str__(self) -> str:
        how = "" if self.chosen else " (the lowest free one now; one that answers is skipped)"
        return f"probe {self.ip} with ARP on the LAN and lease it in the LAN pool{how}"


class AnnounceLan(Action):
    __slots__ = ("ifname", "ip")
    ifname: str
    ip: IP

    def __init__(self, ifname: str, ip: IP) -> None:
        self.ifname = ifname
        self.ip = ip
        self._freeze()

    def __str__(self) -> str:
        return f"GUEST: arping -U -I {self.ifname} {self.ip}  # announce it on the LAN"


class ReleaseLanLeases(Action):
    __slots__ = ("holder",)
    holder: str

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self._freeze()

    def __str__(self) -> str:
        return f"release the LAN pool addresses of {self.holder}"
