"""``netplumb lan ...``: the host's own LAN (argument parsing and printing only).

Wired into ``netplumb`` by ``register(subs)`` in ``commands.build_parser`` and
``"lan": lan.run`` in ``commands.COMMANDS``; until then ``python -m netplumb.cli.lan ...``
runs the same commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netplumb.errors import NetplumbError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.plan.actions import Action

EXAMPLE = """examples:
  netplumb lan bridge eth1 --timeout 60 && netplumb lan confirm
  netplumb lan pool set 192.168.1.0/24 --range 192.168.1.200-192.168.1.239 --gateway 192.168.1.1
  netplumb lan attach web --ip 192.168.1.200
  netplumb lan macvlan eth1 --shim"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``lan`` and its subcommands; each sets ``func`` (``run`` calls it)."""
    p = subparsers.add_parser(
        "lan",
        help="put containers on the host's own LAN (bridge or macvlan), with safe addresses",
        description="Containers on the host's own LAN, without losing the host or clashing "
        "addresses.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subs = p.add_subparsers(dest="lan_command", metavar="SUBCOMMAND", required=True)

    b = subs.add_parser("bridge", help="move HOSTIF's addresses and routes to a bridge")
    b.add_argument("hostif", metavar="HOSTIF")
    b.add_argument("--bridge", help="the bridge's name (default br-HOSTIF)")
    b.add_argument(
        "--timeout",
        type=int,
        default=60,
        help="seconds to run `netplumb lan confirm` in, else the change is undone (default 60)",
    )
    b.set_defaults(func=cmd_bridge)

    c = subs.add_parser("confirm", help="keep the change lan bridge made (stop the timer)")
    c.set_defaults(func=cmd_confirm)

    u = subs.add_parser("unbridge", help="restore the host interface as it was")
    u.add_argument(
        "--force",
        action="store_true",
        help="even with containers on the bridge, or with the card gone",
    )
    u.set_defaults(func=cmd_unbridge)

    s = subs.add_parser("status", help="the LAN's mode, what moved, the pool and its leases")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_status)

    m = subs.add_parser("macvlan", help="macvlan mode: containers on HOSTIF, HOSTIF untouched")
    m.add_argument("hostif", metavar="HOSTIF", nargs="?")
    m.add_argument(
        "--shim",
        nargs="?",
        const="np-lanshim",
        metavar="NAME",
        help="a host-side macvlan (default np-lanshim) so host and containers talk",
    )
    m.add_argument("--shim-ip", metavar="ADDR", help="the shim's address (default: from the pool)")
    m.add_argument("--remove", action="store_true", help="leave macvlan mode, remove the shim")
    m.add_argument("--rfc-timing", action="store_true", help="RFC 5227's probe timing (slow)")
    m.set_defaults(func=cmd_macvlan)

    pl = subs.add_parser("pool", help="the LAN's address pool")
    psubs = pl.add_subparsers(dest="pool_command", metavar="SUBCOMMAND", required=True)
    ps = psubs.add_parser("set", help="declare the pool: a range inside the LAN subnet")
    ps.add_argument("subnet", metavar="SUBNET", help="the LAN, e.g. 192.168.1.0/24")
    ps.add_argument("--range", required=True, metavar="FIRST-LAST", help="the pool's addresses")
    ps.add_argument("--gateway", help="the LAN's router (containers' default route)")
    ps.add_argument(
        "--dhcp-range", metavar="FIRST-LAST", help="the DHCP server's range (must not overlap)"
    )
    ps.set_defaults(func=cmd_pool_set)
    psubs.add_parser("show", help="the pool and its leases").set_defaults(func=cmd_pool_show)
    psubs.add_parser("rm", help="forget the pool (no leases left)").set_defaults(func=cmd_pool_rm)

    a = subs.add_parser("attach", help="give a container an interface on the LAN")
    a.add_argument("guest", help="host name, netns name, PID, netns path or Docker container")
    a.add_argument("-i", dest="ifname", default="eth1", help="interface in the guest (eth1)")
    a.add_argument("--ip", help="a fixed address (probed with ARP); default: from the pool")
    a.add_argument("--dhcp", action="store_true", help="ask the LAN's DHCP server instead")
    a.add_argument("--mac", help="MAC address (multicast refused; warned if not local)")
    a.add_argument("--rfc-timing", action="store_true", help="RFC 5227's probe timing (slow)")
    a.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    a.set_defaults(func=cmd_attach)

    d = subs.add_parser("detach", help="remove a container's LAN interface, release its address")
    d.add_argument("guest")
    d.add_argument("ifname", nargs="?", default="eth1")
    d.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    d.set_defaults(func=cmd_detach)

    pr = subs.add_parser("probe", help="ARP-probe an address on the LAN (RFC 5227)")
    pr.add_argument("address")
    pr.add_argument("--dev", help="interface to probe on (default: the LAN's)")
    pr.add_argument("--rfc-timing", action="store_true", help="RFC 5227's probe timing (slow)")
    pr.set_defaults(func=cmd_probe)


def run(args: argparse.Namespace) -> int:
    """The ``COMMANDS["lan"]`` entry: each subcommand set its handler as ``func``."""
    rc: int = args.func(args)
    return rc


def _timing(args: argparse.Namespace) -> object:
    from netplumb.kernel import arp
    from netplumb.lan.arp import RFC

    return RFC if getattr(args, "rfc_timing", False) else arp.timing_from_env()


def cmd_bridge(args: argparse.Namespace) -> int:
    from netplumb.ops import lanbridge

    rec = lanbridge.bridge(args.hostif, args.bridge, args.timeout)
    st = lanbridge.status()
    moved = " ".join(st.get("addresses", [])) or "no addresses"
    print(f"{rec['hostif']} is now a port of {rec['bridge']}; moved: {moved}")
    print(
        f"run `netplumb lan confirm` within {rec['timeout']} s, or the change is undone",
        file=sys.stderr,
    )
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    from netplumb.ops import lanbridge

    rec = lanbridge.confirm()
    print(f"confirmed: {rec['hostif']} stays on bridge {rec['bridge']}")
    return 0


def cmd_unbridge(args: argparse.Namespace) -> int:
    from netplumb.ops import lanbridge

    rec = lanbridge.unbridge(args.force)
    if rec.get("restored", True):
        print(f"{rec['hostif']} restored; bridge {rec['bridge']} removed")
    else:
        print(f"{rec['hostif']} is gone, nothing to restore; bridge {rec['bridge']} removed")
    return 0


def status_record() -> dict[str, object]:
    from netplumb import state
    from netplumb.ops import lanbridge, lanpool

    out = lanbridge.status()
    mv = state.read("lan", "macvlan")
    if mv is not None:
        out.update(mode="macvlan", hostif=mv["hostif"], shim=mv.get("shim"))
        out["shim_ip"] = mv.get("shim_ip")
    pool = lanpool.get_pool()
    out["pool"] = str(pool) if pool else None
    out["leases"] = lanpool.leases()
    return out


def cmd_status(args: argparse.Namespace) -> int:
    import json

    st = status_record()
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    for key, value in st.items():
        text = str(value) if value is not None else "-"
        if isinstance(value, dict):
            text = " ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            text = " ".join(map(str, value)) or "-"
        print(f"{key}: {text}")
    return 0


def cmd_macvlan(args: argparse.Namespace) -> int:
    from netplumb.errors import UsageError
    from netplumb.model.ip import IP
    from netplumb.ops import lanpool

    if args.remove:
        rec = lanpool.macvlan_remove()
        print(f"macvlan mode on {rec['hostif']} removed")
        return 0
    if not args.hostif:
        raise UsageError("netplumb lan macvlan: HOSTIF is required (or --remove)")
    if args.shim_ip and args.shim is None:
        args.shim = "np-lanshim"
    ip = IP.parse(args.shim_ip) if args.shim_ip else None
    rec = lanpool.macvlan(args.hostif, args.shim, ip, _timing(args))  # type: ignore[arg-type]
    shim = f"; shim {rec['shim']} {rec['shim_ip']}" if rec.get("shim") else ""
    print(f"macvlan mode on {rec['hostif']}{shim}")
    return 0


def cmd_pool_set(args: argparse.Namespace) -> int:
    from netplumb.lan.pool import make_pool
    from netplumb.ops import lanpool

    pool = make_pool(args.subnet, args.range, args.gateway, args.dhcp_range)
    lanpool.set_pool(pool)
    print(pool)
    return 0


def cmd_pool_show(args: argparse.Namespace) -> int:
    from netplumb.ops import lanpool

    pool = lanpool.get_pool()
    print(pool if pool else "no LAN pool")
    for ip, holder in lanpool.leases().items():
        print(f"{ip}\t{holder}")
    return 0


def cmd_pool_rm(args: argparse.Namespace) -> int:
    from netplumb.ops import lanpool

    lanpool.remove_pool()
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from netplumb.errors import UsageError
    from netplumb.lan.checks import check_mac
    from netplumb.model.ip import IP
    from netplumb.model.names import check_ifname
    from netplumb.ops import languest

    if args.dhcp and args.ip:
        raise UsageError("netplumb lan attach: --dhcp and --ip exclude each other")
    mac = None
    if args.mac:
        mac, warning = check_mac(args.mac)
        if warning:
            print(f"netplumb: {warning}", file=sys.stderr)
    ip = IP.parse(args.ip.split("/")[0]) if args.ip else None
    ifname = check_ifname(args.ifname, "interface name (-i)")
    if args.dry_run:
        return _print_plan(languest.attach_plan(args.guest, ifname, ip, args.dhcp, mac))
    got = languest.attach(args.guest, ifname, ip, args.dhcp, mac, _timing(args))  # type: ignore[arg-type]
    print(got)
    return 0


def _print_plan(actions: list[Action]) -> int:
    for action in actions:
        print(action)
    if not actions:
        print("nothing to do")
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    from netplumb.ops import detach

    if args.dry_run:
        return _print_plan(detach.plan(args.guest, args.ifname))
    detach.detach(args.guest, args.ifname)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from netplumb.model.ip import IP
    from netplumb.ops import lanpool

    ip = IP.parse(args.address)
    dev = args.dev or lanpool.lan_target()[1]
    holder = lanpool.probe_free(dev, ip, _timing(args))  # type: ignore[arg-type]
    if holder is None:
        print(f"{ip} is free on {dev}")
        return 0
    print(f"{ip} is in use on {dev} by {holder}")
    return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m netplumb.cli.lan SUBCOMMAND ...``: the same as ``netplumb lan ...``."""
    import os

    from netplumb.cli.parser import Parser

    args_in = sys.argv[1:] if argv is None else argv
    debug = os.environ.get("NETPLUMB_DEBUG") == "1"
    try:
        parser = Parser(prog="netplumb")
        subs = parser.add_subparsers(dest="command", parser_class=Parser)
        register(subs)
        args = parser.parse_args(["lan", *args_in])
        return run(args)
    except NetplumbError as exc:
        if debug:
            raise
        text = str(exc)
        print(text if text.startswith("netplumb") else f"netplumb: {text}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
