"""``netplumb`` subcommands (all but the one-shot ``pipework`` path): parsing and printing."""

from __future__ import annotations

import argparse
import os
import sys

from netplumb import __version__
from netplumb.cli.parser import Parser
from netplumb.errors import NetplumbError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record

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

    p = _sub(subs, "publish", "publish ports of a guest on this machine (Docker's -p grammar)")
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
    nc.add_argument("--mtu", type=int, default=1500)
    nsubs.add_parser("ls", help="list networks")
    nr = nsubs.add_parser("rm", help="remove a network without endpoints")
    nr.add_argument("name")

    _sub(
        subs,
        "reconcile",
        "bring the kernel back to netplumb's records: put back the missing interfaces, "
        "addresses, MACs and routes of live guests, remove marked objects no record names, "
        "restore the nftables tables and DOCKER-USER rules; one line per repair",
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


def _strip_dashdash(argv: list[str]) -> list[str]:
    return argv[1:] if argv and argv[0] == "--" else argv


def cmd_run(args: argparse.Namespace) -> int:
    from netplumb.model import restart
    from netplumb.ops import containers

    policy = restart.parse(args.restart)  # refused before anything is made

    env = list(args.env)
    if not any(e.partition("=")[0] == "PATH" for e in env):
        env.insert(0, f"PATH={containers.search_path()}")
    record = containers.run(
        args.name,
        _strip_dashdash(args.argv),
        hostname=args.hostname,
        env=env,
        expose=args.expose,
        network=args.network,
        link_specs=args.link,
        publish=args.publish,
        publish_all=args.publish_all,
        ip=args.ip,
        restart=policy,
    )
    print(record["name"])
    return 0


def _addresses(record: dict[str, object]) -> list[str]:
    from netplumb.kernel import netns
    from netplumb.model.ip import IP

    try:
        fd = os.open(str(record["netns"]), os.O_RDONLY)
    except OSError:
        return []
    try:
        with netns.socket_in(fd) as nl:
            return [
                f"{IP(a.address)}/{a.prefixlen}"
                for a in nl.addresses()
                if len(a.address) in (4, 16)
                and not IP(a.address).is_loopback
                and not a.address.startswith(b"\xfe\x80")
            ]
    finally:
        os.close(fd)


def cmd_ps(args: argparse.Namespace) -> int:
    import shlex

    from netplumb import state
    from netplumb.hosts import runtime

    rows: list[dict[str, object]] = []
    for name in runtime.names():
        record = state.read("hosts", name)
        if record is None:
            continue
        now = runtime.current(record)
        st = str(now["state"])
        rows.append(
            {
                "name": name,
                "pid": now.get("pid") or record.get("pid"),
                "state": st,
                "addresses": _addresses(record) if st != "lost" else [],
                "command": shlex.join(record.get("argv", [])),
            }
        )
    from netplumb.project import guests

    for row in guests.docker_rows():  # the Docker services of projects (netplumb up)
        pid = row["netns_pid"]
        rows.append(
            {
                "name": row["name"],
                "pid": row["pid"],
                "state": row["state"],
                "addresses": _addresses({"netns": f"/proc/{pid}/ns/net"}) if pid else [],
                "command": row["command"],
            }
        )
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("NAME", "PID", "STATE", "ADDRESSES", "COMMAND"):
        table.add_column(col, no_wrap=col != "COMMAND")
    for row in rows:
        table.add_row(
            *(escape(" ".join(v) if isinstance(v, list) else str(v)) for v in row.values())
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from netplumb import state
    from netplumb.hosts import runtime

    if state.read("hosts", args.name) is None:
        from netplumb.project import guests

        if args.name in guests.docker_names():  # a project's Docker service: Docker's log
            sys.stdout.flush()
            os.execvp("docker", ["docker", "logs", args.name])
    record = runtime.get(args.name)
    try:
        with open(record["log"], "rb") as f:
            sys.stdout.flush()
            sys.stdout.buffer.write(f.read())
    except FileNotFoundError:
        pass
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from netplumb.hosts import runtime

    argv = _strip_dashdash(args.argv)
    if not argv:
        raise UsageError("netplumb exec: no command given: netplumb exec NAME -- CMD [ARGS...]")
    from netplumb.ops import containers

    record = runtime.get(args.name)
    env = containers.exec_env(record)
    runtime.enter(record)
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise NetplumbError(f"cannot exec {argv[0]} in host {args.name}: {exc.strerror}") from None


def cmd_rm(args: argparse.Namespace) -> int:
    from netplumb.hosts import runtime
    from netplumb.ops import links, ports

    failed = 0
    removed: set[str] = set()
    with ports.batch():  # one nft transaction for all of them
        for name in args.names:
            try:
                runtime.remove(name, force=args.force)
                removed.add(name)
                print(name)
            except NetplumbError as exc:
                print(f"netplumb rm: {exc}", file=sys.stderr)
                failed = 1
    if removed:
        links.refresh_hosts_files(removed)
    return failed


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


def _each_host(args: argparse.Namespace, verb: str, act: Callable[[Record], object]) -> int:
    """Docker's way with many names: each is done or fails on its own line; exit 1 if any
    failed."""
    from netplumb import state

    failed = 0
    for name in args.names:
        try:
            record = state.read("hosts", name)
            if record is None:
                raise NetplumbError(f"No such host: {name}")
            act(record)
            print(name)
        except NetplumbError as exc:
            print(f"netplumb {verb}: {exc}", file=sys.stderr)
            failed = 1
    return failed


def cmd_stop(args: argparse.Namespace) -> int:
    from netplumb.hosts import control

    if args.time < 0:
        raise UsageError(f"netplumb stop: invalid time {args.time}: seconds must be 0 or more")
    return _each_host(args, "stop", lambda record: control.stop(record, float(args.time)))


def cmd_start(args: argparse.Namespace) -> int:
    from netplumb.hosts import control

    return _each_host(args, "start", control.start)


def cmd_attach(args: argparse.Namespace) -> int:
    from netplumb.model.addresses import parse_address_spec
    from netplumb.model.attach import AttachRequest, DhcpSpec
    from netplumb.model.mac import Mac
    from netplumb.model.names import check_ifname
    from netplumb.ops import engine

    if args.dhcp is not None and args.ip:
        raise UsageError("netplumb attach: --dhcp and --ip exclude each other")
    req = AttachRequest(
        guest=args.guest,
        host_if=check_ifname(args.host_if, "host interface"),
        guest_ifname=check_ifname(args.ifname, "interface name (-i)"),
        host_ifname=check_ifname(args.host_ifname, "host interface name (-l)")
        if args.host_ifname
        else None,
        addresses=tuple(parse_address_spec(a) for a in args.ip),
        dhcp=DhcpSpec(None, tuple(args.dhcp.split())) if args.dhcp is not None else None,
        mac=Mac.parse(args.mac) if args.mac else None,
        create_bridge=True,
    )
    actions = engine.attach(req, dry_run=args.dry_run)
    if args.dry_run:
        for action in actions:
            print(action)
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    from netplumb.ops import engine

    engine.detach(args.guest, args.ifname)
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from netplumb.ops import gc

    for line in gc.gc():
        print(f"removed {line}")
    return 0


def _owner(guest: str) -> tuple[str, str]:
    """(owner key, display name) of a guest reference."""
    from netplumb import state
    from netplumb.runtimes.guests import resolve

    if state.read("hosts", guest) is not None:
        return f"host:{guest}", guest
    with resolve(guest) as g:
        return g.key, guest


def cmd_publish(args: argparse.Namespace) -> int:
    from netplumb.ops import ports

    owner, name = _owner(args.guest)
    ports.publish(owner, name, args.specs)
    for line in ports.port_lines(owner, name, None):
        print(line)
    return 0


def cmd_unpublish(args: argparse.Namespace) -> int:
    from netplumb.ops import ports

    owner, name = _owner(args.guest)
    if ports.unpublish(owner, args.specs) == 0:
        raise NetplumbError(f"Error: No public port '{' '.join(args.specs)}' published for {name}")
    return 0


def cmd_port(args: argparse.Namespace) -> int:
    from netplumb.ops import ports

    owner, name = _owner(args.guest)
    for line in ports.port_lines(owner, name, args.port):
        print(line)
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    from netplumb.ops import links

    lines = links.env_for(args.target, args.alias, args.linking)
    if args.json:
        import json

        print(json.dumps(dict(v.partition("=")[::2] for v in lines), indent=2))
    else:
        print("\n".join(lines))
    return 0


def cmd_network(args: argparse.Namespace) -> int:
    from netplumb.model.network import make_network
    from netplumb.ops import networks

    if args.network_command == "create":
        net = make_network(
            args.name,
            args.bridge or f"np-{args.name}"[:15],
            args.subnet,
            args.gateway,
            args.isolation,
            args.mtu,
            subnet6=args.subnet6,
            gateway6=args.gateway6,
        )
        networks.create(net)  # its rules come with it (networks.create writes the ruleset)
        print(net.name)
    elif args.network_command == "rm":
        networks.remove(args.name)
    else:
        for name in networks.names():
            found = networks.get(name)
            if found is not None:
                iso = " isolation" if found.isolation else ""
                v6 = f" {found.subnet6}" if found.subnet6 else ""
                subnets = f"{found.subnet}{v6}"
                print(f"{found.name}\t{found.bridge}\t{subnets}\tgateway {found.gateway.ip}{iso}")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from netplumb.kernel import dockeruser
    from netplumb.ops import reconcile

    reconcile.reconcile(print)  # interfaces, then netplumb's nftables tables
    dockeruser.sync()  # a dockerd started since: its FORWARD DROP must not cut netplumb's bridges
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    import time

    from netplumb.ops import watch

    def log(line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        print(f"{stamp}Z {line}", flush=True)

    watch.run(log, lambda: print("watching", flush=True))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from netplumb.ops.inspect import inspect

    print(json.dumps([inspect(name) for name in args.names], indent=4))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from netplumb.graph.snapshot import snapshot
    from netplumb.graph.svg import render, to_png

    svg = render(*snapshot())
    if args.output and args.output.endswith(".png"):
        to_png(svg, args.output)
    elif args.output:
        with open(args.output, "w") as f:
            f.write(svg)
    else:
        sys.stdout.write(svg)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from netplumb import demo

    if args.down:
        demo.down()
    else:
        demo.down()  # a demo left from an earlier run: start from scratch
        if args.runtime == "host" and args.data == demo.DEFAULT_DATA:
            import shutil

            shutil.rmtree(args.data, ignore_errors=True)  # the demo's own data: start empty
        demo.up(args.data, args.runtime, args.lan, args.lan_pool)
    return 0


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


def privileges_error(command: str) -> NetplumbError | None:
    """The one-line error for a user who lacks netplumb's privileges, or None."""
    from netplumb.kernel import caps

    lacking = caps.missing()
    if not lacking:
        return None
    return NetplumbError(
        f"netplumb {command}: needs root (run it as root, e.g. with sudo); this process lacks "
        f"{', '.join(lacking)}"
    )


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
    except NetplumbError as exc:
        if debug:
            raise
        text = str(exc)
        print(
            text if text.startswith(("netplumb", "Error:")) else f"netplumb: {text}",
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader went away: cli.main ends quietly
    except OSError as exc:  # a system call netplumb did not expect to fail: still one line
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"netplumb: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
