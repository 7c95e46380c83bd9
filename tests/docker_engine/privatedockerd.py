"""A private dockerd for tests that must restart or reconfigure an engine: the machine's dockerd
is shared (other tests and helpers use it) and is never stopped, restarted or given networks
(a Docker network there would change the machine's firewall).

``Engine`` runs dockerd inside a throwaway "machine" namespace (entered with ``nsenter``, not
``ip netns exec``: that one mounts a sysfs of the namespace over ``/sys``, without
``/sys/fs/cgroup``, where dockerd's runtime finds the cgroups), with its own data root, exec
root, pidfile and socket; no bridge, no iptables, vfs storage. The ``engine`` fixture
(``conftest.py``) loads the busybox image into it from the machine's engine and removes
everything at the end, even on failure. ``Engine.sh`` runs a command in the namespace with
netplumb pointed at the engine (``DOCKER_HOST``) and its state under the test's directories:
``NETPLUMB_STATE_ROOT`` (what ``/run`` holds) and ``NETPLUMB_DURABLE_ROOT`` (``/var/lib``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from netns_helpers import BUSYBOX_IMAGE


class Engine:
    """A private dockerd inside the namespace ``ns``, and netplumb pointed at it."""

    def __init__(self, ns: str, top: Path) -> None:
        self.ns, self.top = ns, top
        self.sock = top / "docker.sock"
        self.pidfile = top / "dockerd.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.sock}",
            "NETPLUMB_STATE_ROOT": str(top / "run"),
            "NETPLUMB_DURABLE_ROOT": str(top / "lib"),
        }

    def start(self) -> None:
        (self.top / "daemon.json").write_text("{}")
        log = open(self.top / "dockerd.log", "ab")  # noqa: SIM115 -- closed with the process
        self.proc = subprocess.Popen(
            [
                # nsenter, not ip netns exec: that one mounts a sysfs of the namespace over
                # /sys, without /sys/fs/cgroup, where dockerd's runtime finds the cgroups
                "nsenter",
                f"--net=/run/netns/{self.ns}",
                "dockerd",
                "--config-file",
                str(self.top / "daemon.json"),
                "--data-root",
                str(self.top / "data"),
                "--exec-root",
                str(self.top / "exec"),
                "--pidfile",
                str(self.pidfile),
                "-H",
                f"unix://{self.sock}",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--storage-driver=vfs",
                "--shutdown-timeout=2",  # its containers' `sleep` ignores SIGTERM
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.top / "dockerd.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"private dockerd did not start:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, as a shutdown: dockerd stops its containers, then exits."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def docker(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", "-H", f"unix://{self.sock}", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {argv}: {proc.stderr}")
        return proc

    def sh(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command in the namespace, with netplumb's environment."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv}: {proc.stderr}")
        return proc

    def pid(self, name: str) -> int:
        out = self.docker("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", name).stdout
        running, pid = out.split()
        return int(pid) if running == "true" else 0


def _mounts_under(top: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return sorted((p for p in points if p.startswith(f"{top}/")), reverse=True)


def private_engine() -> Iterator[Engine]:
    """A started private engine with the busybox image; everything removed afterwards."""
    tag = secrets.token_hex(3)
    ns = f"npt-{tag}-rb"
    # Not pytest's tmp_path: dockerd's unix socket path must stay short (108 bytes).
    top = Path(f"/tmp/npt-{tag}")
    top.mkdir(mode=0o700)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    eng = Engine(ns, top)
    try:
        eng.start()
        image = subprocess.Popen(["docker", "save", BUSYBOX_IMAGE], stdout=subprocess.PIPE)
        assert image.stdout is not None
        subprocess.run(
            ["docker", "-H", f"unix://{eng.sock}", "load"],
            stdin=image.stdout,
            check=True,
            capture_output=True,
            timeout=120,
        )
        image.stdout.close()
        assert image.wait(timeout=60) == 0
        yield eng
    finally:
        if eng.proc is not None:
            eng.docker("rm", "-f", *eng.docker("ps", "-aq").stdout.split(), check=False)
        eng.stop()
        for point in _mounts_under(top):
            subprocess.run(["umount", "-l", point], check=False)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(top, ignore_errors=True)
