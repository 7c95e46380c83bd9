"""``netplumb demo``: the article's system, brought up and exercised as the article does.

One MongoDB-compatible database (``birthdays mongo``) exposing 27017; three web servers
running the birthday service, each linked ``mongodb:mongo`` and reading the link variables the
way the article's Dockerfile CMD does; a published port per web server; and a pipework-style
second interface with a static address on a second network (the article's 10.2.0.0/16). Then
the article's three POSTs, each through a different path (a container address, a published
host port, the pipework address), and its GET. Every command is printed with its output; the
system is left running, with a word on how to look around and how to take it down.

The system is ``examples/birthdays.yaml`` (netplumb hosts) or ``examples/birthdays-docker.yaml``
(``--runtime docker``: the same services as Docker containers of the locally built image
``netplumb/birthdays:local``), brought up with ``netplumb up`` like any topology file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from netplumb.demo import lan
from netplumb.demo.steps import curl, show, wait_http
from netplumb.errors import NetplumbError

PROJECT = "birthdays"
DEFAULT_DATA = "/var/lib/netplumb-demo/db"
WEBSERVERS = ("webserver1", "webserver2", "webserver3")
HOST_PORTS = {"webserver1": 8080, "webserver2": 8081, "webserver3": 8082}
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


def _ip_of(name: str) -> str:
    from netplumb.ops import links

    ip = links.find_target(name).ip
    if not ip:
        raise NetplumbError(f"demo: {name} has no address")
    return ip


def example(runtime: str) -> str:
    """The article's topology file for a runtime (in the checkout's ``examples/``)."""
    here = Path(__file__).resolve().parents[3] / "examples"
    return str(here / ("birthdays.yaml" if runtime == "host" else "birthdays-docker.yaml"))


def _shown_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _topology_file(runtime: str, data_dir: str) -> str:
    """The example, or for another database directory a copy of it that names that one."""
    path = example(runtime)
    if runtime != "host" or data_dir == DEFAULT_DATA:
        return path
    from netplumb import state

    with open(path) as f:
        text = f.read().replace(DEFAULT_DATA, data_dir)
    out = os.path.join(state.ensure_dir("demo"), os.path.basename(path))
    state.write_file(out, text.encode())
    return out


def _names(np: str, runtime: str) -> None:
    """Docker 29's way: a web server finds the others by name, through netplumb's name server
    (not its /etc/hosts, which has only its link to the database)."""
    print("\n# Names: webserver1 asks the network's name server for the database, then reads")
    print("# the birthdays from webserver2 by its name\n")
    if runtime == "host":
        inside = [np, "exec", "webserver1", "--"]
        show([*inside, "dig", "+short", "+tries=2", "+timeout=2", "mongodb"])
    else:
        inside = ["docker", "exec", "webserver1"]
        show([*inside, "getent", "hosts", "mongodb"])
    if runtime == "host":
        got = show([*inside, *curl("http://webserver2:8080")])
    else:  # the image has Python, not curl
        read = (
            "import urllib.request as u; "
            "print(u.urlopen('http://webserver2:8080', timeout=10).read().decode(), end='')"
        )
        got = show([*inside, "python3", "-c", read])
    if "name = Albert Einstein, birthday = 14.03.1879" not in got:
        raise NetplumbError(f"demo: webserver2 by its name answered {got!r}")


def down() -> None:
    np = _bin("netplumb")
    lan.down(np)
    show([np, "down", "-p", PROJECT])
    print("the demo is down.")


def up(
    data_dir: str,
    runtime: str = "host",
    lan_card: str | None = None,
    lan_pool: str | None = None,
) -> None:
    np = _bin("netplumb")
    if runtime == "host":
        os.makedirs(data_dir, exist_ok=True)
    path = _topology_file(runtime, data_dir)
    kind = "netplumb hosts" if runtime == "host" else "Docker containers"
    print(f"# The article's system as {kind}, from one topology file:")
    print("# a database, three web servers linked to it as 'mongo', a published port each,")
    print("# and a pipework-style interface for webserver3 on a second network\n")
    show([np, "up", "-f", _shown_path(path)])
    print("\n# Link: the variables a web server got (as `docker run --link` gives them)\n")
    show([np, "link", "env", "mongodb", "mongo", "--from", "webserver1"])
    print("\n# Port: where did webserver2's port 8080 go?\n")
    show([np, "port", "webserver2", "8080"])
    print(f"\n# Pipework: webserver3's extra interface, {PIPEWORK_ADDR}/16 on bridge br1\n")
    if runtime == "host":
        show([np, "exec", "webserver3", "--", "ip", "-br", "addr"])
    else:
        show(["docker", "exec", "webserver3", "ip", "-br", "addr"], check=False, timeout=30)
    ip1 = _ip_of("webserver1")
    urls = {
        f"webserver1 (its container address {ip1})": f"http://{ip1}:8080",
        "webserver2 (published host port 8081)": f"http://127.0.0.1:{HOST_PORTS['webserver2']}",
        f"webserver3 (pipework address {PIPEWORK_ADDR})": f"http://{PIPEWORK_ADDR}:8080",
    }
    for (via, url), name in zip(urls.items(), WEBSERVERS, strict=True):
        try:
            wait_http(url)
        except NetplumbError:
            raise NetplumbError(
                f"demo: {name} ({via}) is not ready; see: netplumb logs {name}"
            ) from None
    print("\n# Post three physicists, each through another path\n")
    for (via, url), (name, birthday) in zip(urls.items(), PHYSICISTS, strict=True):
        print(f"# via {via}")
        body = json.dumps({"name": name, "birthday": birthday})
        show(curl("-X", "POST", "-H", "Content-Type: application/json", "-d", body, url))
    print("\n# And read them back\n")
    got = show(curl(f"http://{ip1}:8080"))
    expected = "".join(f"name = {n}, birthday = {b}\n" for n, b in PHYSICISTS)
    if not got.endswith(expected):
        raise NetplumbError(f"demo: the service answered {got!r}, expected the three physicists")
    _names(np, runtime)
    lan_addr = lan.up(np, lan_card, lan_pool)
    look = f"  {np} ps\n"
    print(
        "\nThe article's system is running. Look around:\n"
        f"{look}"
        f"  {np} port webserver1\n"
        f"  {np} link env mongodb mongo --from webserver1\n"
        f"  {np} graph -o demo.svg\n"
        f"  {np} lan status\n"
        f"  curl http://127.0.0.1:8080    (and http://{lan_addr}:8080 from the LAN)\n"
        f"Take it down with: {np} demo --down"
    )
