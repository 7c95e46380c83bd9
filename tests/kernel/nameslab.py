"""A lab whose "machine" namespace forwards names to a fake upstream: dnsmasq in a namespace of
its own, which knows one outside name, and ``/etc/netns/<ns>/resolv.conf`` (which ``ip netns
exec`` puts in place) naming it. For the name server's tests (test_names*.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from lab import Lab, run

OUTSIDE = ("outside.test", "198.51.100.7")
UPSTREAM = "172.31.53.2"


class NamesLab(Lab):
    """A lab whose machine namespace forwards names to a fake upstream (dnsmasq)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, host="m")
        with self.closed_on_error():
            etc = Path("/etc/netns") / self.host
            made_top = not etc.parent.exists()
            etc.mkdir(parents=True)
            self.defer(f"{etc}", lambda: _remove_etc(etc, made_top))
            (etc / "resolv.conf").write_text(f"search lab.test\nnameserver {UPSTREAM}\n")
            self.upstream = self.netns("up")
            self.veth(self.host, "up0", self.upstream, "eth0")
            run(["ip", "-n", self.host, "addr", "add", "172.31.53.1/30", "dev", "up0"])
            run(["ip", "-n", self.upstream, "addr", "add", f"{UPSTREAM}/30", "dev", "eth0"])
            self.dnsmasq = self.popen(
                self.upstream,
                [
                    "dnsmasq",
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    f"--listen-address={UPSTREAM}",
                    "--bind-interfaces",
                    f"--address=/{OUTSIDE[0]}/{OUTSIDE[1]}",
                    "--address=/missing.test/",  # NXDOMAIN (others: REFUSED, no upstream)
                    "--pid-file=",
                    "--user=root",
                ],
            )

    def dig(self, host: str, *args: str) -> str:
        """``dig +short`` from inside ``host``, through its resolv.conf's server."""
        out = self.netplumb("exec", host, "dig", "+short", "+tries=1", "+timeout=8", *args)
        return out.stdout.strip()

    def status(self, host: str, *args: str) -> str:
        """The answer's status (NOERROR, NXDOMAIN, SERVFAIL, ...)."""
        out = self.netplumb("exec", host, "dig", "+tries=1", "+timeout=8", *args).stdout
        for line in out.splitlines():
            if "status:" in line:
                return line.split("status:")[1].split(",")[0].strip()
        return f"no answer: {out[-300:]}"

    def up(self, name: str, *args: str) -> None:
        """A host ``name`` running ``sleep infinity`` (``args``: more ``run`` options)."""
        self.netplumb("run", "--name", name, *args, "sleep", "infinity")

    def server_pid(self) -> int | None:
        try:
            return int((self.state / "dns.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def _remove_etc(etc: Path, made_top: bool) -> None:
    shutil.rmtree(etc, ignore_errors=True)
    if made_top:
        try:
            etc.parent.rmdir()
        except OSError:
            pass
