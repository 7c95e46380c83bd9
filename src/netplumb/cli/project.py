"""``netplumb up`` and ``netplumb down``: a topology file's project, brought up and taken down."""

from __future__ import annotations

import argparse
import os
import sys

from netplumb.errors import NetplumbError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.topofile.model import Topology

UP_EXAMPLE = "netplumb up -f examples/birthdays.yaml"
DOWN_EXAMPLE = "netplumb down -f examples/birthdays.yaml"
DEFAULT_FILE = "netplumb.yaml"


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subs.add_parser(
        "up",
        help="bring up a topology file's project (networks, hosts, containers, links, ports)",
        description=(
            "Plan and apply a topology file in dependency order. Atomic: a failure removes "
            "what this up created. Idempotent: a second up changes nothing; after an edit, "
            "only what differs is replaced."
        ),
        epilog=f"example:\n  {UP_EXAMPLE}\n  netplumb up -f examples/birthdays.yaml --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-f", "--file", default=DEFAULT_FILE, help=f"the file (default {DEFAULT_FILE})")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.set_defaults(func=cmd_up)

    p = subs.add_parser(
        "down",
        help="remove everything a project owns: guests, addresses, ports, its networks",
        description=(
            "Remove every guest, address lease, published port and network the project owns, "
            "from netplumb's records (the file may have changed or be gone: use -p)."
        ),
        epilog=f"example:\n  {DOWN_EXAMPLE}\n  netplumb down -p birthdays --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-f", "--file", default=DEFAULT_FILE, help=f"the file (default {DEFAULT_FILE})")
    p.add_argument("-p", "--project", help="the project's name (instead of reading the file)")
    p.add_argument("--dry-run", action="store_true", help="print the removal plan, change nothing")
    p.set_defaults(func=cmd_down)


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from netplumb.plan.project import render
    from netplumb.project import apply
    from netplumb.topofile.load import load

    topo = load(args.file)
    if args.dry_run:
        sys.stdout.write(f"project {topo.name}\n" + render(apply.plan(topo)))
        return 0
    _say(f"project {topo.name}: up")
    _run_up(topo, os.path.abspath(args.file))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from netplumb.project import apply

    topo = None
    if args.project:
        name = str(args.project)
    else:
        if not os.path.exists(args.file):
            raise NetplumbError(f"cannot read {args.file}: No such file (or name it: down -p NAME)")
        from netplumb.topofile.load import load

        topo = load(args.file)
        name = topo.name
    if args.dry_run:
        from netplumb.plan.project import render_removal

        sys.stdout.write(f"project {name}\n" + render_removal(apply.plan_removal(name, topo)))
        return 0
    _say(f"project {name}: down")
    apply.down(name, topo, _say)
    return 0


class _Bar:
    """On a terminal: a rich progress bar over the steps, each step's line printed above it.
    Elsewhere (logs, tests, CI): the plain lines."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]up"), BarColumn(), MofNCompleteColumn(), transient=True
        )
        self.task = self.progress.add_task("up", total=None)
        self.progress.start()

    def __call__(self, line: str) -> None:
        if line.startswith("[") and "/" in line.split("]", 1)[0]:
            done, total = line[1:].split("]", 1)[0].split("/")
            self.progress.update(self.task, completed=int(done), total=int(total))
        self.progress.console.print(line, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def _run_up(topo: Topology, file: str) -> None:
    from netplumb.project import apply

    if not sys.stdout.isatty():
        apply.up(topo, file, _say)
        return
    bar = _Bar()
    try:
        apply.up(topo, file, bar)
    finally:
        bar.close()
