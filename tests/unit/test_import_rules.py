"""The import rules of the design (DESIGN.md, "Import rules"; docs/architecture.md), checked on
``src/`` with a small checker of our own: the shared ``import_graph.py`` is not in a clone.

Every import counts, at module level or inside a function (a function-level import still ties
two modules together: it only hides the cycle from the interpreter until the call). The rules:

- no import cycles;
- no ``_private`` name taken from another module: neither ``from m import _x`` nor
  ``m._x`` on a module ``m`` that was imported (the second hides from ``import_graph.py``);
- ``model`` imports only the standard library and ``errors``; the other pure packages
  (``topofile``, ``pipework``, ``nft``, ``plan``, and ``lan``'s pure LAN arithmetic) import
  only pure packages and ``errors``;
- ``kernel`` imports nothing above it: only the pure packages, ``errors`` and itself (not
  ``state``: what it needs of the records comes in as parameters);
- every other package imports only its own layer and those below (``LAYERS``): records above
  the kernel, guests above the records, the use cases above those, the front doors on top;
- only the front doors print (``cli``, the ``demo`` it runs, the CNI plugin whose protocol is
  its standard output); the known exceptions are listed and must shrink;
- ``birthdays`` never imports ``netplumb``;
- no module at the top of ``src/netplumb`` (outside any subpackage) but ``errors.py``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PURE = {"model", "topofile", "pipework", "nft", "plan", "lan"}
# kernel/ may import these netplumb packages (and itself); anything else is above it.
BELOW_KERNEL = PURE | {"errors", "kernel"}
# Every other package, by layer: a module may import its own layer and those below it. hosts/
# shares the use cases' layer for now: removing a host still releases its network through
# ops/cleanup.py and ops/ports.py (DESIGN.md wants it below them: move that into ops/).
LAYERS = {
    "errors": 0,
    "lightos": 0,
    "state": 3,
    "runtimes": 4,
    "hosts": 5,
    "ops": 5,
    "project": 6,
    "cni": 6,
    "graph": 6,
    "demo": 7,
    "cli": 8,
}
LAYERS |= {p: 1 for p in PURE} | {"kernel": 2}
PRINTING = {"cli", "demo"}
# Modules outside PRINTING that print, each with its reason. Shrink it; never grow it.
KNOWN_PRINTS = {
    "netplumb.cni.plugin": "the CNI protocol: the result is the plugin's standard output",
    "netplumb.topofile.schema": "its `python -m` entry prints the JSON schema",
    "netplumb.project.apply": "a rollback error is printed, not returned (issue 13: one applier)",
}
# Issue 13 allows at most 3: the exception tree, and the few os functions over posix that
# the CNI plugin's one-shot path uses (``lightos``: ``os`` costs it ~1 ms, issue 16).
TOP_LEVEL = {"netplumb.errors", "netplumb.lightos"}


@dataclass
class Module:
    name: str
    path: Path
    is_pkg: bool
    # (imported module, names taken from it) for every import, at any depth
    imports: list[tuple[str, list[str]]] = field(default_factory=list)
    # (module, attribute) for every ``alias.attr`` where alias names an imported module
    attributes: list[tuple[str, str]] = field(default_factory=list)
    external: set[str] = field(default_factory=set)  # top-level names outside src/
    prints: bool = False


def load(src: Path) -> dict[str, Module]:
    mods: dict[str, Module] = {}
    for p in sorted(src.rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        if parts:
            mods[".".join(parts)] = Module(".".join(parts), p, is_pkg)
    for mod in mods.values():
        _scan(mod, mods)
    return mods


def _known(target: str, mods: dict[str, Module]) -> str | None:
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def _scan(mod: Module, mods: dict[str, Module]) -> None:
    tree = ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))
    pkg = mod.name if mod.is_pkg else mod.name.rpartition(".")[0]
    bound: dict[str, str] = {}  # local name -> module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                target = _known(a.name, mods)
                if target is None:
                    mod.external.add(a.name.partition(".")[0])
                    continue
                mod.imports.append((target, []))
                if a.asname:
                    bound[a.asname] = target
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")
                up = up[: len(up) - (node.level - 1)] if node.level > 1 else up
                base = ".".join([*up, base] if base else up)
            if base == "__future__":
                continue
            target = _known(base, mods)
            if target is None:
                mod.external.add(base.partition(".")[0])
                continue
            names = []
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in mods:  # a submodule: an edge to it, bound to a local name
                    mod.imports.append((sub, []))
                    bound[a.asname or a.name] = sub
                else:
                    names.append(a.name)
            if names:
                mod.imports.append((target, names))
        elif isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "print") or (
                isinstance(func, ast.Attribute)
                and func.attr == "write"
                and isinstance(func.value, ast.Attribute)
                and func.value.attr in ("stdout", "stderr")
            ):
                mod.prints = True
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
        ):
            mod.attributes.append((bound[node.value.id], node.attr))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _layer(name: str) -> str:
    """``netplumb.kernel.dhcp`` -> ``kernel``; a loose module -> its own name."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(src: Path) -> list[str]:
    mods = load(src)
    found: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod in mods.values():
        top = mod.name.partition(".")[0]
        for target, names in mod.imports:
            if target == mod.name or mod.name.startswith(target + "."):
                continue  # itself, or its own package's __init__
            graph[mod.name].add(target)
            found += [f"private: {mod.name} takes {target}.{n}" for n in names if _private(n)]
            if top == "birthdays" and target.startswith("netplumb"):
                found.append(f"layer: {mod.name} -> {target} (birthdays imports netplumb)")
            if top != "netplumb" or not target.startswith("netplumb."):
                continue
            src_layer, dst_layer = _layer(mod.name), _layer(target)
            if mod.name.count(".") >= 2 and src_layer in PURE:
                allowed = {"errors"} if src_layer == "model" else PURE | {"errors"}
                if dst_layer not in allowed | {src_layer}:
                    found.append(f"layer: {mod.name} -> {target} (pure {src_layer} reaches up)")
            if src_layer == "kernel" and dst_layer not in BELOW_KERNEL:
                found.append(f"layer: {mod.name} -> {target} (kernel reaches up)")
            if src_layer in PURE or src_layer == "kernel":
                continue
            if src_layer not in LAYERS or dst_layer not in LAYERS:
                unknown = src_layer if src_layer not in LAYERS else dst_layer
                found.append(f"layer: netplumb.{unknown} is in no layer (add it to LAYERS)")
            elif LAYERS[dst_layer] > LAYERS[src_layer]:
                found.append(f"layer: {mod.name} -> {target} ({src_layer} reaches up)")
        for target, attr in mod.attributes:
            if _private(attr) and target != mod.name and not mod.name.startswith(target + "."):
                found.append(f"private: {mod.name} takes {target}.{attr}")
        if mod.name.startswith("netplumb.model."):
            foreign = {e for e in mod.external if e not in sys.stdlib_module_names}
            found += [f"layer: {mod.name} imports {e} (model: stdlib only)" for e in foreign]
        if (
            top == "netplumb"
            and mod.prints
            and _layer(mod.name) not in PRINTING
            and mod.name not in KNOWN_PRINTS
        ):
            found.append(f"prints: {mod.name} (only cli prints)")
    found += [f"cycle: {' <-> '.join(c)}" for c in _cycles(graph)]
    return found


def top_level(src: Path) -> set[str]:
    return {
        m.name
        for m in load(src).values()
        if m.name.startswith("netplumb.") and m.name.count(".") == 1 and not m.is_pkg
    }


# -- the rules hold on src/ ---------------------------------------------------------------------


def test_src_keeps_the_import_rules() -> None:
    assert violations(SRC) == []


def test_at_most_three_modules_at_the_top_of_the_package() -> None:
    assert top_level(SRC) <= TOP_LEVEL
    assert len(TOP_LEVEL) <= 3


def test_the_known_printers_still_print() -> None:
    """An entry of KNOWN_PRINTS whose module no longer prints goes from the list."""
    mods = load(SRC)
    assert {m for m in KNOWN_PRINTS if not mods[m].prints} == set()


# -- the checker finds what it must (so the test above can fail) --------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


CLEAN = {
    "netplumb/__init__.py": "",
    "netplumb/errors.py": "class NetplumbError(Exception): ...\n",
    "netplumb/model/__init__.py": "",
    "netplumb/model/ip.py": "import ipaddress\nfrom netplumb.errors import NetplumbError\n",
    "netplumb/plan/__init__.py": "",
    "netplumb/plan/attach.py": "from netplumb.model import ip\nfrom ..model.ip import IP\n",
    "netplumb/kernel/__init__.py": "",
    "netplumb/kernel/netlink.py": "from netplumb.model.ip import IP\n",
    "netplumb/state/__init__.py": "def read(): ...\n",
    "netplumb/state/lock.py": "from netplumb import state\nfrom netplumb.kernel import netlink\n",
    "netplumb/ops/__init__.py": "",
    "netplumb/ops/a.py": "from netplumb.state.lock import Lock\n",
    "netplumb/cli/__init__.py": "",
    "netplumb/cli/main.py": "from netplumb.ops import a\nprint(a)\n",
    "birthdays/__init__.py": "",
    "birthdays/app.py": "import json\nfrom birthdays import store\n",
    "birthdays/store.py": "",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    assert violations(_tree(tmp_path, CLEAN)) == []


def test_each_rule_is_found(tmp_path: Path) -> None:
    bad = {
        **CLEAN,
        # a cycle through a function-level import
        "netplumb/ops/b.py": "def f():\n    from netplumb.ops import c\n",
        "netplumb/ops/c.py": "from netplumb.ops import b\n",
        # private names, imported and reached through a module
        "netplumb/ops/d.py": (
            "from netplumb.ops.a import _Lock\n"
            "from netplumb.ops import a\n"
            "def f():\n    return a._helper()\n"
        ),
        # pure code reaching up, and model importing a third-party package
        "netplumb/plan/bad.py": "from netplumb.kernel import netlink\n",
        "netplumb/model/yml.py": "import yaml\n",
        "netplumb/model/up.py": "from netplumb.plan import attach\n",
        # the kernel reaching into records, inside a function
        "netplumb/kernel/dhcp.py": "def f():\n    from netplumb import state\n",
        # the records reaching up into the use cases, a use case into the CLI
        "netplumb/state/up.py": "from netplumb.ops import a\n",
        "netplumb/ops/ui.py": "def f():\n    from netplumb.cli import main\n",
        # a package no layer knows
        "netplumb/stray/__init__.py": "from netplumb import errors\n",
        # a use case printing
        "netplumb/ops/loud.py": "import sys\nsys.stderr.write('x')\n",
        # the service importing netplumb
        "birthdays/leak.py": "import netplumb.ops.a\n",
    }
    found = violations(_tree(tmp_path, bad))
    assert sorted(found) == sorted(
        [
            "cycle: netplumb.ops.b <-> netplumb.ops.c",
            "private: netplumb.ops.d takes netplumb.ops.a._Lock",
            "private: netplumb.ops.d takes netplumb.ops.a._helper",
            "layer: netplumb.plan.bad -> netplumb.kernel.netlink (pure plan reaches up)",
            "layer: netplumb.model.yml imports yaml (model: stdlib only)",
            "layer: netplumb.model.up -> netplumb.plan.attach (pure model reaches up)",
            "layer: netplumb.kernel.dhcp -> netplumb.state (kernel reaches up)",
            "prints: netplumb.ops.loud (only cli prints)",
            "layer: netplumb.state.up -> netplumb.ops.a (state reaches up)",
            "layer: netplumb.ops.ui -> netplumb.cli.main (ops reaches up)",
            "layer: netplumb.stray is in no layer (add it to LAYERS)",
            "layer: birthdays.leak -> netplumb.ops.a (birthdays imports netplumb)",
        ]
    )


def test_top_level_modules_are_counted(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {**CLEAN, "netplumb/loose.py": "", "netplumb/ops/x.py": ""})
    assert top_level(tree) == {"netplumb.errors", "netplumb.loose"}
