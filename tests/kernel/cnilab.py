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


def install_plugin(
    dest: Path, client: bool = False, agent: str = "auto", standalone: bool = False
) -> Path:
    """``netplumb cni install --dir DEST --no-conf [--client yes|no] [--agent MODE]``, through
    its own code: the Python launcher, or the compiled client of the agent (``agent``: auto,
    the default, starts one on demand; connect; off). ``standalone``: the client beside the
    standalone plugin (``netplumb-cni.pyz``, run by this venv's Python)."""
    code = (
        "import sys; from netplumb.cni.install import install; "
        "install(sys.argv[1], None, client=sys.argv[2] == '1', agent=sys.argv[3], "
        "standalone=sys.argv[4] == '1', python=sys.argv[5])"
    )
    sh(VENV_PY, "-c", code, str(dest), "1" if client else "0", agent, str(int(standalone)), VENV_PY)
    return dest / "netplumb-cni"


def agent_pid(state: Path) -> int | None:
    """The PID of the agent serving ``state`` (from its lock file), if it still runs."""
    try:
        pid = int((state / "cni-agent.lock").read_text().strip() or 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"netplumb.cni.agent" in cmdline else None


def agents_of(state: Path) -> list[int]:
    """Every agent process given ``state`` as NETPLUMB_STATE_DIR, started on demand or by
    hand, listening or not (yet), and a client's child waiting to become one (it execs once
    the call that started it is over)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = b"netplumb.cni.agent" in cmdline or b"netplumb-cni" in cmdline
        if ours and f"NETPLUMB_STATE_DIR={state}".encode() in environ:
            found.append(int(proc.name))
    return sorted(found)


def stop_agent(state: Path) -> int | None:
    """Stop the agent of ``state`` (SIGTERM: it removes its socket), and one still starting
    (it holds the agent lock from the start); return once none is left, with the PID of the
    agent stopped (None: none ran)."""
    import fcntl
    import signal

    stopped = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = agent_pid(state)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            stopped = pid
            while agent_pid(state) == pid and time.monotonic() < deadline:  # (or a zombie)
                time.sleep(0.02)
            continue
        try:
            fd = os.open(state / "cni-agent.lock", os.O_RDWR)
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it
            if not agents_of(state):
                return stopped
        except BlockingIOError:
            pass  # an agent is starting: it has not written its PID yet
        finally:
            if fd >= 0:
                os.close(fd)
        time.sleep(0.05)
    raise AssertionError(f"the CNI agent of {state} did not stop")


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
        # the compiled client's paths a call may take ("agent at", "no agent at", ...), told by
        # its NETPLUMB_CNI_DEBUG lines; None: not checked (the Python launcher has none)
        self.path: tuple[str, ...] | None = None
        self.paths_taken: list[str] = []  # the last call's debug lines
        self.calls = 0

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
        imports: list[str] | None = None,
    ) -> tuple[int, Any]:
        """(exit status, decoded stdout or None); stdout must be JSON or empty. ``imports``:
        the modules the plugin's Python imported are added to it (``PYTHONPROFILEIMPORTTIME``:
        the Python launcher only)."""
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
        if imports is not None:
            env["PYTHONPROFILEIMPORTTIME"] = "1"
        stdin = conf if isinstance(conf, str) else json.dumps(conf)
        self.calls += 1
        proc = subprocess.run(
            ["ip", "netns", "exec", self.lab.host, str(self.plugin)],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = proc.stderr.splitlines()
        if imports is not None:
            timed = [ln for ln in lines if ln.startswith("import time:")]
            imports += [ln.split("|")[-1].strip() for ln in timed[1:]]  # [0]: the heading
            lines = [ln for ln in lines if ln not in timed]
        self.paths_taken = [ln for ln in lines if ln.startswith("netplumb-cni: ")]
        if self.path is not None:
            assert self.paths_taken, proc.stderr
            for line in self.paths_taken:
                assert line.startswith(tuple(f"netplumb-cni: {p} " for p in self.path)), line
        assert [ln for ln in lines if ln not in self.paths_taken] == [], proc.stderr
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
