"""The lab of the published-port tests: a machine namespace ``m`` with netplumb, and the
guest ``srv`` whose server answers each connection with the address it came from (shared by
``test_port_sources.py`` and ``test_socklb.py``)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from lab import Lab as BaseLab

ROOT = Path(__file__).resolve().parents[2]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
GATEWAY, LOOPBACK_SOURCE, HAIRPIN_SOURCE = "10.89.0.1", "10.89.255.254", "10.89.255.253"
SELF_SOURCE = "10.89.255.252"

# The guest's server: answers each connection with the address it came from, then closes it
# first, so the guest holds the connection in TIME_WAIT (as a web server that closes does).
PEER_SERVER = textwrap.dedent("""
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080))
    s.listen(128)
    while True:
        c, (addr, port) = s.accept()
        c.sendall(f"{addr} {port}\\n".encode())
        c.close()
""")

# A client that connects from fixed source ports, one connection after another, to HOST:PORT,
# and prints what the server saw of each and the seconds each took.
CLIENT = textwrap.dedent("""
    import json, socket, sys, time
    host, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    bind = sys.argv[5] if len(sys.argv) > 5 else ""
    out = []
    for p in range(first, first + count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((bind, p))
        s.settimeout(10)
        t = time.monotonic()
        s.connect((host, port))
        seen = s.makefile().read().split()  # to the end: the server closes first
        out.append([seen[0], int(seen[1]), time.monotonic() - t])
        s.close()
    print(json.dumps(out))
""")


class Lab(BaseLab):
    """A machine namespace ``m`` where netplumb runs, with the lab's state."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, host="m")
        self.m = self.host

    def np(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run_in(self.m, NETPLUMB, *args, check=check)

    def serve(self) -> int:
        """The guest ``srv`` with PEER_SERVER, published on 127.0.0.1 and on every address;
        returns its PID."""
        self.np(
            "run",
            "--name",
            "srv",
            "-p",
            "127.0.0.1:18080:8080",
            "-p",
            "18081:8080",
            "--",
            "python3",
            "-c",
            PEER_SERVER,
        )
        pid = int(json.loads(self.np("ps", "--json").stdout)[0]["pid"])
        listening = "until ss -Htln sport = :8080 | grep -q .; do sleep 0.05; done"
        self.np("exec", "srv", "--", "timeout", "10", "sh", "-c", listening)
        return pid

    def connect(
        self, host: str, port: int, first: int, count: int, bind: str = ""
    ) -> list[tuple[str, int, float]]:
        """CLIENT from the machine: (address the server saw, port it saw, seconds taken)."""
        argv = ["python3", "-c", CLIENT, host, str(port), str(first), str(count)]
        out = self.run_in(self.m, *argv, *([bind] if bind else [])).stdout
        return [(str(a), int(p), float(t)) for a, p, t in json.loads(out)]
