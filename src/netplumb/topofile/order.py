"""The order to start a topology's replicas in: each after what it links to or depends on."""

from __future__ import annotations

import heapq

from netplumb.topofile.model import Path, Replica, TopologyError


def dependency_order(
    replicas: tuple[Replica, ...], edges: dict[tuple[str, str], Path]
) -> tuple[str, ...]:
    """Replica names, dependencies first, otherwise in file order (Kahn's algorithm with a
    heap on the file position, so the order is stable). ``edges`` maps (replica, what it
    needs) to where the file says so; a cycle is an error there, naming the whole cycle."""
    position = {r.name: k for k, r in enumerate(replicas)}
    needs: dict[str, list[str]] = {r.name: [] for r in replicas}
    needed_by: dict[str, set[str]] = {r.name: set() for r in replicas}
    for a, b in edges:
        needs[a].append(b)
        needed_by[b].add(a)
    waiting = {name: len(set(deps)) for name, deps in needs.items()}
    ready = [position[n] for n, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        name = replicas[heapq.heappop(ready)].name
        out.append(name)
        for other in needed_by[name]:
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(ready, position[other])
    if len(out) < len(replicas):
        done = set(out)
        # Every replica left waits for another one left: walking "needs" must come back.
        walk: list[str] = []
        name = next(r.name for r in replicas if r.name not in done)
        while name not in walk:
            walk.append(name)
            name = next(b for b in needs[name] if b not in done)
        cycle = walk[walk.index(name) :]
        first = min(range(len(cycle)), key=lambda k: position[cycle[k]])
        cycle = cycle[first:] + cycle[:first]
        path = edges[(cycle[0], cycle[1 % len(cycle)])]
        raise TopologyError(path, "dependency cycle: " + " -> ".join([*cycle, cycle[0]]))
    return tuple(out)
