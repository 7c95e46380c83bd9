"""A black-box harness for netplumb-cni: the plugin, installed by ``netplumb cni install``'s
code into a private directory, exec'd with CNI_* variables and a config on stdin inside the
lab's "host" namespace, as a runtime would.

The oracle is the kernel (``ip -j``, ``nft -j``, traffic) and, for address leases, the address
a fresh ADD is given. ``leftovers()`` lists everything an attachment could leave behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from kernel.attachlab import Lab, sh

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = str(ROOT / ".venv" / "bin" / "python3")
CNI_DIR = "/usr/lib/cni"


def install_plugin(dest: Path, client: bool = False) -> Path:
    """``netplumb cni install --dir DEST --no-conf [--client yes|no]``, through its own code:
    the Python launcher, or the compiled client of the agent."""
    code = (
        "import sys; from netplumb.cni.install import install; "
        "install(sys.argv[1], None, client=sys.argv[2] == '1')"
    )
    sh(VENV_PY, "-c", code, str(dest), "1" if client else "0")
    return dest / "netplumb-cni"


def start_agent(lab: Lab) -> subprocess.Popen[str]:
    """``netplumb cni agent`` in the lab's host namespace, once its socket listens."""
    proc = lab.popen(
        lab.host,
        [VENV_PY, "-c", "from netplumb.cni.agent import serve; serve()"],
        env=lab.env(),
    )
    sock = lab.state / "cni-agent.sock"
    deadline = time.monotonic() + 15
    while not sock.exists():
        assert proc.poll() is None, "the agent exited"
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.05)
    return proc


class Cni:
    """Calls of the plugin in ``lab``'s host namespace, and what they left."""

    def __init__(self, lab: Lab, plugin_dir: Path, net: str) -> None:
        self.lab = lab
        self.plugin_dir = plugin_dir
        self.plugin = plugin_dir / "netplumb-cni"
        self.net = net
        # the compiled client's path every call must take ("agent at", "no agent at"), told by
        # its NETPLUMB_CNI_DEBUG line; None: not checked (the Python launcher has none)
        self.path: str | None = None

    def config(self, **fields: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": self.net,
            "type": "netplumb-cni",
            "subnet": "10.77.0.0/24",
        }
        conf.update(fields)
        return {k: v for k, v in conf.items() if v is not None}

    def call(
        self,
        command: str,
        conf: dict[str, Any] | str,
        container: str = "",
        netns: str = "",
        ifname: str = "eth0",
        args: str = "IgnoreUnknown=1",
        extra_env: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(exit status, decoded stdout or None); stdout must be JSON or empty."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "NETPLUMB_STATE_DIR": str(self.lab.state),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": args,
            "CNI_PATH": f"{self.plugin_dir}:{CNI_DIR}",
        }
        if self.path is not None:
            env["NETPLUMB_CNI_DEBUG"] = "1"
        env.update(extra_env or {})
        stdin = conf if isinstance(conf, str) else json.dumps(conf)
        proc = subprocess.run(
            ["ip", "netns", "exec", self.lab.host, str(self.plugin)],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        stderr = proc.stderr
        if self.path is not None:
            line, _, stderr = stderr.partition("\n")
            assert line.startswith(f"netplumb-cni: {self.path} "), proc.stderr
        assert stderr == "", proc.stderr
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None

    def ok(self, command: str, conf: dict[str, Any], **kw: Any) -> Any:
        rc, out = self.call(command, conf, **kw)
        assert rc == 0, out
        return out

    def fails(self, command: str, conf: dict[str, Any] | str, **kw: Any) -> dict[str, Any]:
        rc, out = self.call(command, conf, **kw)
        assert rc != 0, out
        assert isinstance(out, dict) and set(out) <= {"cniVersion", "code", "msg", "details"}, out
        return out

    def add(self, guest: str, container: str, conf: dict[str, Any], **kw: Any) -> Any:
        return self.ok("ADD", conf, container=container, netns=f"/run/netns/{guest}", **kw)

    def delete(self, guest: str | None, container: str, conf: dict[str, Any], **kw: Any) -> None:
        netns = f"/run/netns/{guest}" if guest else ""
        self.ok("DEL", conf, container=container, netns=netns, **kw)

    # -- the oracle ---------------------------------------------------------------------------

    def marked_links(self) -> list[str]:
        """Host-namespace links that carry a netplumb mark, bridges of networks left out."""
        return sorted(
            f"{ln['ifname']} ({ln.get('ifalias')})"
            for ln in self.lab.links(self.lab.host)
            if str(ln.get("ifalias", "")).startswith("netplumb:")
            and not str(ln.get("ifalias", "")).startswith("netplumb:network:")
        )

    def port_rules(self) -> list[str]:
        """The owners of CNI published ports: comments of rules and of DNAT map elements."""
        proc = sh("ip", "netns", "exec", self.lab.host, "nft", "-j", "list", "ruleset", check=False)
        rules = []
        for item in json.loads(proc.stdout or '{"nftables": []}')["nftables"]:
            found = [item.get("rule") or {}]
            for elem in (item.get("map") or {}).get("elem", []):
                found.append((elem[0] if isinstance(elem, list) else elem).get("elem", {}))
            for x in found:
                if "cni:" in str(x.get("comment", "")):
                    rules.append(str(x.get("comment")))
        return rules

    def records(self) -> list[str]:
        d = self.lab.state / "cni" / self.net
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    def leases(self) -> dict[str, str]:
        """The network's address table, through netplumb's public ``networks.describe``."""
        code = (
            "import sys, json; from netplumb.ops import networks; n = networks.get(sys.argv[1]); "
            "print(json.dumps(networks.describe(n)['leases'] if n else {}))"
        )
        out = self.lab.in_host(VENV_PY, "-c", code, self.net).stdout
        leases: dict[str, str] = json.loads(out)
        return leases

    def leftovers(self) -> list[str]:
        """Everything a CNI attachment could leave: links, leases, port rules, records."""
        out = [f"link {x}" for x in self.marked_links()]
        out += [f"lease {ip} of {o}" for ip, o in self.leases().items()]
        out += [f"nft rule {c}" for c in self.port_rules()]
        out += [f"record {r}" for r in self.records()]
        return out
