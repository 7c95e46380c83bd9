"""Topology files, by property: any valid topology, in short or long forms, reads back the same
after a YAML round trip; the published JSON Schema is current; the parser stays off the
one-shot paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netplumb.topofile.load import dumps, loads, parse
from netplumb.topofile.model import Topology
from netplumb.topofile.schema import json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "topology.schema.json"

TEXT = st.text(st.sampled_from("abcXYZ019 _-.:/=$'\"#{}[]!&*é"), max_size=12)


@st.composite
def network(draw: st.DrawFn, k: int) -> tuple[dict[str, Any], bool]:
    """Network ``n<k>`` on 10.<100+k>.0.0/16 and/or fd00:<100+k>::/64; whether it has IPv4."""
    v4, v6 = f"10.{100 + k}.0.0/16", f"fd00:{100 + k}::/64"
    form = draw(st.sampled_from(["v4", "v4 list", "dual", "v6"]))
    net: dict[str, Any] = {"subnet": {"v4": v4, "v4 list": [v4], "dual": [v4, v6], "v6": v6}[form]}
    if draw(st.booleans()):
        net["bridge"] = f"brt{k}"
    if form != "v6" and draw(st.booleans()):
        net["gateway"] = f"10.{100 + k}.255.254"
    if draw(st.booleans()):
        net["isolation"] = draw(st.booleans())
    if draw(st.booleans()):
        net["mtu"] = draw(st.integers(68, 9000))
    return net, form != "v6"


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid topology, drawn so that every reference holds: services link to and depend on
    earlier ones only, all share the default network, host ports and addresses never repeat."""
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["name"] = draw(st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True))
    nets = [draw(network(k)) for k in range(draw(st.integers(0, 2)))]
    if nets:
        doc["networks"] = {f"n{k}": net for k, (net, _) in enumerate(nets)}
    v4_nets = [k for k, (_, has_v4) in enumerate(nets) if has_v4]
    services: dict[str, Any] = {}
    replicas_of: dict[str, list[str]] = {}
    next_port, next_host = 20000, 10
    for s in range(draw(st.integers(1, 4))):
        name = f"s{s}"
        svc: dict[str, Any] = {}
        n = draw(st.integers(1, 3))
        if n > 1 or draw(st.booleans()):
            svc["replicas"] = n
        names = [name] if n == 1 else [f"{name}{i}" for i in range(1, n + 1)]
        if draw(st.booleans()):
            svc["replica_names"] = f"r{s}-{{n}}"
            names = [f"r{s}-{i}" for i in range(1, n + 1)]
        argv = draw(st.lists(TEXT.filter(bool), min_size=1, max_size=3))
        if draw(st.booleans()):
            svc["runtime"] = "docker"
            svc["image"] = "busybox"
            if draw(st.booleans()):
                svc["command"] = argv
        else:
            svc["command"] = argv if draw(st.booleans()) else "sleep 1000"
        env = draw(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,5}", fullmatch=True), TEXT))
        if env:
            svc["environment"] = (
                env if draw(st.booleans()) else [f"{k}={v}" for k, v in env.items()]
            )
        expose = draw(st.lists(st.sampled_from([80, "81", "9000-9002", "53/udp", 27017])))
        if expose:
            svc["expose"] = expose
        earlier = list(replicas_of)
        targets = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        links: list[str] = []
        for t in targets:
            target = t if len(replicas_of[t]) == 1 else draw(st.sampled_from(replicas_of[t]))
            links.append(target if draw(st.booleans()) else f"{target}:alias{len(links)}")
        if links:
            svc["links"] = links
        ports: list[Any] = []
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["fixed", "ephemeral", "ip"]))
            host = f"{next_port}-{next_port + n - 1}" if n > 1 else str(next_port)
            ports.append(
                {"fixed": f"{host}:80", "ephemeral": 8080, "ip": f"127.0.0.1:{host}:81/udp"}[kind]
            )
            next_port += n
        if ports:
            svc["ports"] = ports
        joined = draw(st.lists(st.sampled_from(range(len(nets))), unique=True)) if nets else []
        static = n == 1 and draw(st.booleans())
        form = draw(st.sampled_from(["default", "list", "mapping", "mapping"]))
        if joined and form == "list":
            svc["networks"] = ["netplumb", *(f"n{k}" for k in joined)]
        elif joined and form == "mapping":
            mapping: dict[str, Any] = {"netplumb": None}
            for k in joined:
                addr = {"ipv4_address": f"10.{100 + k}.1.{next_host}"} if k in v4_nets else {}
                mapping[f"n{k}"] = addr if static else None
                next_host += 1
            svc["networks"] = mapping
        if draw(st.booleans()) and v4_nets:
            k = draw(st.sampled_from(v4_nets))
            bridge = nets[k][0].get("bridge", f"np-n{k}")
            iface: dict[str, Any] = {"host_if": bridge}
            if static:
                iface["address"] = f"10.{100 + k}.2.{next_host}/16"
                next_host += 1
            else:
                iface["dhcp"] = True
            svc["interfaces"] = [iface]
        deps = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        if draw(st.booleans()) and deps:
            svc["depends_on"] = deps
        elif deps:
            conditions = st.sampled_from(["started", "tcp:80", "command: test -e /tmp/ready"])
            svc["depends_on"] = {d: {"condition": draw(conditions)} for d in deps}
        if draw(st.booleans()):
            svc["per_replica"] = {names[0]: {"environment": {"ONLY": "first"}, "hostname": "first"}}
        services[name] = svc
        replicas_of[name] = names
    doc["services"] = services
    return doc


def _check_invariants(topo: Topology, doc: dict[str, Any]) -> None:
    assert topo.services == tuple(doc["services"])
    assert sorted(topo.order) == sorted(r.name for r in topo.replicas)
    position = {name: k for k, name in enumerate(topo.order)}
    for r in topo.replicas:
        for link in r.links:
            assert position[link.target] < position[r.name]
        for dep in r.depends_on:
            assert all(position[t] < position[r.name] for t in dep.replicas)
    published = [(m.host_ip, m.host_port, m.proto) for r in topo.replicas for m in r.ports]
    fixed = [p for p in published if p[1]]
    assert len(fixed) == len(set(fixed))


@settings(max_examples=40, deadline=None)
@given(documents())
def test_any_valid_topology_round_trips_through_yaml(doc: dict[str, Any]) -> None:
    text = dumps(doc)
    topo = loads(text)
    _check_invariants(topo, doc)
    raw = parse(text)
    long_form = dumps(raw)  # every short form expanded, defaults left out
    assert parse(long_form) == raw
    assert loads(long_form) == topo
    assert dumps(parse(long_form)) == long_form


def test_the_published_schema_is_current() -> None:
    """Regenerate with: python -m netplumb.topofile.schema > docs/topology.schema.json"""
    assert SCHEMA.read_text() == json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def test_the_schema_refuses_unknown_keys_and_describes_every_field() -> None:
    schema = json_schema()
    objects = [schema, *schema["$defs"].values()]
    assert all(obj["additionalProperties"] is False for obj in objects)
    for obj in objects:
        for name, prop in obj["properties"].items():
            assert prop.get("description"), name
    service = schema["$defs"]["Service"]["properties"]
    assert {"command", "image", "replicas", "ports", "per_replica"} <= set(service)
    assert schema["patternProperties"] == {"^x-": {}}


def test_the_parser_stays_off_the_one_shot_paths() -> None:
    """The resolved types (and the package) import neither pydantic nor yaml; nor does the CLI
    module the pipework launcher imports."""
    code = (
        "import sys, netplumb.topofile, netplumb.topofile.model, netplumb.cli.main\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_core', 'yaml')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
