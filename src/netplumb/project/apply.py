"""``netplumb up`` and ``down``: observe, plan (pure, ``plan.py``), apply with rollback.

The project's record (``projects/NAME`` in the state directory) says which guests and networks
the project owns. It is written *before* each object is made, so that whatever happens to
``up`` (an error, Ctrl-C, ``kill -9``), ``down`` finds everything: a name in the record whose
guest never came to be costs nothing to remove. Two ``up``s of one project take turns (a lock
per project); ``up``s of different projects run in parallel, sharing networks through the
locked address leases.
"""

from __future__ import annotations

import sys

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.model.network import DEFAULT_NETWORK, Network
from netplumb.ops import networks, ports
from netplumb.project import guests, shared
from netplumb.project.plan import (
    Action,
    CreateNetwork,
    Keep,
    Observed,
    RemoveGuest,
    RemoveNetwork,
    StartGuest,
    WaitReady,
    changes,
    plan_down,
    plan_up,
)
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


def _observe(names: list[str], rec: _Record, docker_wanted: bool) -> Observed:
    nets: dict[str, Network] = {}
    for name in {*names, *rec.networks}:
        net = networks.get(name)
        if net is not None:
            nets[name] = net
    return Observed(
        networks=nets,
        guests=guests.observe(names, docker_wanted),
        recorded=tuple(rec.replicas),
        recorded_runtimes=dict(rec.runtimes),
        owned_networks=tuple(rec.networks),
    )


def plan(topo: Topology) -> list[Action]:
    """What ``up`` would do now (``--dry-run``)."""
    rec = _Record(topo.name, None)
    names = list(dict.fromkeys([*topo.order, *rec.replicas]))
    docker_wanted = _uses_docker(topo, rec)
    return plan_up(topo, _observe([n.name for n in topo.networks] + names, rec, docker_wanted))


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
        made: list[tuple[str, str]] = []  # ("network" | runtime, name), in order
        made += [("uses", n) for n in fresh]  # undone by releasing them
        total = len(changes(actions))
        done = 0
        current: Action | None = None
        try:
            if fresh:  # the project uses these networks from now on (shared.py)
                with shared.Lock():
                    rec.networks += fresh
                    rec.save()
            with ports.batch():  # the nft ruleset is written once, at the end
                if any(a.network == DEFAULT_NETWORK for r in topo.replicas for a in r.networks):
                    networks.default()
                for action in actions:
                    if isinstance(action, Keep):
                        continue
                    current = action
                    _apply_up(action, rec, topo, runtimes, made)
                    done += 1
                    report(f"[{done}/{total}] {_done_text(action)}")
        except BaseException as exc:
            _rollback(made, rec)
            if isinstance(exc, NetplumbError):
                what = f"{current}" if current is not None else "preparing"
                raise NetplumbError(
                    f"up failed at '{what}': {exc}; removed what this up had created"
                ) from None
            raise
        from netplumb.ops import links

        links.refresh_hosts_files({a.replica.name for a in actions if isinstance(a, StartGuest)})
        return actions


def _apply_up(
    action: Action,
    rec: _Record,
    topo: Topology,
    runtimes: dict[str, str],
    made: list[tuple[str, str]],
) -> None:
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
        made.append((r.runtime, r.name))
        guests.start(r, topo.name, action.digest)
    elif isinstance(action, RemoveNetwork):
        shared.release(action.name, rec.name, rec.drop_network)


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


def _rollback(made: list[tuple[str, str]], rec: _Record) -> None:
    """Remove, newest first, what this ``up`` made; keep going past errors."""
    for kind, name in reversed(made):
        try:
            if kind == "uses":
                shared.release(name, rec.name, rec.drop_network)
            else:
                guests.remove(name, kind, rec.name)
                rec.drop_guest(name)
        except NetplumbError as exc:
            print(f"netplumb: while undoing: {exc}", file=sys.stderr)


def down(project: str, topo: Topology | None, report: Callable[[str], None]) -> list[Action]:
    """Remove every guest and network the project owns. Idempotent: nothing to remove is fine."""
    with Lock("projects", f".{project}.lock"):
        rec = _Record(project, None)
        names = list(rec.replicas)
        for name, kind in _labelled(project, topo, rec):
            if name not in names:
                names.append(name)
                rec.runtimes.setdefault(name, kind)
        rec.replicas = names
        obs = _observe(names, rec, _uses_docker(topo, rec))
        obs = Observed(
            obs.networks,
            {n: g for n, g in obs.guests.items() if g.project == project},
            obs.recorded,
            obs.recorded_runtimes,
            obs.owned_networks,
        )
        actions = plan_down(obs)
        hosts = [a.name for a in actions if isinstance(a, RemoveGuest) and a.runtime == "host"]
        with ports.batch():
            _remove_hosts(hosts, report)
            for action in actions:
                if isinstance(action, RemoveGuest) and action.runtime != "host":
                    guests.remove(action.name, action.runtime, project)
                    report(f"removed {action.name}")
            rec.replicas, rec.runtimes = [], {}
            rec.save()
            for name in list(reversed(rec.networks)):
                report(shared.release(name, project, rec.drop_network))
        state.sweep_stale_tmp()  # records an interrupted up was writing
        if not actions:
            report(f"nothing to do: project {project} has nothing up")
        return actions


def _remove_hosts(names: list[str], report: Callable[[str], None]) -> None:
    """The project's hosts, all at once (signalled together, waited for together: the cost of
    a ``down`` grows with the number of hosts, not with its square)."""
    from netplumb.hosts import runtime

    if not names:
        return
    for name in runtime.remove_many(names, force=False):
        report(f"removed {name}")


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
