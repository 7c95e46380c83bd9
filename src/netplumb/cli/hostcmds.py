"""The host commands: run, ps, logs, exec, rm, stop and start (their parsers are in
commands.py)."""

from __future__ import annotations

import argparse
import os
import sys

from netplumb.errors import NetplumbError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record


def _strip_dashdash(argv: list[str]) -> list[str]:
    return argv[1:] if argv and argv[0] == "--" else argv


def cmd_run(args: argparse.Namespace) -> int:
    from netplumb.model import restart
    from netplumb.model.dnsnames import check_aliases
    from netplumb.model.links import Link
    from netplumb.model.ports import parse_expose, parse_port_spec
    from netplumb.ops import containers

    policy = restart.parse(args.restart)  # refused before anything is made
    aliases = check_aliases(args.network_alias)
    for spec in args.expose:  # checked in the order run always checked them
        parse_expose(spec)
    mappings = [m for spec in args.publish for m in parse_port_spec(spec)]
    links_to = [Link.parse(spec) for spec in args.link]

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
        links_to=links_to,
        publish=mappings,
        publish_all=args.publish_all,
        ip=args.ip,
        restart=policy,
        aliases=aliases,
        link_env=args.link_env,
    )
    print(record["name"])
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    from netplumb.project import views

    rows = views.ps_rows()
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
    from netplumb.ops import links, ports, remove

    failed = 0
    if args.dry_run:
        for name in args.names:
            try:
                plan = remove.plan(name)
            except NetplumbError as exc:
                print(f"netplumb rm: {exc}", file=sys.stderr)
                failed = 1
                continue
            print(f"remove {name}")
            for action in plan:
                print(f"  {action}")
        return failed
    removed: set[str] = set()
    with ports.batch():  # one nft transaction for all of them
        for name in args.names:
            try:
                remove.remove(name, force=args.force)
                removed.add(name)
                print(name)
            except NetplumbError as exc:
                print(f"netplumb rm: {exc}", file=sys.stderr)
                failed = 1
    if removed:
        links.refresh_hosts_files(removed)
    return failed


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
