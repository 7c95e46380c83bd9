"""Which of the privileges netplumb's commands use this process lacks (reads /proc only).

netplumb changes links, addresses and nftables (CAP_NET_ADMIN), enters and makes namespaces
(CAP_SYS_ADMIN), probes the LAN with raw ARP (CAP_NET_RAW), keeps its records where only root
may look (CAP_DAC_OVERRIDE for anyone else) and stops hosts that run as other users
(CAP_KILL). Checked before a command touches anything, so a user without them gets one line
that says what is missing instead of a failure from deep inside (``nft``'s "cache
initialization failed: Operation not permitted").
"""

from __future__ import annotations

NEEDED = {
    "CAP_DAC_OVERRIDE": 1,
    "CAP_KILL": 5,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_SYS_ADMIN": 21,
}


def effective() -> int:
    """The effective capability set, as a bit mask (0 if /proc says nothing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def missing() -> list[str]:
    """The capabilities netplumb needs that this process lacks (root in a container, or under
    a capability bounding set, may lack some too)."""
    mask = effective()
    return [name for name, bit in NEEDED.items() if not mask & (1 << bit)]
