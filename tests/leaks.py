"""What netplumb or the tests leave on this machine, and what a run killed before its cleanup
left (a module of its own: a test can import it, while ``conftest`` names several modules in
one run).

- :func:`find_leaks` lists, one line per object, what the session's leak check compares
  before and after a run (tests/conftest.py).
- A run of the suite says it is live with a marker in ``/run/netplumb-tests`` (:class:`Run`).
- Objects only a test makes (:func:`earlier_test_objects`: ``npt-`` namespaces and containers,
  and containers netplumb made for a state directory under pytest's temporary root) that are
  there before a run were left by a run killed before its cleanup (a session that ended
  mid-run). When no other run is live they are that dead run's and nobody else's:
  :func:`reclaim` removes them, so that a name they hold (the demo's ``mongodb``) does not
  fail the next run. While another run is live they may be its own: they are only listed.
"""

from __future__ import annotations

import getpass
import glob
import json
import os
import secrets
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

RUNS = Path("/run/netplumb-tests")
# the label netplumb puts on a container it makes (src/netplumb/project/guests.py): the state
# directory it belongs to; a test's state directory lies under pytest's temporary root
LABEL_STATE = "io.netplumb.state"
PROCESSES = (
    "netplumb-hold|netplumb-host|netplumb-dns|netplumb-test-marker"
    # CNI agents: started on demand (netplumb-cni-agent), by hand or by a test
    "|netplumb-cni-agent|netplumb cni agent|netplumb[.]cni[.]agent"
)


def pytest_temp_root() -> str:
    """Where pytest makes every run's ``tmp_path`` (its default ``--basetemp`` parent)."""
    return os.path.join(tempfile.gettempdir(), f"pytest-of-{getpass.getuser()}") + "/"


def _out(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout


def find_leaks() -> dict[str, str]:
    """What netplumb or the tests may have left on this machine, one line per object.

    Keyed by what the object is, not by its kernel name or pid: a demo that was up before the
    run and is up again after it (its hosts restarted) has new pids and veth names, and is not
    this run's leak; the line shown says which object it is now.
    """
    found: dict[str, str] = {}
    for line in _out(["ip", "netns", "list"]).splitlines():
        name = line.split(" ")[0]
        if name.startswith("npt-"):
            found[f"netns {name}"] = f"netns {name}"
    for path in glob.glob("/run/netplumb/*/hosts/*"):
        found[path] = f"netplumb host record {path}"
    links = _out(["ip", "-j", "link"])
    for link in json.loads(links) if links.strip() else []:
        alias = str(link.get("ifalias", ""))
        if alias.startswith("netplumb:"):
            # a host's veth is named after its holder's pid: the owner says which it is
            key = alias if alias.startswith("netplumb:host:") else link["ifname"]
            n = sum(1 for k in found if k.startswith(f"link {key} #"))
            found[f"link {key} #{n}"] = f"link {link['ifname']} ({alias})"
    for line in _out(["nft", "list", "tables"]).splitlines():
        if "netplumb" in line:
            found[f"nft {line.strip()}"] = f"nft {line.strip()}"
    for line in _out(["pgrep", "-af", PROCESSES]).splitlines():
        pid, _, command = line.partition(" ")
        state = _test_state(pid)
        if state:
            # started by a test's netplumb (a host's holder, a name server of its state)
            found[f"test process {pid}"] = f"process {line} (of {state})"
            continue
        n = sum(1 for k in found if k.startswith(f"process {command} #"))
        found[f"process {command} #{n}"] = f"process {line}"
    # netplumb's BPF programs (the socket redirection's, the LAN path's) stay loaded only
    # while attached: one still loaded is attached to a cgroup or a link nothing cleaned
    progs = _out(["bpftool", "-j", "prog", "show"])
    for prog in json.loads(progs) if progs.strip() else []:
        name = str(prog.get("name", ""))
        if name.startswith("np_"):
            n = sum(1 for k in found if k.startswith(f"bpf program {name} #"))
            found[f"bpf program {name} #{n}"] = f"bpf program {name} (id {prog.get('id')})"
    rows = _out(["docker", "ps", "-a", "--format", '{{.Names}}\t{{.Label "' + LABEL_STATE + '"}}'])
    for row in rows.splitlines():
        name, _, state = row.partition("\t")
        if name.startswith("npt-"):
            found[f"docker container {name}"] = f"docker container {name}"
        elif state.startswith(pytest_temp_root()):
            # netplumb made it for a test's state directory (`demo --runtime docker` names its
            # containers as the article does: mongodb, webserver1...)
            found[f"docker container {name}"] = f"docker container {name} (of {state})"
    return found


def _test_state(pid: str) -> str | None:
    """The state directory (or root) of netplumb's process ``pid`` if it lies under pytest's
    temporary root: a test's. Read from the environment it was started with."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    for entry in environ:
        name, _, value = entry.decode(errors="replace").partition("=")
        test_made = value.startswith(pytest_temp_root())
        if name in ("NETPLUMB_STATE_DIR", "NETPLUMB_STATE_ROOT") and test_made:
            return value
    return None


def earlier_test_objects(before: dict[str, str]) -> list[str]:
    """What was there before the run and only a test makes: ``npt-`` namespaces, containers
    named ``npt-`` or labelled with a state directory under pytest's temporary root, and
    netplumb's processes started with such a state. An earlier run's, interrupted before its
    cleanup; the demo's objects and a developer's hosts are not among them. The keys, sorted."""
    kinds = ("netns npt-", "docker container ", "test process ")
    return sorted(key for key in before if key.startswith(kinds))


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22): with
    the pid, it names one process for good (a pid is reused, the pair is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class Run:
    """This run's marker ``RUNS/<pid>.<token>`` holding the process's start time: a run is live
    while its process is (same pid, same start time). A token per run: a pytester run inside a
    run shares its pid, and each sees the other live."""

    def __init__(self, runs: Path = RUNS) -> None:
        self.runs = runs
        self.pid = os.getpid()
        self.marker = runs / f"{self.pid}.{secrets.token_hex(4)}"

    def enter(self) -> None:
        self.runs.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(_start_time(self.pid) or "")

    def leave(self) -> None:
        self.marker.unlink(missing_ok=True)

    def others(self) -> list[int]:
        """The pids of other live runs; the markers of dead runs are removed."""
        live = set()
        for marker in self.runs.glob("*.*") if self.runs.is_dir() else []:
            if marker == self.marker:
                continue
            pid_text = marker.name.split(".", 1)[0]
            if not pid_text.isdigit():
                continue
            pid = int(pid_text)
            try:
                started = marker.read_text()
            except OSError:
                continue
            if _start_time(pid) != started or not started:
                marker.unlink(missing_ok=True)  # its process is gone (killed, or ended)
            else:
                live.add(pid)
        return sorted(live)


def _kill_inside(netns: str) -> None:
    for pid in _out(["ip", "netns", "pids", netns]).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def reclaim(keys: Iterable[str]) -> list[str]:
    """Remove these objects of :func:`earlier_test_objects` (a dead run's): processes first (a
    holder restarts nothing once dead), containers (``docker rm -f -v``), then namespaces, what
    runs inside killed first (a process left inside keeps a namespace alive). What could not be
    removed is returned, one line each."""
    keys = sorted(keys)
    failed = []
    for key in keys:
        pid = key.removeprefix("test process ")
        if pid != key and _test_state(pid):  # still that process, not a pid reused since
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    containers = [k.removeprefix("docker container ") for k in keys if k.startswith("docker ")]
    if containers:
        proc = subprocess.run(
            ["docker", "rm", "-f", "-v", *containers], capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            failed.append(f"docker rm {' '.join(containers)}: {proc.stderr.strip()}")
    for key in keys:
        if key.startswith("netns "):
            name = key.removeprefix("netns ")
            _kill_inside(name)
            proc = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
            if proc.returncode != 0:
                failed.append(f"ip netns del {name}: {proc.stderr.strip()}")
    return failed
