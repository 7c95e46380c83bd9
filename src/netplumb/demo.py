"""``netplumb demo``: the article's system, brought up and exercised as the article does.

One MongoDB-compatible database (``birthdays mongo``) exposing 27017; three web servers
running the birthday service, each linked ``mongodb:mongo`` and reading the link variables the
way the article's Dockerfile CMD does; a published port per web server; and a pipework-style
second interface with a static address on a second network (the article's 10.2.0.0/16). Then
the article's three POSTs, each through a different path (a container address, a published
host port, the pipework address), and its GET. Every command is printed with its output; the
system is left running, with a word on how to look around and how to take it down.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

from netplumb.errors import NetplumbError

WEBSERVERS = ("webserver1", "webserver2", "webserver3")
HOST_PORTS = {"webserver1": 8080, "webserver2": 8081, "webserver3": 8082}
PIPEWORK_NET = ("demo", "br1", "10.2.0.0/16")
PIPEWORK_ADDR = "10.2.0.11"
PHYSICISTS = (
    ("James Clerk Maxwell", "13.06.1831"),
    ("Albert Einstein", "14.03.1879"),
    ("Werner Heisenberg", "05.12.1901"),
)


def _bin(name: str) -> str:
    """A command of this installation (the venv's bin), by absolute path: hosts get a plain PATH."""
    here = os.path.dirname(sys.executable)
    path = os.path.join(here, name)
    return path if os.path.exists(path) else name


def _show(argv: list[str], *, check: bool = True, quiet: bool = False) -> str:
    """Run a command the way the article shows one: the prompt line, then its output."""
    shown = " ".join(shlex.quote(a) if a != argv[0] else os.path.basename(a) for a in argv)
    print(f"> {shown}", flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout
    if out and not quiet:
        print(out, end="" if out.endswith("\n") else "\n", flush=True)
    if proc.returncode != 0 and check:
        raise NetplumbError(f"demo step failed: {shown}: {(proc.stderr or proc.stdout).strip()}")
    return out


def _wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", f"{url}/readyz"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout == "200":
            return
        time.sleep(0.2)
    raise NetplumbError(f"demo: {url} did not become ready in {seconds:g} s")


def _wait_tcp(host: str, port: int, seconds: float = 60) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise NetplumbError(f"demo: nothing listens on {host}:{port} after {seconds:g} s")


def _ip_of(name: str) -> str:
    rows = json.loads(
        subprocess.run(
            [_bin("netplumb"), "ps", "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    for row in rows:
        if row["name"] == name:
            for addr in row["addresses"]:
                if addr.startswith("10.89."):
                    return str(addr.split("/")[0])
    raise NetplumbError(f"demo: {name} has no address on the default network")


def down() -> None:
    np = _bin("netplumb")
    names = [*WEBSERVERS, "mongodb"]
    existing = {r["name"] for r in json.loads(_show([np, "ps", "--json"], quiet=True))}
    if existing & set(names):
        _show([np, "rm", "-f", *[n for n in names if n in existing]])
    nets = _show([np, "network", "ls"], quiet=True)
    if any(line.split("\t")[0] == PIPEWORK_NET[0] for line in nets.splitlines()):
        _show([np, "network", "rm", PIPEWORK_NET[0]])
    print("the demo is down.")


def up(data_dir: str) -> None:
    np, pw, bd = _bin("netplumb"), _bin("pipework"), _bin("birthdays")
    print("# Link: start the database, then three web servers linked to it as 'mongo'\n")
    os.makedirs(data_dir, exist_ok=True)
    _show(
        [
            np,
            "run",
            "--name",
            "mongodb",
            "--expose",
            "27017",
            "--",
            bd,
            "mongo",
            "--host",
            "0.0.0.0",
            "--port",
            "27017",
            "--data",
            data_dir,
        ]
    )
    _wait_tcp(_ip_of("mongodb"), 27017)  # depends_on: the database first
    serve = f"exec {bd} serve 8080 $MONGO_PORT_27017_TCP_ADDR $MONGO_PORT_27017_TCP_PORT"
    for name in WEBSERVERS:
        _show(
            [
                np,
                "run",
                "--name",
                name,
                "--link",
                "mongodb:mongo",
                "--expose",
                "8080",
                "-p",
                f"{HOST_PORTS[name]}:8080",
                "--",
                "sh",
                "-c",
                serve,
            ]
        )
    print("\n# The link variables a web server got (as `docker run --link` gives them)\n")
    _show([np, "exec", "webserver1", "--", "sh", "-c", "env | grep ^MONGO_ | sort"])
    print("\n# Port: where did webserver2's port 8080 go?\n")
    _show([np, "port", "webserver2", "8080"])
    print("\n# Pipework: another interface for webserver3, with a static address on 10.2.0.0/16\n")
    _show(
        [
            np,
            "network",
            "create",
            PIPEWORK_NET[0],
            "--bridge",
            PIPEWORK_NET[1],
            "--subnet",
            PIPEWORK_NET[2],
        ]
    )
    _show([pw, PIPEWORK_NET[1], "-i", "eth1", "webserver3", f"{PIPEWORK_ADDR}/16"])
    _show([np, "exec", "webserver3", "--", "ip", "-br", "addr"])
    urls = {
        "webserver1 (its container address)": f"http://{_ip_of('webserver1')}:8080",
        "webserver2 (published host port)": f"http://127.0.0.1:{HOST_PORTS['webserver2']}",
        "webserver3 (pipework address)": f"http://{PIPEWORK_ADDR}:8080",
    }
    for (via, url), name in zip(urls.items(), WEBSERVERS, strict=True):
        try:
            _wait_http(url)
        except NetplumbError:
            log = subprocess.run([np, "logs", name], capture_output=True, text=True, check=False)
            tail = " | ".join(log.stdout.strip().splitlines()[-3:])
            raise NetplumbError(
                f"demo: {name} ({via}) is not ready; its log ends: {tail}"
            ) from None
    print("\n# Post three physicists, each through another path\n")
    for (via, url), (name, birthday) in zip(urls.items(), PHYSICISTS, strict=True):
        print(f"# via {via}")
        body = json.dumps({"name": name, "birthday": birthday})
        _show(["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json", "-d", body, url])
    print("\n# And read them back\n")
    got = _show(["curl", "-s", urls["webserver1 (its container address)"]])
    expected = "".join(f"name = {n}, birthday = {b}\n" for n, b in PHYSICISTS)
    if not got.endswith(expected):
        raise NetplumbError(f"demo: the service answered {got!r}, expected the three physicists")
    print(
        "\nThe article's system is running. Look around:\n"
        f"  {np} ps\n"
        f"  {np} port webserver1\n"
        f"  {np} link env mongodb mongo --from webserver1\n"
        f"  {np} exec webserver1 -- cat /etc/hosts\n"
        f"  {np} graph -o demo.svg\n"
        f"  curl http://127.0.0.1:8080\n"
        f"Take it down with: {np} demo --down"
    )
