"""``netplumb`` subcommands (all but the one-shot ``pipework`` path): parsing and printing."""

from __future__ import annotations

import argparse
import os

from netplumb import __version__
from netplumb.cli.hostcmds import (
    cmd_exec,
    cmd_logs,
    cmd_ps,
    cmd_rm,
    cmd_run,
    cmd_start,
    cmd_stop,
)
from netplumb.cli.lean import privileges_error
from netplumb.cli.netcmds import (
    cmd_attach,
    cmd_demo,
    cmd_detach,
    cmd_gc,
    cmd_graph,
    cmd_inspect,
    cmd_link,
    cmd_network,
    cmd_port,
    cmd_publish,
    cmd_reconcile,
    cmd_unpublish,
    cmd_watch,
)
from netplumb.cli.parser import Parser
from netplumb.errors import NetplumbError

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass

EXAMPLES = {
    "run": "netplumb run --name db --expose 27017 -- birthdays mongo --port 27017",
    "ps": "netplumb ps",
    "logs": "netplumb logs db",
    "exec": "netplumb exec db -- ip -br addr",
    "rm": "netplumb rm -f db",
    "stop": "netplumb stop -t 5 db",
    "start": "netplumb start db",
    "attach": "netplumb attach db br-demo --ip 10.2.0.11/16@10.2.0.1 -i eth1",
    "detach": "netplumb detach db eth1",
    "pipework": "netplumb pipework br1 -i eth1 db 10.2.0.11/16@10.2.0.1",
    "gc": "netplumb gc",
    "publish": "netplumb publish web 127.0.0.1:8081:80 8080:8080/tcp",
    "unpublish": "netplumb unpublish web 8080",
    "port": "netplumb port web 80/tcp",
    "link": "netplumb link env db mongo --from webserver1 > mongo.env",
    "network": "netplumb network create demo --subnet 10.2.0.0/16 --isolation",
    "reconcile": "netplumb reconcile",
    "watch": "netplumb watch",
    "demo": "netplumb demo",
    "inspect": "netplumb inspect webserver1",
    "graph": "netplumb graph -o system.svg",
}


# The shared parser; ``_Parser`` here, as the command definitions below name it.
_Parser = Parser


def _sub(subs: argparse._SubParsersAction[_Parser], name: str, help_text: str) -> _Parser:
    return subs.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {EXAMPLES[name]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> _Parser:
    parser = _Parser(
        prog="netplumb",
        description=(
            "Wire containers together on Linux: lightweight hosts, Docker-style links and "
            "published ports, and pipework-style extra interfaces, with real kernel objects."
        ),
        epilog=(
            "examples:\n"
            "  netplumb run --name web -- python3 -m http.server 8080\n"
            "  pipework br1 web 10.2.0.10/16@10.2.0.1\n"
            "  netplumb ps"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netplumb {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = _sub(subs, "run", "start a lightweight host: CMD in its own network namespace")
    p.add_argument("--name", required=True, help="the host's name")
    p.add_argument("--hostname", help="its hostname (default: the name)")
    p.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="set an environment variable (K alone copies it from here)",
    )
    p.add_argument(
        "--expose",
        action="append",
        default=[],
        metavar="PORT[/PROTO]",
        help="a port the host serves, for links",
    )
    p.add_argument(
        "--network",
        default="netplumb",
        help="network to join: netplumb (the default bridge np0), a name, or none",
    )
    p.add_argument("--ip", help="a fixed address on that network")
    p.add_argument(
        "--link",
        action="append",
        default=[],
        metavar="NAME[:ALIAS]",
        help="link to another host or Docker container (Docker's variables, /etc/hosts)",
    )
    p.add_argument(
        "--no-link-env",
        dest="link_env",
        action="store_false",
        help="links give no environment variables, only /etc/hosts lines and DNS names "
        "(Docker 29's links; by default they give Docker 28's variables)",
    )
    p.add_argument(
        "--network-alias",
        action="append",
        default=[],
        metavar="NAME",
        help="another DNS name of the host on its network (repeatable; letters, digits, '-', "
        "dots between labels)",
    )
    p.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
        help="publish a port on the machine (Docker's -p grammar)",
    )
    p.add_argument(
        "-P",
        "--publish-all",
        action="store_true",
        help="publish every exposed port on an ephemeral host port",
    )
    p.add_argument(
        "--restart",
        default="no",
        metavar="POLICY",
        help="restart the command when it exits: no (default), on-failure[:N], always, "
        "unless-stopped (Docker's policies and back-off)",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command")

    p = _sub(subs, "ps", "list hosts: name, pid, state, addresses")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = _sub(subs, "logs", "print a host's output")
    p.add_argument("name")

    p = _sub(subs, "exec", "run a command inside a host's namespaces")
    p.add_argument("name")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS")

    p = _sub(subs, "rm", "stop hosts and remove their network")
    p.add_argument("-f", "--force", action="store_true", help="kill at once (no grace period)")
    p.add_argument("names", nargs="+", metavar="NAME")
    stop_start_parsers(subs)

    p = _sub(subs, "attach", "give a guest another interface on a bridge or a parent interface")
    p.add_argument("guest", help="host name, netns name, PID, netns path or Docker container")
    p.add_argument(
        "host_if", metavar="HOSTIF", help="a bridge (created if missing) or a parent interface"
    )
    p.add_argument(
        "-i", dest="ifname", default="eth1", help="interface name in the guest (default eth1)"
    )
    p.add_argument("-l", dest="host_ifname", help="name of the host end of the veth")
    p.add_argument(
        "--ip",
        action="append",
        default=[],
        metavar="ADDR/PREFIX[@GW]",
        help="a static address (repeatable); 0/0 for none",
    )
    p.add_argument("--mac", help="MAC address, or U:text for a stable derived one")
    p.add_argument("--dhcp", nargs="?", const="", metavar="CLIENT_ARGS", help="use DHCP")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")

    p = _sub(subs, "detach", "remove an interface netplumb attached")
    p.add_argument("guest")
    p.add_argument("ifname")

    _sub(subs, "pipework", "pipework's command line, unchanged (see `pipework --help`)")

    _sub(subs, "gc", "remove what belongs to dead guests, and nothing else")

    p = _sub(
        subs,
        "publish",
        "publish ports of a guest on this machine (Docker's -p grammar); prints what it published",
    )
    p.add_argument("guest")
    p.add_argument("specs", nargs="+", metavar="SPEC")

    p = _sub(subs, "unpublish", "remove published ports of a guest")
    p.add_argument("guest")
    p.add_argument("specs", nargs="+", metavar="SPEC")

    p = _sub(subs, "port", "list a guest's published ports, as docker port does")
    p.add_argument("guest")
    p.add_argument("port", nargs="?", metavar="PORT[/PROTO]")

    p = _sub(subs, "link", "Docker link variables for containers started by other tools")
    lsubs = p.add_subparsers(
        dest="link_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    le = lsubs.add_parser("env", help="print TARGET's link variables as ALIAS (one K=V a line)")
    le.add_argument("target")
    le.add_argument("alias")
    le.add_argument(
        "--from", dest="linking", default="netplumb", help="the linking container's name"
    )
    le.add_argument("--json", action="store_true", help="print a JSON object")

    p = _sub(subs, "network", "create, list and remove networks (a bridge with a subnet)")
    nsubs = p.add_subparsers(
        dest="network_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    nc = nsubs.add_parser("create", help="create a network")
    nc.add_argument("name")
    nc.add_argument("--subnet", required=True, help="e.g. 10.2.0.0/16")
    nc.add_argument("--gateway", help="the bridge's address (default: the first of the subnet)")
    nc.add_argument("--subnet6", help="an IPv6 subnet as well (dual stack), e.g. fd00:2::/64")
    nc.add_argument("--gateway6", help="the bridge's IPv6 address (default: the subnet's first)")
    nc.add_argument("--bridge", help="bridge name (default: np-NAME)")
    nc.add_argument(
        "--isolation",
        action="store_true",
        help="guests reach each other only on linked, exposed ports (Docker's --icc=false)",
    )
    nc.add_argument(
        "--internal",
        action="store_true",
        help="no way out, as Docker's --internal: nothing routed to or from other interfaces "
        "(guests reach each other and the machine's gateway addresses), no masquerade, and its "
        "DNS server forwards no outside names",
    )
    nc.add_argument("--mtu", type=int, default=1500)
    nsubs.add_parser("ls", help="list networks")
    nr = nsubs.add_parser("rm", help="remove a network without endpoints")
    nr.add_argument("name")
    for q in (nc, nr, *(subs.choices[n] for n in ("detach", "publish", "unpublish", "rm", "gc"))):
        q.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")

    _sub(
        subs,
        "reconcile",
        "bring the kernel back to netplumb's records: put back the missing interfaces, "
        "addresses, MACs and routes of live guests, remove marked objects no record names, "
        "restore the nftables tables, DOCKER-USER rules, socket and LAN redirection; one line per "
        "repair",
    )
    _sub(
        subs,
        "watch",
        "reconcile, print 'watching', then reconcile on events (a Docker container starting, "
        "dockerd back, netplumb's interfaces removed, its nftables table changed) until SIGTERM",
    )

    p = _sub(subs, "inspect", "a host as JSON, shaped like docker inspect's NetworkSettings")
    p.add_argument("names", nargs="+", metavar="NAME")

    p = _sub(subs, "graph", "the system as a picture: hosts, bridges, addresses, links, ports")
    p.add_argument(
        "-o",
        "--output",
        help="write to this file, SVG or, for a name ending in .png, PNG (default: SVG to "
        "standard output)",
    )

    p = _sub(subs, "demo", "bring up the article's system and run its curl calls")
    p.add_argument("--down", action="store_true", help="take the demo down")
    p.add_argument(
        "--data",
        default="/var/lib/netplumb-demo/db",
        help="the demo database's directory (default /var/lib/netplumb-demo/db; hosts only)",
    )
    p.add_argument(
        "--runtime",
        choices=("host", "docker"),
        default="host",
        help="netplumb hosts (default) or Docker containers of netplumb/birthdays:local",
    )
    p.add_argument(
        "--lan",
        metavar="IF",
        help="put webserver1 on the LAN of this interface (default: a simulated LAN)",
    )
    p.add_argument(
        "--lan-pool",
        metavar="FIRST-LAST",
        help="with --lan: the addresses netplumb may give out, outside the LAN's DHCP range",
    )
    from netplumb.cli import cni, completion, lan, project

    project.register(subs)  # type: ignore[arg-type]
    lan.register(subs)
    cni.register(subs)  # type: ignore[arg-type]
    completion.register(subs, parser)  # type: ignore[arg-type]
    from netplumb.cli.examples import attach_examples

    attach_examples(parser)
    return parser


def stop_start_parsers(subs: argparse._SubParsersAction[_Parser]) -> None:
    p = _sub(
        subs,
        "stop",
        "stop hosts' commands; they keep their network, and their restart policy waits for start",
    )
    p.add_argument(
        "-t",
        "--time",
        type=int,
        default=10,
        metavar="SECONDS",
        help="seconds to wait after SIGTERM before SIGKILL (default 10)",
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_stop)
    p = _sub(subs, "start", "start stopped hosts' commands again, in the same namespaces")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_start)


COMMANDS = {
    "run": cmd_run,
    "ps": cmd_ps,
    "logs": cmd_logs,
    "exec": cmd_exec,
    "rm": cmd_rm,
    "attach": cmd_attach,
    "detach": cmd_detach,
    "gc": cmd_gc,
    "publish": cmd_publish,
    "unpublish": cmd_unpublish,
    "port": cmd_port,
    "link": cmd_link,
    "network": cmd_network,
    "reconcile": cmd_reconcile,
    "watch": cmd_watch,
    "demo": cmd_demo,
    "inspect": cmd_inspect,
    "graph": cmd_graph,
}


def _check_privileges(command: str) -> None:
    error = privileges_error(command)
    if error is not None:
        raise error


def main(argv: list[str]) -> int:
    debug = "--debug" in argv[:1] or os.environ.get("NETPLUMB_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = debug or args.debug
        if not args.command:
            parser.print_help()
            return 2
        if args.command not in ("completion", "__complete"):
            _check_privileges(args.command)
        # Reading commands change nothing: a flushed ruleset is repaired by `reconcile` (and by
        # a changing command, for what its plan touches), never as a side effect of `ps`.
        func = getattr(args, "func", None) or COMMANDS[args.command]
        return int(func(args))
    except (NetplumbError, KeyboardInterrupt, OSError) as exc:
        from netplumb.cli.lean import ended

        return ended(exc, debug)
