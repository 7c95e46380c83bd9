"""``netplumb lan bridge``: the host interface's addresses and routes move to a bridge, as one
transaction guarded by a dead-man timer; ``lan confirm``, ``lan unbridge``, ``lan status``.

The layout of the interface (every address and route that moves, as the kernel dumped them) is
written to the state directory before anything changes. Any failure, ``lan unbridge`` and the
timer all put it back from that record with the same idempotent ``restore``, so a command
killed halfway is repaired by the timer too.
"""

from __future__ import annotations

import os
import time

from netplumb import state
from netplumb.errors import Conflict, InvalidValue, KernelError, NetplumbError
from netplumb.kernel import deadman, dockeruser, lanlink
from netplumb.kernel.netlink import Netlink
from netplumb.lan import layout
from netplumb.model.names import check_ifname
from netplumb.state.lock import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

DEFAULT_TIMEOUT = 60
IFF_LOOPBACK = 0x8
# Tests inject a failure after a named step, to check that the interface comes back as it was.
STEPS = (
    "deadman",
    "create-bridge",
    "enslave",
    "delete-routes",
    "delete-addresses",
    "add-addresses",
    "add-routes",
)


def lock() -> Lock:
    return Lock("lan", "bridge.lock")


def _fail_after(step: str) -> None:
    if os.environ.get("NETPLUMB_LAN_FAIL_AFTER") == step:
        raise NetplumbError(f"injected failure after {step}")


def default_bridge(hostif: str) -> str:
    return f"br-{hostif}"[:15]


def current() -> Record | None:
    return state.read("lan", "bridge")


def bridge(hostif: str, bridge_name: str | None = None, timeout: int = DEFAULT_TIMEOUT) -> Record:
    """Move ``hostif``'s addresses and routes to a new bridge with ``hostif`` as its port."""
    hostif = check_ifname(hostif, "host interface")
    name = check_ifname(bridge_name or default_bridge(hostif), "bridge name")
    if not 1 <= timeout <= 86400:
        raise InvalidValue(f"invalid --timeout {timeout}: 1 to 86400 seconds")
    with lock():
        if current() is not None:
            rec = current() or {}
            raise Conflict(
                f"a LAN bridge is already set up ({rec.get('hostif')} on {rec.get('bridge')}): "
                "netplumb lan unbridge first"
            )
        if state.read("lan", "macvlan") is not None:
            raise Conflict("the LAN is in macvlan mode: netplumb lan macvlan --remove first")
        with Netlink() as nl:
            record = _check_and_plan(nl, hostif, name, timeout)
            state.write(record, "lan", "bridge")  # saved before anything changes
            try:
                _apply(nl, record)
            except BaseException:
                deadman.stop(int(record.get("deadman_pid") or 0))
                restore(nl, record)
                state.remove("lan", "bridge")
                raise
    return record


def _check_and_plan(nl: Netlink, hostif: str, name: str, timeout: int) -> Record:
    link = nl.get_link(hostif)
    if link is None:
        raise InvalidValue(f'host interface "{hostif}" does not exist')
    if link.kind == "bridge":
        raise InvalidValue(
            f'"{hostif}" is a bridge already: name the interface it should take over'
        )
    if link.flags & IFF_LOOPBACK or len(link.mac) != 6:
        raise InvalidValue(f'"{hostif}" is not an Ethernet interface')
    if link.master:
        masters = {ln.index: ln.name for ln in nl.links()}
        raise Conflict(f'"{hostif}" is already a port of "{masters.get(link.master, link.master)}"')
    if nl.get_link(name) is not None:
        raise Conflict(f'cannot create bridge "{name}": an interface of that name exists')
    plan = layout.plan_bridge(hostif, link.index, lanlink.addresses(nl), lanlink.routes(nl))
    now = time.time()
    return {
        "hostif": hostif,
        "bridge": name,
        "mac": link.mac.hex(":"),
        "mtu": link.mtu,
        "created": False,
        "confirmed": False,
        "token": os.urandom(6).hex(),
        "timeout": timeout,
        "started": now,
        "deadline": now + timeout,
        "deadman_pid": 0,
        **layout.to_record(plan),
    }


def _apply(nl: Netlink, record: Record) -> None:
    hostif, name = str(record["hostif"]), str(record["bridge"])
    plan = layout.from_record(record)
    env = {k: v for k, v in os.environ.items() if k != "NETPLUMB_LAN_FAIL_AFTER"}
    args = [state.state_dir(), str(record["token"]), str(record["timeout"])]
    record["deadman_pid"] = deadman.spawn(args, env)
    state.write(record, "lan", "bridge")
    _fail_after("deadman")

    mac = bytes.fromhex(str(record["mac"]).replace(":", ""))
    what = f'cannot add bridge "{name}"'
    nl.create_link(name, "bridge", up=True, mtu=int(record["mtu"]), mac=mac, what=what)
    record["created"] = True
    br = nl.get_link(name)
    if br is None:
        raise KernelError(what, 19)
    nl.set_link(br.index, alias=lanlink.LAN_MARK + hostif, what=f'cannot mark bridge "{name}"')
    state.write(record, "lan", "bridge")
    # Under dockerd's FORWARD DROP, traffic bridged between the LAN and guests needs its rule.
    dockeruser.sync(nl)
    _fail_after("create-bridge")

    host = nl.get_link(hostif)
    if host is None:
        raise KernelError(f'cannot find "{hostif}"', 19)
    nl.set_link(host.index, master=br.index, what=f'cannot add "{hostif}" to bridge "{name}"')
    _fail_after("enslave")
    for route in reversed(plan.route_add_order()):
        lanlink.delete_route(nl, route, host.index, hostif)
    _fail_after("delete-routes")
    for addr in plan.delete_order():
        lanlink.delete_address(nl, addr, host.index, hostif)
    _fail_after("delete-addresses")
    for addr in plan.add_order():
        # The host's own address, known good on this link: no duplicate address detection
        # (it would leave the host without IPv6 for a second).
        lanlink.add_address(
            nl,
            addr,
            br.index,
            name,
            label=layout.moved_label(addr.label, hostif, name),
            extra_flags=layout.IFA_F_NODAD if addr.family == layout.AF_INET6 else 0,
        )
    _fail_after("add-addresses")
    for route in plan.route_add_order():
        lanlink.add_route(nl, route, br.index, name)
    _fail_after("add-routes")


def restore(nl: Netlink, record: Record, card_gone_ok: bool = False) -> bool:
    """Put the host interface back as the record says; idempotent, from any partial state.

    A card that is gone (a USB card pulled out, a veth whose peer's namespace ended) cannot
    get its addresses back: that is an error, unless ``card_gone_ok`` (``unbridge --force``),
    where the bridge is removed all the same and False says the card was not restored.
    """
    hostif, name = str(record["hostif"]), str(record["bridge"])
    plan = layout.from_record(record)
    br = nl.get_link(name)
    ours = br is not None and br.alias == lanlink.LAN_MARK + hostif
    host = nl.get_link(hostif)
    if host is None and not card_gone_ok:
        raise Conflict(
            f'cannot restore "{hostif}": it is gone (netplumb lan unbridge --force removes '
            f'bridge "{name}" all the same)'
        )
    if br is not None and ours:
        for route in reversed(plan.route_add_order()):
            lanlink.delete_route(nl, route, br.index, name)
        for addr in plan.delete_order():
            lanlink.delete_address(nl, addr, br.index, name)
    if host is None:
        if br is not None and ours:
            nl.delete_link(br.index, f'cannot delete bridge "{name}"')
            dockeruser.sync(nl)
        return False
    if host.master:
        nl.set_link(host.index, master=0, what=f'cannot take "{hostif}" out of bridge "{name}"')
    for addr in plan.add_order():
        lanlink.add_address(nl, addr, host.index, hostif, exist_ok=True)
    for route in plan.route_add_order():
        lanlink.add_route(nl, route, host.index, hostif, exist_ok=True)
    if br is not None and ours:
        nl.delete_link(br.index, f'cannot delete bridge "{name}"')
        dockeruser.sync(nl)
    return True


def confirm() -> Record:
    with lock():
        rec = current()
        if rec is None:
            raise NetplumbError("no LAN change is waiting for confirmation (netplumb lan status)")
        if not rec.get("confirmed"):
            rec["confirmed"] = True
            rec["confirmed_at"] = time.time()
            state.write(rec, "lan", "bridge")
            deadman.stop(int(rec.get("deadman_pid") or 0))
        return rec


def unbridge(force: bool = False) -> Record:
    with lock():
        rec = current()
        if rec is None:
            raise NetplumbError("no LAN bridge to undo (netplumb lan status)")
        name, hostif = str(rec["bridge"]), str(rec["hostif"])
        with Netlink() as nl:
            br = nl.get_link(name)
            if br is not None and not force:
                others = [p for p in lanlink.ports_of(nl, br.index) if p != hostif]
                if others:
                    raise Conflict(
                        f'bridge "{name}" still has ports {", ".join(others)}: detach them '
                        "first (netplumb lan detach), or --force"
                    )
            deadman.stop(int(rec.get("deadman_pid") or 0))
            rec["restored"] = restore(nl, rec, card_gone_ok=force)
        state.remove("lan", "bridge")
        return rec


def status() -> Record:
    rec = current()
    out: Record = {"mode": None}
    if rec is not None:
        plan = layout.from_record(rec)
        pid = int(rec.get("deadman_pid") or 0)
        out = {
            "mode": "bridge",
            "hostif": rec["hostif"],
            "bridge": rec["bridge"],
            "confirmed": bool(rec.get("confirmed")),
            "addresses": [str(a) for a in plan.addresses],
            "routes": [str(r) for r in plan.routes],
        }
        if not rec.get("confirmed"):
            out["reverts_in"] = max(0, round(float(rec["deadline"]) - time.time()))
            out["timer_running"] = deadman.alive(pid)
    reverted = state.read("lan", "reverted")
    if reverted is not None:
        out["last_revert"] = reverted
    return out


def deadman_main(argv: list[str]) -> None:
    """The timer: after the delay, revert unless the change was confirmed meanwhile."""
    state_dir, token, seconds = argv[0], argv[1], float(argv[2])
    os.environ["NETPLUMB_STATE_DIR"] = state_dir
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(left)
    with lock():
        rec = current()
        if rec is None or rec.get("token") != token or rec.get("confirmed"):
            return
        note: Record = {
            "time": time.time(),
            "hostif": rec["hostif"],
            "bridge": rec["bridge"],
            "reason": f"not confirmed within {rec['timeout']} s",
        }
        try:
            with Netlink() as nl:
                restore(nl, rec)
            state.remove("lan", "bridge")
        except NetplumbError as exc:  # keep the record: lan unbridge can try again
            note["error"] = str(exc)
        state.write(note, "lan", "reverted")
