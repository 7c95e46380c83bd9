"""DHCP clients for guest interfaces, kept running to renew their lease.

pipework runs its client once (``udhcpc -q``) and lets the lease expire; netplumb starts the
client in the guest's network namespace and leaves it running as a daemon that renews the
lease, until detach, ``rm`` or ``gc`` stops it.

The caller names the directory where the client's pidfile, lease file and (when the installed
script lost its mode) the event script go: netplumb's state directory, ``dhcp/``. The kernel
layer knows nothing of records.
"""

from __future__ import annotations

import os
import shutil

from netplumb.errors import KernelError, NetplumbError
from netplumb.kernel import netns

SCRIPT = os.path.join(os.path.dirname(__file__), "udhcpc-script.sh")


def find_client(wanted: str | None) -> str | None:
    """The client to use: the one asked for, else the first of udhcpc, dhclient, dhcpcd.

    Debian's ``busybox-static`` has the udhcpc applet without an ``udhcpc`` link: counted too.
    """
    for name in (wanted,) if wanted else ("udhcpc", "dhclient", "dhcpcd"):
        if shutil.which(name):
            return name
        if name == "udhcpc" and shutil.which("busybox"):
            return "udhcpc"
    return None


def script(workdir: str) -> str:
    """The udhcpc event script, executable: installers may drop the file's mode, and udhcpc
    silently ignores a script it cannot run (the lease is then never configured)."""
    if os.access(SCRIPT, os.X_OK):
        return SCRIPT
    copy = os.path.join(workdir, "udhcpc-script.sh")
    with open(SCRIPT, "rb") as src:
        data = src.read()
    # root runs it, nobody else: 0700 from its creation
    fd = os.open(copy + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o700)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(copy + ".tmp", copy)
    return copy


def pidfile(workdir: str, owner: str, ifname: str) -> str:
    return os.path.join(workdir, f"{owner}@{ifname}.pid")


def start(
    guest_fd: int,
    owner: str,
    ifname: str,
    client: str,
    args: tuple[str, ...],
    hostname: str,
    workdir: str,
) -> str:
    """Start the client; return its pidfile once it holds a first lease (or raise). Its
    pidfile and lease file go into ``workdir`` (which exists)."""
    import subprocess

    pf = pidfile(workdir, owner, ifname)
    if client == "udhcpc":
        exe = ["udhcpc"] if shutil.which("udhcpc") else ["busybox", "udhcpc"]
        # Without -q, udhcpc daemonizes once it has a lease and renews it; -n: fail if none.
        argv = [
            *exe,
            "-i",
            ifname,
            "-s",
            script(workdir),
            "-p",
            pf,
            "-n",
            "-t",
            "4",
            "-T",
            "2",
            "-x",
            f"hostname:{hostname}",
            *args,
        ]
    elif client == "dhclient":
        lease = os.path.join(workdir, f"{owner}@{ifname}.lease")
        argv = ["dhclient", "-1", "-pf", pf, "-lf", lease, *args, ifname]
    else:
        argv = ["dhcpcd", "-4", "-t", "15", "-h", hostname, *args, ifname]
    with netns.entered(guest_fd):
        try:
            # umask 077: the pidfile and lease file the client writes in the state directory
            # are 0600 like netplumb's own
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=30, check=False, umask=0o077
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetplumbError(f"cannot run DHCP client {client} for {ifname}: {exc}") from None
    if proc.returncode != 0:
        stop(pf, ifname)
        detail = (proc.stderr.strip().splitlines() or ["no lease"])[-1]
        raise NetplumbError(f"DHCP client {client} got no lease on {ifname}: {detail}")
    if client == "dhcpcd" and not os.path.exists(pf):
        raise KernelError(f"find the pidfile of dhcpcd for {ifname}", 2)
    if not _has_ipv4(guest_fd, ifname):
        stop(pf, ifname)
        raise NetplumbError(
            f"DHCP client {client} reported a lease on {ifname}, but no address was set"
        )
    return pf


def _has_ipv4(guest_fd: int, ifname: str) -> bool:
    from _socket import AF_INET

    with netns.socket_in(guest_fd) as nl:
        link = nl.get_link(ifname)
        return link is not None and any(a.index == link.index for a in nl.addresses(AF_INET))


def stop(pf: str, ifname: str) -> None:
    from netplumb.kernel.session import kill_pidfile

    kill_pidfile(pf, ifname)
