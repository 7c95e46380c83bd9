"""netplumb's state directory found the real way (no NETPLUMB_STATE_DIR): one per namespace,
by inode *and* cookie, and readable by root alone.

``NETPLUMB_STATE_ROOT`` points the root at a directory of the test's own instead of
``/run/netplumb``; everything below it is netplumb's rule. The oracle is the file system (what
is where, with which mode), an unprivileged process (``setpriv`` to nobody) and ``ps``.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import REMOVE, Lab, kill

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
PYTHON = str(ROOT / ".venv" / "bin" / "python3")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
GUEST_FILES = {"hosts", "hostname", "resolv.conf"}


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def _held_inodes() -> set[int]:
    """The inodes of every network namespace that lives: named ones, and those only processes
    hold (a netplumb host's, a container's, another test's that is being made)."""
    paths = [f"/run/netns/{name}" for name in os.listdir("/run/netns")]
    paths += [f"/proc/{pid}/ns/net" for pid in os.listdir("/proc") if pid.isdigit()]
    out = set()
    for path in paths:
        try:
            out.add(os.stat(path).st_ino)
        except OSError:
            continue
    return out


class World(Lab):
    """Namespaces playing machines, netplumb's root in a directory of the test's own (a lab
    without a host namespace, its state a root: ``NETPLUMB_STATE_ROOT``)."""

    def __init__(self) -> None:
        # under a world-searchable directory: only netplumb's own modes may keep others out
        tmp = Path(tempfile.mkdtemp(prefix="npr-", dir="/tmp"))
        tmp.chmod(0o755)
        super().__init__(tmp, host=None, state="root")
        self.root = self.state
        self.defer(f"directory {tmp}", lambda: shutil.rmtree(tmp, ignore_errors=True), REMOVE)
        self.defer(f"hosts under {self.root}", self.kill_hosts)

    def delete(self, ns: str) -> None:
        self.delete_netns(ns, kill_first=False)

    def netns_with_inode(self, wanted: int) -> str:
        """A new namespace that gets ``wanted``'s inode (a dead namespace's). The kernel gives
        the lowest free number once the dead one is cleaned up (asynchronously), so: keep the
        new namespaces that fill lower holes, drop those above (the number was not free yet),
        wait while another namespace of this machine (another test's, named or held only by a
        process, as a netplumb host's is) holds it. Bounded."""
        below: list[str] = []
        deadline = time.monotonic() + 60
        try:
            for _ in range(2000):
                if time.monotonic() > deadline:
                    break
                if wanted in _held_inodes():
                    time.sleep(0.1)  # taken by another namespace: wait until it goes
                    continue
                ns = self.netns()
                got = inode(ns)
                if got == wanted:
                    return ns
                if got < wanted:
                    below.append(ns)
                else:
                    self.delete(ns)
                    time.sleep(0.02)
        finally:
            for ns in below:
                self.delete(ns)
        raise AssertionError(f"no new namespace got inode {wanted} within the bound")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return self.environ(extra)

    def run(
        self, ns: str, *argv: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run_in(ns, *argv, check=check, env=env)

    def np(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(ns, NETPLUMB, *args, check=check)

    def state_dir(self, ns: str) -> Path:
        code = "from netplumb import state; print(state.state_dir())"
        return Path(self.run(ns, PYTHON, "-c", code).stdout.strip())

    def scopes(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("."))

    def kill_hosts(self) -> None:
        """Hosts of any record under the root (stale ones too): their processes outlive the
        namespaces the test deletes."""
        for rec_path in self.root.glob("**/hosts/*") if self.root.exists() else []:
            try:
                rec = marshal.loads(rec_path.read_bytes())
            except (OSError, EOFError, ValueError):
                continue
            for key in ("pid", "holder"):
                pid = rec.get(key)
                if isinstance(pid, int) and pid > 0:
                    kill(pid, group=key == "pid")


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _wait(cond: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return True
        time.sleep(0.05)
    return False


# -- identity ----------------------------------------------------------------------------------


def test_each_namespace_is_named_by_inode_and_cookie_the_machines_is_host(world: World) -> None:
    a, b = world.netns(), world.netns()
    da, db = world.state_dir(a), world.state_dir(b)
    assert da.parent == world.root and db.parent == world.root
    assert da.name.startswith(f"netns-{inode(a)}-") and db.name.startswith(f"netns-{inode(b)}-")
    assert da != db and da.is_dir() and db.is_dir()
    assert world.state_dir(a) == da  # found again: the cookie is stable while it lives
    # the machine's own namespace (not entered: the test's own) is "host"
    code = "from netplumb import state; print(state.state_dir())"
    own = subprocess.run(
        [PYTHON, "-c", code], env=world.env(), capture_output=True, text=True, check=True
    )
    assert own.stdout.strip() == str(world.root / "host")


def test_a_new_namespace_with_a_dead_ones_inode_starts_empty(world: World) -> None:
    old = world.netns()
    ino = inode(old)
    # records of live things: a host (its holder outlives the namespace) and a LAN bridge
    world.np(old, "run", "--name", "legacy", "--", "sleep", "1000")
    sh("ip", "-n", old, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
    sh("ip", "-n", old, "addr", "add", "192.168.99.2/24", "dev", "lan0")
    sh("ip", "-n", old, "link", "set", "lan0p", "up")
    sh("ip", "-n", old, "link", "set", "lan0", "up")
    world.np(old, "lan", "bridge", "lan0", "--timeout", "300")
    world.np(old, "lan", "confirm")
    [row] = json.loads(world.np(old, "ps", "--json").stdout)
    pid = int(str(row["pid"]))
    [old_scope] = world.scopes()
    assert (world.root / old_scope / "hosts" / "legacy").exists()
    assert (world.root / old_scope / "lan" / "bridge").exists()
    assert "br-lan0" in world.np(old, "lan", "status").stdout
    holder = _holder_of(world.root / old_scope / "hosts" / "legacy")
    assert holder is not None and _alive(holder)

    # without netplumb: its records stay behind. What ran in it goes with it (the name server
    # of its network); the host's holder lives on in a namespace of its own.
    world.delete_netns(old, kill_first=True)
    new = world.netns_with_inode(ino)

    assert json.loads(world.np(new, "ps", "--json").stdout) == []
    status = world.np(new, "lan", "status").stdout
    assert "br-lan0" not in status and "mode: -" in status, status
    # the old records were moved aside, under their old name
    assert old_scope not in world.scopes()
    [moved] = list((world.root / "stale").iterdir())
    assert moved.name.startswith(f"{old_scope}-")
    assert (moved / "hosts" / "legacy").exists() and (moved / "lan" / "bridge").exists()
    new_scope = world.state_dir(new)
    assert new_scope.name.startswith(f"netns-{ino}-") and new_scope.name != old_scope

    # gc (from any namespace) removes them, and stops the host nothing else could reach
    out = world.np(new, "gc").stdout
    assert f"removed records of a namespace that is gone ({moved.name})" in out
    assert list((world.root / "stale").iterdir()) == []
    assert _wait(lambda: not _alive(holder) and not _alive(pid))
    assert json.loads(world.np(new, "ps", "--json").stdout) == []


def _holder_of(record: Path) -> int | None:
    holder = marshal.loads(record.read_bytes()).get("holder")
    return holder if isinstance(holder, int) else None


def test_the_layout_before_cookies_is_adopted_when_it_is_ours(world: World) -> None:
    ns = world.netns()
    legacy = world.root / f"netns-{inode(ns)}"
    # what the previous netplumb wrote in this namespace (it used exactly this directory)
    world.run(ns, NETPLUMB, "run", "--name", "kept", "--", "sleep", "1000",
              env={"NETPLUMB_STATE_DIR": str(legacy)})  # fmt: skip
    world.run(ns, NETPLUMB, "network", "create", "n1", "--subnet", "10.46.0.0/24",
              env={"NETPLUMB_STATE_DIR": str(legacy)})  # fmt: skip
    assert [r["name"] for r in json.loads(world.np(ns, "ps", "--json").stdout)] == ["kept"]
    scope = world.state_dir(ns)
    assert scope.name.startswith(f"netns-{inode(ns)}-") and not legacy.exists()
    assert not (world.root / "stale").exists()
    assert "n1" in world.np(ns, "network", "ls").stdout
    world.np(ns, "rm", "-f", "kept")


def test_the_layout_before_cookies_of_a_dead_namespace_is_moved_aside(world: World) -> None:
    old = world.netns()
    ino = inode(old)
    legacy = world.root / f"netns-{ino}"
    world.run(old, NETPLUMB, "network", "create", "n1", "--subnet", "10.47.0.0/24",
              env={"NETPLUMB_STATE_DIR": str(legacy)})  # fmt: skip
    world.delete(old)
    new = world.netns_with_inode(ino)
    assert "n1" not in world.np(new, "network", "ls").stdout
    assert not legacy.exists()
    [moved] = list((world.root / "stale").iterdir())
    assert moved.name.startswith(f"netns-{ino}-") and (moved / "networks" / "n1").exists()
    world.np(new, "gc")
    assert list((world.root / "stale").iterdir()) == []


def test_the_machines_own_records_of_the_inode_layout_become_host(world: World) -> None:
    """Where /proc/1/ns/net could not be read, the machine's namespace was netns-<inode>:
    that namespace never dies, so those records are its own."""
    legacy = world.root / f"netns-{os.stat('/proc/self/ns/net').st_ino}"
    legacy.mkdir(parents=True)
    (legacy / "marker").write_text("mine\n")
    code = "from netplumb import state; print(state.state_dir())"
    own = subprocess.run(
        [PYTHON, "-c", code], env=world.env(), capture_output=True, text=True, check=True
    )
    assert own.stdout.strip() == str(world.root / "host")
    assert (world.root / "host" / "marker").read_text() == "mine\n" and not legacy.exists()


# -- permissions -------------------------------------------------------------------------------


def _readable_by_nobody(paths: list[Path]) -> list[str]:
    """The paths an unprivileged process can open (files) or list (directories)."""
    code = (
        "import os, sys\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        os.listdir(p) if os.path.isdir(p) else open(p, 'rb').close()\n"
        "    except OSError:\n"
        "        continue\n"
        "    print(p)\n"
    )
    proc = sh(*NOBODY, "/usr/bin/python3", "-c", code, *map(str, paths))
    return proc.stdout.split()


def test_nobody_but_root_reads_records_or_logs(world: World) -> None:
    m = world.netns()
    world.np(m, "network", "create", "n1", "--subnet", "10.48.0.0/24")
    world.np(m, "run", "--name", "db", "--expose", "5432", "--", "sleep", "1000")
    world.np(
        m, "run", "--name", "s", "-e", "PASSWORD=hunter2", "--link", "db", "-p", "18080:80",
        "--", "sh", "-c", "echo secret-output; exec sleep 1000",
    )  # fmt: skip
    world.np(m, "attach", "s", "br-np-t", "--ip", "10.49.0.2/24")
    world.np(m, "attach", "db", "n1")
    assert _wait(lambda: "secret-output" in world.np(m, "logs", "s").stdout)
    scope = world.state_dir(m)
    assert b"hunter2" in (scope / "hosts" / "s").read_bytes()  # the secret is there to steal

    everything = [world.root, *sorted(world.root.rglob("*"))]
    assert len(everything) > 20, everything
    bad = []
    for p in everything:
        st = p.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            continue  # a symbolic link has no mode of its own: its 0700 directory guards it
        if stat.S_ISDIR(st.st_mode):
            want = 0o700
        elif p.name in GUEST_FILES and p.parent.parent.name == "hosts.d":
            want = 0o644
        else:
            want = 0o600
        if mode != want:
            bad.append(f"{p.relative_to(world.root)} {oct(mode)} (want {oct(want)})")
    assert bad == []
    # the oracle: an unprivileged process, trying every path netplumb wrote
    assert _readable_by_nobody(everything) == []
    # even a secret file's own mode would keep it out (the test moves it into the open)
    probe = world.tmp / "probe"
    shutil.copy2(scope / "hosts" / "s", probe)
    assert _readable_by_nobody([probe]) == []


def test_a_process_in_a_host_reads_its_files_as_nobody(world: World) -> None:
    m = world.netns()
    world.np(
        m, "run", "--name", "g", "--hostname", "guest1", "--",
        *NOBODY, "sh", "-c", "cat /etc/hosts /etc/hostname /etc/resolv.conf; id -u",
    )  # fmt: skip
    assert _wait(lambda: world.np(m, "ps", "--json").stdout.count('"exited"') == 1, 10)
    out = world.np(m, "logs", "g").stdout
    assert "127.0.0.1\tlocalhost" in out and "guest1" in out and out.rstrip().endswith("65534")
    assert "Permission denied" not in out
    world.np(m, "rm", "-f", "g")


def test_an_older_netplumbs_open_directories_are_tightened(world: World) -> None:
    m = world.netns()
    scope = world.state_dir(m)
    world.root.chmod(0o755)
    scope.chmod(0o755)
    world.np(m, "ps")
    assert stat.S_IMODE(world.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(scope.stat().st_mode) == 0o700
