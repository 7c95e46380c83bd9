"""Plans for ``netplumb up`` and ``down`` (pure: no kernel, no Docker, no files).

``plan_up`` compares the resolved topology with what is observed (the project's record, the
guests and networks that exist) and returns the ordered actions that make the system match
the file: create missing networks, remove guests that left the file or no longer match it,
start what is missing, and remove the networks the project made and no longer needs. A guest
matches when the text of everything resolved about it (``replica_lines``) is unchanged and it
runs; a guest whose link target is replaced is replaced too, since the link variables it was
started with name the old target. ``plan_down`` removes what the project's record names.

Each step carries its fine-grained actions (``steps``, from ``plan/upsteps.py``, the attach
ones from the one attach planner): what ``--dry-run`` prints under the step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from netplumb.errors import Conflict
from netplumb.model.network import DEFAULT_NETWORK, Network
from netplumb.plan import actions, upsteps
from netplumb.plan.observed import Observed
from netplumb.topofile.model import Condition, Replica, Topology, replica_lines


def digest(replica: Replica) -> str:
    """A short fingerprint of everything resolved about a replica."""
    text = "\n".join(replica_lines(replica)).encode()
    return hashlib.sha256(text).hexdigest()[:16]


@dataclass(frozen=True)
class CreateNetwork(actions.Action):
    network: Network
    steps: tuple[actions.Action, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        subnets = " ".join(filter(None, (self.network.subnet, self.network.subnet6)))
        return f"create network {self.network.name} (bridge {self.network.bridge}, {subnets})"


@dataclass(frozen=True)
class RemoveGuest(actions.Action):
    name: str
    runtime: str
    reason: str
    steps: tuple[actions.Action, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"remove {self.name} ({self.reason})"


@dataclass(frozen=True)
class WaitReady(actions.Action):
    """Before starting ``before``: wait until dependency replica ``name`` is ready."""

    name: str
    before: str
    condition: Condition

    def __str__(self) -> str:
        return f"wait for {self.name}: {self.condition} (up to {self.condition.timeout:g} s)"


@dataclass(frozen=True)
class StartGuest(actions.Action):
    replica: Replica
    digest: str
    steps: tuple[actions.Action, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        r = self.replica
        what = r.image if r.runtime == "docker" else "host"
        return f"start {r.name} ({what})"


@dataclass(frozen=True)
class Keep(actions.Action):
    name: str

    def __str__(self) -> str:
        return f"keep {self.name} (up to date)"


@dataclass(frozen=True)
class RemoveNetwork(actions.Action):
    name: str
    steps: tuple[actions.Action, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"remove network {self.name}"


Action = CreateNetwork | RemoveGuest | WaitReady | StartGuest | Keep | RemoveNetwork


def plan_up(topo: Topology, obs: Observed) -> list[Action]:
    """The actions that bring the system to the file; raises Conflict when a name the file
    needs is held by something that is not this project's."""
    actions: list[Action] = []
    for net in topo.networks:
        have = obs.networks.get(net.name)
        if have is None:
            actions.append(CreateNetwork(net, upsteps.network_steps(net)))
        elif have != net:
            raise Conflict(
                f"network {net.name} exists with another definition ({have.subnet} on "
                f"{have.bridge}); take down what uses it, or rename the network in the file"
            )
    by_name = {r.name: r for r in topo.replicas}
    for name in topo.order:
        g = obs.guests.get(name)
        if g is not None and g.project != topo.name:
            owner = f"project {g.project}" if g.project else "another command"
            raise Conflict(
                f'Conflict. The name "{name}" is already in use by {owner} '
                f"({g.runtime}): remove it first or rename the service"
            )
    stale: dict[str, str] = {}
    for name in topo.order:
        g = obs.guests.get(name)
        r = by_name[name]
        if g is None:
            stale[name] = "missing"
        elif g.runtime != r.runtime:
            stale[name] = f"runtime changed to {r.runtime}"
        elif not g.running:
            stale[name] = "not running"
        elif g.digest != digest(r):
            stale[name] = "changed"
        else:
            moved = [t.target for t in r.links if t.target in stale]
            if moved:
                stale[name] = f"its link target {moved[0]} is replaced"
    leases = upsteps.Leases(topo, obs)
    gone = [n for n in obs.recorded if n not in by_name]
    for name in reversed(gone):
        runtime = obs.recorded_runtimes.get(name, "host")
        actions.append(_remove(name, runtime, "not in the file any more", obs, leases))
    for name in reversed(topo.order):
        g = obs.guests.get(name)
        if name in stale and g is not None:
            actions.append(_remove(name, g.runtime, stale[name], obs, leases))
    waited: set[tuple[str, Condition]] = set()
    for name in topo.order:
        r = by_name[name]
        if name not in stale:
            actions.append(Keep(name))
            continue
        for dep in r.depends_on:
            for target in dep.replicas:
                if dep.condition.kind != "started" and (target, dep.condition) not in waited:
                    waited.add((target, dep.condition))  # once ready, ready for the rest
                    actions.append(WaitReady(target, name, dep.condition))
        steps = upsteps.start_steps(r, topo, leases) if obs.steps else ()
        actions.append(StartGuest(r, digest(r), steps))
    wanted = {n.name for n in topo.networks}
    for name in reversed(obs.owned_networks):
        if name not in wanted and name != DEFAULT_NETWORK and name in obs.networks:
            net = obs.networks[name]
            actions.append(RemoveNetwork(name, upsteps.remove_network_steps(net, name)))
    return actions


def _remove(
    name: str, runtime: str, reason: str, obs: Observed, leases: upsteps.Leases | None
) -> RemoveGuest:
    g = obs.guests.get(name)
    if g is None:
        return RemoveGuest(name, runtime, reason)
    if leases is not None:
        leases.free(g)
    return RemoveGuest(name, runtime, reason, upsteps.remove_steps(g))


def plan_down(obs: Observed) -> list[Action]:
    """Remove every guest and network the project's record names, guests in reverse order."""
    actions: list[Action] = []
    for name in reversed(obs.recorded):
        g = obs.guests.get(name)
        if g is not None:
            actions.append(_remove(name, g.runtime, "down", obs, None))
    for name in reversed(obs.owned_networks):
        if name in obs.networks and name != DEFAULT_NETWORK:
            net = obs.networks[name]
            actions.append(RemoveNetwork(name, upsteps.remove_network_steps(net, name)))
    return actions


def changes(actions: list[Action]) -> list[Action]:
    """The actions that change something (``Keep`` says nothing changes)."""
    return [a for a in actions if not isinstance(a, Keep)]


def render(actions: list[Action]) -> str:
    """The plan as ``--dry-run`` prints it: one numbered line a step, and under it the
    fine-grained actions the step takes (``GUEST`` is the step's guest)."""
    if not changes(actions):
        return "nothing to do: everything is up to date\n"
    out = []
    for i, a in enumerate(actions, 1):
        out.append(f"{i:>3}. {a}\n")
        out += [f"       {step}\n" for step in getattr(a, "steps", ())]
    return "".join(out)


def render_removal(actions: list[Action]) -> str:
    """A ``down`` plan as ``--dry-run`` prints it."""
    if not actions:
        return "nothing to do: the project has nothing up\n"
    return render(actions)
