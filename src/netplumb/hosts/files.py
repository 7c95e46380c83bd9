"""A host's own files: its ``/etc/hosts`` (Docker's layout), ``/etc/hostname``,
``/etc/resolv.conf`` (the machine's without loopback name servers), its command's environment,
and removing them with its log."""

from __future__ import annotations

import errno
import os

from netplumb import state
from netplumb.errors import InvalidValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def hosts_file(hostname: str, extra: list[str], own: list[str] | None = None) -> str:
    """Docker's layout: localhost lines, one line per link, then the host's own line."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        *extra,
        *(own or [f"127.0.1.1\t{hostname}"]),
    ]
    return "\n".join(lines) + "\n"


def resolv_conf(nameservers: list[str] | None = None) -> str:
    """The host's resolver configuration: the machine's without loopback name servers (a
    host in its own namespace cannot reach the machine's 127.0.0.53; Docker drops those lines
    for the same reason), or, on netplumb's networks, ``nameservers`` (its network's name
    server, which forwards to the machine's) with the machine's search domains and
    ``options ndots:0``, as Docker's embedded DNS has it."""
    if nameservers:
        return "\n".join([*nameservers, *_search_lines(), "options ndots:0"]) + "\n"
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []

    def loopback_server(line: str) -> bool:
        words = line.split()
        return (
            len(words) >= 2
            and words[0] == "nameserver"
            and (words[1].startswith("127.") or words[1] == "::1")
        )

    return "\n".join(ln for ln in lines if not loopback_server(ln)) + "\n"


def _search_lines() -> list[str]:
    try:
        with open("/etc/resolv.conf") as f:
            return [
                ln for ln in f.read().splitlines() if ln.split()[:1] in (["search"], ["domain"])
            ]
    except OSError:
        return []


def write_resolv_conf(name: str, nameservers: list[str]) -> None:
    """Rewrite the host's /etc/resolv.conf in place (bind-mounted by inode)."""
    path = os.path.join(state.path("hosts.d", name), "resolv.conf")
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(resolv_conf(nameservers))


def build_env(hostname: str, env: list[str], inherited: dict[str, str]) -> dict[str, str]:
    """The command's environment: a clean base, then each ``-e``; ``-e K`` copies K from ours."""
    out = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    for item in env:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidValue(f"invalid environment variable: {item}")
        if eq:
            out[key] = value
        elif key in inherited:
            out[key] = inherited[key]
    return out


def files_dir(name: str) -> str:
    """The host's directory of files (made if missing)."""
    return state.ensure_dir("hosts.d", name)


def write_hosts_file(record: Record, lines: list[str]) -> None:
    """Rewrite the host's /etc/hosts in place (it is bind-mounted by inode): link lines, then
    its own address line."""
    hostname = str(record.get("hostname", record["name"]))
    own = [f"{n['ip']}\t{hostname}" for n in record.get("networks", [])][:1]
    text = hosts_file(hostname, lines, own)
    path = os.path.join(state.path("hosts.d", str(record["name"])), "hosts")
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(text)


def remove_files(name: str) -> None:
    """The host's ``/etc`` files and its log."""
    files = state.path("hosts.d", name)
    for fname in ("hosts", "hostname", "resolv.conf", "status", "control"):
        try:
            os.unlink(f"{files}/{fname}")
        except FileNotFoundError:
            pass
    try:
        os.rmdir(files)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    try:
        os.unlink(os.path.join(state.path("logs"), f"{name}.log"))
    except FileNotFoundError:
        pass
