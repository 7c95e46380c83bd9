"""``netplumb up`` and ``down``: observe, plan (pure, ``plan/project.py``), apply with the one
applier (``ops/apply.py``), which undoes what this ``up`` made, newest first, on failure.

The project's record (``projects/NAME`` in the state directory) says which guests and networks
the project owns. It is written *before* each object is made, so that whatever happens to
``up`` (an error, Ctrl-C, ``kill -9``), ``down`` finds everything: a name in the record whose
guest never came to be costs nothing to remove. Two ``up``s of one project take turns (a lock
per project); ``up``s of different projects run in parallel, sharing networks through the
locked address leases.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.model.network import DEFAULT_NETWORK, Network
from netplumb.ops import apply as applier
from netplumb.ops import networks, ports
from netplumb.plan.observed import Observed
from netplumb.plan.project import (
    Action,
    CreateNetwork,
    RemoveGuest,
    RemoveNetwork,
    StartGuest,
    WaitReady,
    changes,
    plan_down,
    plan_up,
)
from netplumb.project import guests, observe, shared
from netplumb.state.lock import Lock
from netplumb.topofile.model import Topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record


class _Record:
    """The project's record: its guests in start order, their runtimes, its own networks."""

    def __init__(self, name: str, file: str | None) -> None:
        rec = state.read("projects", name) or {}
        self.name = name
        self.file = file or rec.get("file")
        self.replicas: list[str] = list(rec.get("replicas", []))
        self.runtimes: dict[str, str] = dict(rec.get("runtimes", {}))
        self.networks: list[str] = list(rec.get("networks", []))

    def save(self) -> None:
        if not self.replicas and not self.networks:
            state.remove("projects", self.name)
            return
        record: Record = {
            "name": self.name,
            "file": self.file,
            "replicas": self.replicas,
            "runtimes": self.runtimes,
            "networks": self.networks,
        }
        state.write(record, "projects", self.name)

    def add_guest(self, name: str, runtime: str, order: tuple[str, ...]) -> None:
        if name not in self.replicas:
            self.replicas.append(name)
        rank = {n: i for i, n in enumerate(order)}
        self.replicas.sort(key=lambda n: rank.get(n, -1))
        self.runtimes[name] = runtime
        self.save()

    def drop_network(self, name: str) -> None:
        if name in self.networks:
            self.networks.remove(name)
            self.save()

    def drop_guest(self, name: str) -> None:
        if name in self.replicas:
            self.replicas.remove(name)
        self.runtimes.pop(name, None)
        self.save()


def projects() -> list[str]:
    return state.names("projects")


def _observe(
    names: list[str],
    rec: _Record,
    docker_wanted: bool,
    topo: Topology | None = None,
    details: bool = False,
) -> Observed:
    """What exists now; with ``topo`` (a plan to print), also what its fine-grained steps
    depend on: the leases, the default network, the host interfaces, the DHCP client."""
    nets: dict[str, Network] = {}
    for name in {*names, *rec.networks, DEFAULT_NETWORK}:
        net = networks.get(name)
        if net is not None:
            nets[name] = net
    obs = Observed(
        networks=nets,
        guests=observe.guests(names, docker_wanted, details),
        recorded=tuple(rec.replicas),
        recorded_runtimes=dict(rec.runtimes),
        owned_networks=tuple(rec.networks),
        steps=details,  # planned only to be printed: up applies a start as one step
    )
    if topo is None:
        return obs
    return replace(obs, **observe.for_steps(topo, nets))  # type: ignore[arg-type]


def plan(topo: Topology) -> list[Action]:
    """What ``up`` would do now (``--dry-run``): reads, changes nothing."""
    rec = _Record(topo.name, None)
    names = list(dict.fromkeys([*topo.order, *rec.replicas]))
    docker_wanted = _uses_docker(topo, rec)
    net_names = [n.name for n in topo.networks]
    return plan_up(topo, _observe(net_names + names, rec, docker_wanted, topo, True))


def plan_removal(project: str, topo: Topology | None) -> list[Action]:
    """What ``down`` would do now (``--dry-run``), from the records: reads, changes nothing."""
    return plan_down(_down_observed(project, topo, _Record(project, None), details=True))


def _down_observed(
    project: str, topo: Topology | None, rec: _Record, details: bool = False
) -> Observed:
    names = list(rec.replicas)
    for name, kind in _labelled(project, topo, rec):
        if name not in names:
            names.append(name)
            rec.runtimes.setdefault(name, kind)
    rec.replicas = names
    obs = _observe(names, rec, _uses_docker(topo, rec), details=details)
    mine = {n: g for n, g in obs.guests.items() if g.project == project}
    return replace(obs, guests=mine, recorded=tuple(names), recorded_runtimes=dict(rec.runtimes))


def _uses_docker(topo: Topology | None, rec: _Record) -> bool:
    in_file = topo is not None and any(r.runtime == "docker" for r in topo.replicas)
    return in_file or "docker" in rec.runtimes.values()


def up(topo: Topology, file: str | None, report: Callable[[str], None]) -> list[Action]:
    """Bring the project to the file: atomic (a failure removes what this ``up`` made) and
    idempotent (a second ``up`` changes nothing). Returns the actions taken."""
    with Lock("projects", f".{topo.name}.lock"):  # one up/down at a time
        rec = _Record(topo.name, file)
        rec.file = file
        net_names = [n.name for n in topo.networks]
        fresh = [n for n in net_names if n not in rec.networks]
        names = list(dict.fromkeys([*topo.order, *rec.replicas]))
        obs = _observe(net_names + names, rec, _uses_docker(topo, rec))
        actions = plan_up(topo, obs)
        if not changes(actions):
            report("nothing to do: everything is up to date")
            return actions
        runtimes = {r.name: r.runtime for r in topo.replicas}
        todo = changes(actions)
        # networks the project starts using: released again if this up fails
        undo: list[Callable[[], None]] = [_release(n, rec) for n in fresh]
        count = [0]
        current: list[Action] = []

        def execute(action: Action) -> Callable[[], None] | None:
            current[:] = [action]
            step = _apply_up(action, rec, topo, runtimes)
            count[0] += 1
            report(f"[{count[0]}/{len(todo)}] {_done_text(action)}")
            return step

        try:
            if fresh:  # the project uses these networks from now on (shared.py)
                with shared.Lock():
                    rec.networks += fresh
                    rec.save()
            with ports.batch():  # the nft ruleset is written once, at the end
                if any(a.network == DEFAULT_NETWORK for r in topo.replicas for a in r.networks):
                    networks.default()
                applier.apply(todo, execute, undo=undo, undo_failed=_say_undo_failed)
        except BaseException as exc:
            applier.rollback(undo, _say_undo_failed)  # failed before the plan ran
            if isinstance(exc, NetplumbError):
                what = f"{current[0]}" if current else "preparing"
                raise NetplumbError(
                    f"up failed at '{what}': {exc}; removed what this up had created"
                ) from None
            raise
        from netplumb.ops import links

        links.refresh_hosts_files({a.replica.name for a in actions if isinstance(a, StartGuest)})
        return actions


def _apply_up(
    action: Action, rec: _Record, topo: Topology, runtimes: dict[str, str]
) -> Callable[[], None] | None:
    """Carry out one step of an up plan; returns how to undo what it made (a started guest)."""
    if isinstance(action, CreateNetwork):
        with shared.Lock():  # another project's up may have made it meanwhile: then share it
            if action.network.name not in rec.networks:
                rec.networks.append(action.network.name)
                rec.save()
            have = networks.get(action.network.name)
            if have is None:
                shared.create(action.network)
            elif have != action.network:
                raise NetplumbError(f"network {action.network.name} was made meanwhile, otherwise")
    elif isinstance(action, RemoveGuest):
        guests.remove(action.name, action.runtime, rec.name)
        rec.drop_guest(action.name)
    elif isinstance(action, WaitReady):
        guests.wait_ready(action.name, runtimes.get(action.name, "host"), action.condition)
    elif isinstance(action, StartGuest):
        r = action.replica
        rec.add_guest(r.name, r.runtime, topo.order)

        def remove() -> None:
            guests.remove(r.name, r.runtime, rec.name)
            rec.drop_guest(r.name)

        try:
            guests.start(r, topo.name, action.digest)
        except BaseException:
            remove()  # recorded before it was made: whatever part of it exists goes
            raise
        return remove
    elif isinstance(action, RemoveNetwork):
        shared.release(action.name, rec.name, rec.drop_network)
    return None


def _done_text(action: Action) -> str:
    if isinstance(action, StartGuest):
        ip = guests.describe(action.replica.name)
        return f"started {action.replica.name}" + (f" ({ip})" if ip else "")
    if isinstance(action, CreateNetwork):
        return f"created network {action.network.name} ({action.network.bridge})"
    if isinstance(action, RemoveGuest):
        return f"removed {action.name} ({action.reason})"
    if isinstance(action, WaitReady):
        return f"{action.name} is ready ({action.condition})"
    if isinstance(action, RemoveNetwork):
        return f"removed network {action.name}"
    return str(action)


def _release(name: str, rec: _Record) -> Callable[[], None]:
    def release() -> None:
        shared.release(name, rec.name, rec.drop_network)

    return release


def _say_undo_failed(exc: NetplumbError) -> None:
    print(f"netplumb: while undoing: {exc}", file=sys.stderr)


def down(project: str, topo: Topology | None, report: Callable[[str], None]) -> list[Action]:
    """Remove every guest and network the project owns. Idempotent: nothing to remove is fine."""
    with Lock("projects", f".{project}.lock"):
        rec = _Record(project, None)
        actions = plan_down(_down_observed(project, topo, rec))
        removals = [a for a in actions if isinstance(a, RemoveGuest)]
        hosts = [a.name for a in removals if a.runtime == "host"]
        done: set[str] = set()

        def execute(action: RemoveGuest) -> None:
            # The hosts go first and all at once (signalled together, waited for together:
            # the cost of a down grows with the number of hosts, not with its square).
            if action.runtime == "host":
                if not done:
                    done.update(_remove_hosts(hosts, report))
                return
            guests.remove(action.name, action.runtime, project)
            report(f"removed {action.name}")

        with ports.batch():
            # removals undo nothing; a failure stops the down, which may be run again
            applier.apply(sorted(removals, key=lambda a: a.runtime != "host"), execute)
            rec.replicas, rec.runtimes = [], {}
            rec.save()
            for name in list(reversed(rec.networks)):
                report(shared.release(name, project, rec.drop_network))
        state.sweep_stale_tmp()  # records an interrupted up was writing
        from netplumb.ops import dns

        dns.settle()  # the name server, if that was its last network member
        if not actions:
            report(f"nothing to do: project {project} has nothing up")
        return actions


def _remove_hosts(names: list[str], report: Callable[[str], None]) -> list[str]:
    """The project's hosts, all at once; returns the names (all asked for: done)."""
    from netplumb.hosts import runtime

    for name in runtime.remove_many(names, force=False):
        report(f"removed {name}")
    return names


def _labelled(project: str, topo: Topology | None, rec: _Record) -> list[tuple[str, str]]:
    """Guests (name, runtime) that say they belong to the project: its record may miss one."""
    out = []
    for name in state.names("hosts"):
        record = state.read("hosts", name)
        if record is not None and record.get("project") == project:
            out.append((name, "host"))
    if _uses_docker(topo, rec):
        from netplumb.errors import RuntimeUnavailable

        try:
            out += [(n, "docker") for n in guests.docker_of_project(project)]
        except RuntimeUnavailable:
            pass
    return out
