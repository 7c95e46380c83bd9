"""What a project's plan starts from: the guests and networks that exist now (pure values,
filled in by ``project/apply.py``, which reads the records, the kernel and Docker)."""

from __future__ import annotations

from dataclasses import dataclass, field

from netplumb.model.network import Network
from netplumb.plan.attach import HostLink


@dataclass(frozen=True)
class Guest:
    """A guest that exists under a replica's name: who owns it and whether it still matches."""

    name: str
    runtime: str
    project: str | None  # the project that started it; None: started by something else
    digest: str | None
    running: bool
    # what its records say it holds (for the removal plan, and the address a link to it gives)
    owner: str = ""
    addresses: tuple[tuple[str, str], ...] = ()  # (network, address), the first one first
    interfaces: tuple[tuple[str, str | None], ...] = ()  # (ifname, host end) of its attaches
    ports: int = 0  # published ports


@dataclass(frozen=True)
class Observed:
    """What exists now. ``recorded`` and ``owned_networks`` come from the project's record."""

    networks: dict[str, Network] = field(default_factory=dict)
    guests: dict[str, Guest] = field(default_factory=dict)
    recorded: tuple[str, ...] = ()  # replica names the project's record holds, in start order
    recorded_runtimes: dict[str, str] = field(default_factory=dict)
    owned_networks: tuple[str, ...] = ()
    # for the fine-grained steps: the addresses leased per network, the default network (as
    # it is, or as it would be made), the host interfaces extra interfaces name, the DHCP
    # client, and the scope the ownership marks carry
    leases: dict[str, frozenset[str]] = field(default_factory=dict)
    default_network: Network | None = None
    host_links: dict[str, HostLink] = field(default_factory=dict)
    dhcp_client: str | None = None
    scope: str | None = None
    steps: bool = True  # plan the fine-grained steps too (to print them: --dry-run, tests)
