"""``netplumb lan status``: the LAN's mode (bridge or macvlan), what moved, the pool, its leases."""

from __future__ import annotations

from netplumb import state
from netplumb.ops import lanbridge, lanpool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def status() -> Record:
    out = lanbridge.status()
    mv = state.read("lan", "macvlan")
    if mv is not None:
        out.update(mode="macvlan", hostif=mv["hostif"], shim=mv.get("shim"))
        out["shim_ip"] = mv.get("shim_ip")
    pool = lanpool.get_pool()
    out["pool"] = str(pool) if pool else None
    out["leases"] = lanpool.leases()
    return out
