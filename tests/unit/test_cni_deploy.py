"""The Kubernetes DaemonSet (deploy/kubernetes/netplumb-cni.yaml), checked statically (no
kubelet runs here): it installs the client with the standalone plugin beside it, and runs the
agent with the node's state directory, namespaces and plugins mounted where the client and
the plugin look for them; both commands parse with netplumb's own command line."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import yaml

from netplumb.cli import cni as cli_cni

YAML = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "netplumb-cni.yaml"


def pod() -> dict[str, Any]:
    doc = yaml.safe_load(YAML.read_text())
    assert doc["kind"] == "DaemonSet"
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    [c] = [c for c in pod()["containers"] if c["name"] == name]
    found: dict[str, Any] = c
    return found


def mounts(c: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """mountPath -> (the host path behind it, the mount)."""
    volumes = {v["name"]: v for v in pod()["volumes"]}
    return {m["mountPath"]: (volumes[m["name"]]["hostPath"]["path"], m) for m in c["volumeMounts"]}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="netplumb")
    cli_cni.register(parser.add_subparsers(dest="command"))
    assert argv[0] == "netplumb"
    return parser.parse_args(argv[1:])


def install_argv() -> list[str]:
    script = "\n".join(container("install")["args"]).replace("\\\n", " ")
    [line] = [ln for ln in script.splitlines() if ln.strip().startswith("netplumb cni install")]
    return [w for w in shlex.split(line) if not w.startswith(">")]


def test_the_pod_runs_the_agent_on_the_nodes_namespace_and_state() -> None:
    spec = pod()
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    agent = container("agent")
    args = parse([*agent["command"], *agent.get("args", [])])
    assert (args.command, args.cni_command, args.idle_timeout) == ("cni", "agent", 0.0)
    assert agent["securityContext"]["privileged"] is True
    m = mounts(agent)
    # the socket lives in the node's state directory, where the client looks for it
    assert m["/run/netplumb"][0] == "/run/netplumb"
    assert m["/run/netns"][0] == "/run/netns"
    assert m["/run/netns"][1]["mountPropagation"] == "HostToContainer"
    assert m["/opt/cni/bin"][0] == "/opt/cni/bin"  # delegated IPAM plugins
    probe = agent["readinessProbe"]["exec"]["command"]
    assert probe == ["test", "-S", "/run/netplumb/host/cni-agent.sock"]


def test_the_pod_installs_the_client_of_the_agent() -> None:
    args = parse(install_argv())
    assert (args.cni_command, args.standalone, args.client, args.agent) == (
        "install",
        True,
        "yes",
        "connect",
    )
    assert args.python == "/usr/bin/python3"
    m = mounts(container("install"))
    # the same paths in the pod as on the node: they are compiled into the client
    assert m[args.dir][0] == args.dir == "/opt/cni/bin"
    assert m[args.conf_dir][0] == args.conf_dir == "/etc/cni/net.d"
