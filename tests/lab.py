"""The one lab of the kernel, e2e and Docker tests: throwaway namespaces, a netplumb state
directory, commands and background processes in them, and one cleanup that always runs.

A :class:`Lab` is a "machine" made of network namespaces named ``npt-<6 hex>-<role>`` (the
lab's id, then the role: ``host``, ``g1``, ``lan``...), so the machine's own interfaces, routes
and firewall are never touched and the session's leak check (``tests/conftest.py``) finds
whatever is left. netplumb runs in the lab's host namespace with the lab's own state: a
state directory (``NETPLUMB_STATE_DIR``) or, for tests of how netplumb finds its directory,
a state root (``NETPLUMB_STATE_ROOT``, nothing else of ``NETPLUMB_*`` inherited).

Everything the lab makes registers how to undo it; :meth:`Lab.close` undoes it all, every step
even when an earlier one failed (the failures are reported together afterwards), in three
phases, newest first within each: background processes are killed (``STOP``); then what uses
the lab's namespaces goes (``RELEASE``): what netplumb holds under the lab's state (its hosts,
removed with ``netplumb rm -f``; see :meth:`Lab.release`) and the test's own steps
(:meth:`Lab.defer`); then the lab's own objects (``REMOVE``): namespaces (their processes
killed first: a process left inside keeps a namespace alive after ``ip netns del``), Docker
containers, directories.

Results are read with ``ip -j``, ``nft -j``, /proc and real traffic, never with netplumb's code.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from shutil import rmtree
from types import TracebackType
from typing import Any, Literal, Self

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
NETPLUMB = str(VENV_BIN / "netplumb")
PIPEWORK = str(VENV_BIN / "pipework")
PYTHON = str(VENV_BIN / "python3")
NETNS_PREFIX = "npt-"

Json = dict[str, Any]


class CommandError(subprocess.CalledProcessError, AssertionError):
    """A failed command whose message carries its output: a test failure says why at once.

    An ``AssertionError`` too: a setup step that fails is the test's failure, not an error."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited {self.returncode}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )


def run(
    cmd: Sequence[str],
    netns: str | None = None,
    check: bool = True,
    timeout: float = 60,
    input: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (in namespace ``netns`` through ``ip netns exec``) and capture text output.

    With ``check`` a non-zero exit raises :class:`CommandError`."""
    argv = [*(["ip", "netns", "exec", netns] if netns else []), *map(str, cmd)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, input=input, env=env, cwd=cwd
    )
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a setup command of the test itself (not netplumb): ``run`` with the argv spread."""
    return run(argv, check=check, timeout=timeout)


def ip_json(ns: str | None, *args: str) -> list[Json]:
    """``ip -j [-n NS] ARGS`` parsed; an empty answer is an empty list."""
    out = run(["ip", "-j", *(["-n", ns] if ns else []), *args]).stdout
    rows: list[Json] = json.loads(out) if out.strip() else []
    return rows


def wait_for(cond: Callable[[], object], timeout: float = 5.0, step: float = 0.05) -> bool:
    """Poll ``cond`` until it is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def is_root() -> bool:
    return os.geteuid() == 0


def need_root() -> None:
    """Skip the calling test unless it runs as root (under CI the skip fails the run)."""
    if not is_root():
        pytest.skip("needs root (network namespaces)")


def kill(pid: int, group: bool = False) -> None:
    """SIGKILL a process (its process group with ``group``); already gone is fine."""
    try:
        os.kill(-pid if group else pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def delete_netns(name: str) -> None:
    """Kill what runs in namespace ``name``, then delete it; already gone is fine."""
    for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
        if pid.isdigit():
            kill(int(pid))
    run(["ip", "netns", "del", name], check=False)


def stop_process(proc: subprocess.Popen[Any], grace: float = 0) -> int | None:
    """End a background process: SIGTERM and ``grace`` seconds to exit, then SIGKILL (at once
    when ``grace`` is 0); its exit status (None if it would not even die)."""
    if proc.poll() is None:
        if grace > 0:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        proc.kill()
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


def remove_containers(names: Iterable[str]) -> None:
    """``docker rm -f -v`` of these containers (their anonymous volumes too); already gone is
    fine."""
    names = list(names)
    if names:
        run(["docker", "rm", "-f", "-v", *names], check=False, timeout=120)


# The phases of a lab's cleanup, in the order they run; newest first within each. Processes
# first (a `netplumb watch` left running would put back what the next steps remove), then what
# uses the lab's namespaces (netplumb's hosts, the test's own steps), then the namespaces,
# containers and directories themselves.
STOP, RELEASE, REMOVE = 0, 1, 2


class Lab:
    """Namespaces playing a machine and what runs in them, with one cleanup for all of it.

    ``host`` is the role of the namespace netplumb runs in (``lab.host``), made at once; None
    makes none (a lab of bare namespaces). ``state`` says where netplumb keeps its records:

    - ``"dir"``: ``TMP/state``, told by ``NETPLUMB_STATE_DIR``;
    - ``"root"``: a state root ``TMP/netplumb`` (``NETPLUMB_STATE_ROOT``, no other
      ``NETPLUMB_*`` inherited), below which netplumb picks a directory per namespace;
    - ``"netns"``: where netplumb itself puts the host namespace's records (``/run/netplumb/
      netns-<inode>-<cookie>``, as a runtime that passes no environment gets), asked of
      netplumb; removed at cleanup.
    """

    def __init__(
        self, tmp: Path, host: str | None = "host", state: Literal["dir", "root", "netns"] = "dir"
    ) -> None:
        self.id = secrets.token_hex(3)
        self.tmp = tmp
        self.state_kind = state
        self.state = tmp / ("netplumb" if state == "root" else "state")
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.np_hosts: list[str] = []  # netplumb hosts the test started some other way
        self._undo: list[tuple[int, str, Callable[[], object]]] = []
        self._netns_undo: dict[str, Callable[[], object]] = {}
        self._count = 0
        self.host = ""
        if host:
            with self.closed_on_error():
                self.host = self.netns(host)
                if state == "netns":
                    code = "from netplumb import state; print(state.state_dir())"
                    where = self.state = Path(self.in_host(PYTHON, "-c", code).stdout.strip())
                    self.defer(f"directory {where}", partial(rmtree, where, True), REMOVE)
                self.defer(f"netplumb's objects in {self.state}", self.release)

    @contextmanager
    def closed_on_error(self) -> Iterator[None]:
        """For a subclass's constructor: what it made goes if it fails halfway (no fixture
        would ever get the lab to close it)."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    # -- the cleanup registry -----------------------------------------------------------------

    def defer(
        self, what: str, undo: Callable[[], object], phase: int = RELEASE
    ) -> Callable[[], object]:
        """Run ``undo`` at :meth:`close`, in its phase (``STOP``, ``RELEASE``, ``REMOVE``),
        before what was registered earlier in the same phase; returns the step, for
        :meth:`cancel`."""
        self._undo.append((phase, what, undo))
        return undo

    def cancel(self, undo: Callable[[], object]) -> None:
        """Forget a step: the test undid it itself."""
        self._undo = [step for step in self._undo if step[2] is not undo]

    def close(self) -> None:
        """Undo everything, phase by phase, newest first within a phase; every step runs, and
        the failures are raised together at the end."""
        failed = []
        for phase in (STOP, RELEASE, REMOVE):
            while steps := [step for step in self._undo if step[0] == phase]:
                step = steps[-1]
                self._undo.remove(step)
                try:
                    step[2]()
                except Exception as exc:  # the next steps must still run
                    failed.append(f"{step[1]}: {exc}")
        if failed:
            raise AssertionError("lab cleanup failed:\n" + "\n".join(failed))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def release(self) -> None:
        """Remove what netplumb holds under the lab's state (run at :meth:`close` before the
        host namespace goes): every host it lists, whoever started it (their namespaces are
        not the lab's, so deleting the lab's namespaces would leave them and their holders)."""
        known = set(self.np_hosts)
        if self.state.exists():
            listed = self.netplumb("ps", "--json", check=False).stdout
            known |= {str(r["name"]) for r in json.loads(listed or "[]")}
        for name in sorted(known):
            self.netplumb("rm", "-f", name, check=False)

    # -- namespaces ---------------------------------------------------------------------------

    def netns(self, role: str = "") -> str:
        """A new namespace ``npt-<lab id>-<role>`` with ``lo`` up, deleted at cleanup."""
        need_root()
        if not role:
            self._count += 1
            role = f"ns{self._count}"
        name = f"{NETNS_PREFIX}{self.id}-{role}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        undo = self.defer(f"namespace {name}", lambda: delete_netns(name), REMOVE)
        self._netns_undo[name] = undo
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def delete_netns(self, name: str, kill_first: bool = True) -> None:
        """Delete one of the lab's namespaces now, its processes killed first unless
        ``kill_first`` is false (what a test that loses a namespace under netplumb wants)."""
        if kill_first:
            delete_netns(name)
        else:
            run(["ip", "netns", "del", name])
        if name in self.namespaces:
            self.namespaces.remove(name)
        if name in self._netns_undo:
            self.cancel(self._netns_undo.pop(name))

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        """A veth pair of the test's own, ``name_a`` in ``ns_a`` and ``name_b`` in ``ns_b``, both
        ends up (it goes with its namespaces)."""
        peer = ["peer", "name", name_b, "netns", ns_b]
        run(["ip", "-n", ns_a, "link", "add", "name", name_a, "type", "veth", *peer])
        run(["ip", "-n", ns_a, "link", "set", name_a, "up"])
        run(["ip", "-n", ns_b, "link", "set", name_b, "up"])

    # -- commands and processes, with the lab's netplumb state --------------------------------

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of commands in the lab: this process's, read now (a test's
        ``monkeypatch.setenv`` counts), netplumb's state pointed at the lab's, ``extra`` on top."""
        if self.state_kind == "root":
            env = {k: v for k, v in os.environ.items() if not k.startswith("NETPLUMB_")}
            env["NETPLUMB_STATE_ROOT"] = str(self.state)
        elif self.state_kind == "netns":
            env = {k: v for k, v in os.environ.items() if k != "NETPLUMB_STATE_DIR"}
        else:
            env = {**os.environ, "NETPLUMB_STATE_DIR": str(self.state)}
            env.pop("NETPLUMB_FAIL_AFTER", None)
        env.update(extra or {})
        return env

    def run_in(
        self,
        ns: str,
        *argv: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in namespace ``ns`` with the lab's environment (``env`` on top)."""
        return run(argv, ns, check=check, timeout=timeout, input=input, env=self.environ(env))

    def in_host(
        self, *argv: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the lab's host namespace, with the lab's netplumb state."""
        return self.run_in(self.host, *argv, check=check, env=env, timeout=timeout)

    def netplumb(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``netplumb ARGS`` in the lab's host namespace."""
        return self.in_host(NETPLUMB, *args, check=check, env=env, timeout=timeout)

    def pipework(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``pipework ARGS`` in the lab's host namespace."""
        return self.in_host(PIPEWORK, *args, check=check, env=env)

    def popen(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        """A background process in ``ns`` (output discarded unless ``stdout``/``stderr`` say
        otherwise; ``env`` as given, else the lab's), killed at cleanup."""
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        kw.setdefault("env", self.environ())
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], text=True, **kw)
        self.procs.append(proc)
        self.defer(f"process {proc.pid} ({' '.join(argv)[:60]})", lambda: stop_process(proc), STOP)
        return proc

    def sleeper(self, ns: str) -> int:
        """A ``sleep`` process inside ``ns``; returns its PID once it is in the namespace."""
        proc = self.popen(ns, ["sleep", "1000"])
        want = os.stat(f"/run/netns/{ns}").st_ino

        def inside() -> bool:
            try:
                return os.stat(f"/proc/{proc.pid}/ns/net").st_ino == want
            except OSError:
                return False

        assert wait_for(inside), f"sleep did not enter {ns}"
        return proc.pid

    def container(self, name: str) -> str:
        """Register a Docker container the test makes (before ``docker run``: a half-made one
        goes too), removed at cleanup; returns its name."""
        self.defer(f"docker container {name}", lambda: remove_containers([name]), REMOVE)
        return name
