"""Podman 4.3 with the CNI backend, private to a test: its own containers.conf, storage
(vfs) and run root, a CNI config and plugin directory of the test's own, and a busybox image
imported from a rootfs made here (no registry is reachable). Podman runs inside a lab "host"
namespace, so the bridge, nftables rules and addresses never touch the machine's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from kernel.attachlab import Lab

IMAGE = "localhost/npt-busybox:test"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "httpd", "ip", "ping", "sleep", "cat", "wget", "echo", "mkdir", "hostname")


def busybox_rootfs_tar(dest: Path) -> Path:
    """A tarball of a minimal rootfs: the static busybox and the applets the tests use
    (the recipe of scripts/busybox-image.sh, for Podman)."""
    root = dest.parent / "rootfs"
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "run", "www"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        link = root / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "www" / "index.html").write_text("hello from busybox\n")
    with tarfile.open(dest, "w") as tar:
        tar.add(root, arcname=".")
    return dest


class Podman:
    def __init__(self, lab: Lab, base: Path, plugin_dir: Path) -> None:
        self.lab = lab
        self.base = base
        self.net_dir = base / "net.d"
        self.net_dir.mkdir(parents=True, exist_ok=True)
        self.conf = base / "containers.conf"
        self.conf.write_text(
            "[network]\n"
            'network_backend = "cni"\n'
            f'cni_plugin_dirs = ["{plugin_dir}", "/usr/lib/cni"]\n'
            f'network_config_dir = "{self.net_dir}"\n'
            "[containers]\n"
            # runc fails on these VMs without explicit limits
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        )
        self.names: list[str] = []

    def network(self, name: str, plugin: dict[str, object]) -> None:
        conflist = {"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}
        (self.net_dir / f"{name}.conflist").write_text(json.dumps(conflist))

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        # nsenter, not ip netns exec: that one mounts a new /sys, hiding the cgroup mounts
        # runc needs; the plugin reads interfaces through netlink, never through /sys
        argv = [
            "nsenter",
            f"--net=/run/netns/{self.lab.host}",
            "podman",
            "--root",
            str(self.base / "root"),
            "--runroot",
            str(self.base / "runroot"),
            "--storage-driver",
            "vfs",
            *args,
        ]
        # No NETPLUMB_STATE_DIR: conmon runs podman's cleanup (and so CNI DEL) with an
        # environment of its own; the plugin finds the lab's state by its namespace instead
        env = {k: v for k, v in os.environ.items() if k != "NETPLUMB_STATE_DIR"}
        env["CONTAINERS_CONF"] = str(self.conf)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def import_image(self) -> None:
        tar = busybox_rootfs_tar(self.base / "busybox.tar")
        self("import", str(tar), IMAGE)

    def oci_archive(self, dest: Path) -> Path:
        """The image as an OCI archive (for ``ctr images import``)."""
        self("save", "--format", "oci-archive", "-o", str(dest), IMAGE)
        return dest

    def run(self, name: str, *args: str) -> str:
        self.names.append(name)
        return self("run", "-d", "--name", name, *args).stdout.strip()

    def close(self) -> None:
        if self.names:
            self("rm", "-f", "-t", "0", *self.names, check=False)
        self("rm", "-af", "-t", "0", check=False)
        subprocess.run(["umount", "-R", str(self.base / "root")], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


CONTAINERD_SOCKETS = (
    "/run/containerd/containerd.sock",
    "/var/run/docker/containerd/containerd.sock",
)


class Ctr:
    """containerd's ``ctr`` in a containerd namespace of the test's own (``npt-...``).

    ``ctr run --cni`` reads /etc/cni/net.d and /opt/cni/bin, fixed paths: it runs in a
    private mount namespace where an overlay on /etc and a tmpfs on /opt put the test's own
    config and plugin there; the machine's /etc and /opt are never written. ``/`` is a
    private mount here and /run/netns a shared one, so the container namespace ctr mounts
    under /run/netns is still seen by containerd and runc.
    """

    def __init__(self, lab: Lab, base: Path, plugin_dir: Path, socket: str, ns: str) -> None:
        self.lab = lab
        self.base = base
        self.plugin_dir = plugin_dir
        self.net_dir = base / "net.d"
        self.net_dir.mkdir(parents=True, exist_ok=True)
        for d in ("upper", "work"):
            (base / d).mkdir(exist_ok=True)
        self.ctr = ["ctr", "--address", socket, "--namespace", ns]
        self.ns = ns
        self.runs: list[subprocess.Popen[str]] = []

    def network(self, name: str, plugin: dict[str, object]) -> None:
        conflist = {"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}
        (self.net_dir / f"10-{name}.conflist").write_text(json.dumps(conflist))

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.ctr, *args], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
        return proc

    def run_cni(self, *args: str) -> subprocess.Popen[str]:
        """``ctr run --rm --cni ARGS`` in the background (it removes the network when the
        task exits: a detached ``ctr run -d`` never would)."""
        b = self.base
        script = (
            "set -e\n"
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={b}/upper,workdir={b}/work /etc\n"
            "mkdir -p /etc/cni/net.d\n"
            f"mount --bind {self.net_dir} /etc/cni/net.d\n"
            "mount -t tmpfs tmpfs /opt\n"
            "mkdir -p /opt/cni/bin\n"
            f"mount --bind {self.plugin_dir} /opt/cni/bin\n"
            'exec "$@"\n'
        )
        env = {k: v for k, v in os.environ.items() if k != "NETPLUMB_STATE_DIR"}
        proc = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{self.lab.host}",
                "unshare",
                "-m",
                "--propagation",
                "unchanged",
                "sh",
                "-c",
                script,
                "sh",
                *self.ctr,
                "run",
                "--rm",
                "--cni",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.runs.append(proc)
        return proc

    def close(self) -> None:
        for c in self("containers", "ls", "-q", check=False).stdout.split():
            self("task", "kill", "-s", "KILL", c, check=False)
        for proc in self.runs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for c in self("containers", "ls", "-q", check=False).stdout.split():
            self("task", "rm", "-f", c, check=False)
            self("containers", "rm", c, check=False)
        for image in self("images", "ls", "-q", check=False).stdout.split():
            self("images", "rm", "--sync", image, check=False)
        lines = self("snapshots", "ls", check=False).stdout.splitlines()[1:]
        for key in reversed([ln.split()[0] for ln in lines if ln.split()]):
            self("snapshots", "rm", key, check=False)
        for digest in self("content", "ls", "-q", check=False).stdout.split():
            self("content", "rm", digest, check=False)
        subprocess.run(
            ["ctr", *self.ctr[1:3], "namespaces", "rm", self.ns], capture_output=True, check=False
        )
