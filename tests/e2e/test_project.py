"""``netplumb up`` / ``down`` end to end, each test in a throwaway "machine" namespace.

The oracle is never netplumb's own code: ``ip -j`` for links and addresses, ``nft -j`` for the
ruleset, ``ip netns pids`` for processes, real traffic with curl, and the state directory's
files for leases and records.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import Lab

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
BUSYBOX = "netplumb/busybox:test"


class Machine:
    """A namespace playing a whole machine, with netplumb's state directory of its own: a lab
    of ``tests/lab.py`` (host namespace ``npt-<hex>-up``)."""

    def __init__(self, tmp: Path) -> None:
        self.lab = Lab(tmp, host="up")
        self.ns = self.lab.host
        self.tmp = tmp
        self.state = self.lab.state
        self.env = self.lab.environ()
        self.lab.defer("projects", self.down_projects)

    def np(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = self.lab.netplumb(*args, check=False, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"netplumb {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return self.lab.popen(self.ns, [NETPLUMB, *args], env=self.env)

    def sh(self, cmd: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, "sh", "-c", cmd],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    def hosts(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in json.loads(self.np("ps", "--json").stdout)}

    # -- the oracle ---------------------------------------------------------------------------

    def links(self) -> list[str]:
        rows = json.loads(
            subprocess.run(
                ["ip", "-n", self.ns, "-j", "link"], capture_output=True, text=True, check=True
            ).stdout
        )
        return sorted(r["ifname"] for r in rows)

    def processes(self) -> list[str]:
        """Every process of this machine: in its namespace, or a holder started under its
        state directory (found by its environment), or in a namespace such a holder keeps."""
        mark = f"NETPLUMB_STATE_DIR={self.state}".encode()
        mine = os.stat(f"/run/netns/{self.ns}").st_ino
        procs: dict[int, tuple[str, int, bool]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
                ns = os.stat(f"/proc/{entry}/ns/net").st_ino
            except OSError:
                continue
            procs[int(entry)] = (cmd.decode().strip(), ns, mark in env)
        kept = {
            ns for cmd, ns, marked in procs.values() if marked and cmd.startswith("netplumb-hold")
        }
        return sorted(
            cmd
            for cmd, ns, marked in procs.values()
            if ns == mine or ns in kept or (marked and cmd.startswith("netplumb-hold"))
        )

    def nft_rules(self) -> list[str]:
        """The elements of netplumb's DNAT maps (one per published port and family)."""
        text = self.sh("nft -j list ruleset")
        if not text.strip():
            return []
        items = json.loads(text)["nftables"]
        return [
            json.dumps(elem)
            for i in items
            if "map" in i and i["map"]["name"].startswith("publish")
            for elem in i["map"].get("elem", [])
        ]

    def leases(self) -> dict[str, str]:
        """Every address lease: ``leases.d/<network>/<address>``, a link naming its owner."""
        out: dict[str, str] = {}
        for path in (self.state / "leases.d").glob("*/*"):
            if not path.name.startswith(".") and not path.name.endswith(".tmp"):
                out[f"{path.parent.name}/{path.name}"] = os.readlink(path)
        return out

    def stray(self) -> list[str]:
        """Files a write interrupted (``kill -9``) left behind: ``*.tmp`` anywhere in state."""
        return sorted(str(p.relative_to(self.state)) for p in self.state.rglob("*.tmp"))

    def records(self, kind: str) -> list[str]:
        folder = self.state / kind
        return (
            sorted(p.name for p in folder.glob("*") if not p.name.startswith("."))
            if folder.exists()
            else []
        )

    def assert_empty(self) -> None:
        """Nothing of any project left: only lo and the default network's bridge."""
        assert self.links() in (["lo"], ["lo", "np0"]), self.links()
        assert self.processes() == []
        assert self.nft_rules() == []
        assert self.leases() == {}
        assert self.records("hosts") == []
        assert self.records("projects") == []
        assert self.records("attach") == []
        assert self.records("ports") == []
        assert self.records("docker") == []
        assert self.stray() == []

    def down_projects(self) -> None:
        for name in self.records("projects"):
            self.np("down", "-p", name, check=False)

    def close(self) -> None:
        """Projects down, then the lab's cleanup: hosts, processes, the namespace."""
        self.lab.close()


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    m = Machine(tmp_path)
    try:
        yield m
    finally:
        m.close()


SMALL = """
    name: {name}
    networks:
      back:
        bridge: {bridge}
        subnet: {subnet}
    services:
      db:
        command: python3 -m http.server 7000 --bind 0.0.0.0
        expose: [7000]
        networks: [netplumb, back]
      app:
        replicas: 2
        command: python3 -m http.server 7000 --bind 0.0.0.0
        environment: {{MODE: "{mode}"}}
        links: [db]
        ports: ["{port}-{port_end}:7000"]
        depends_on:
          db:
            condition: tcp:7000
"""


def small(m: Machine, name: str = "shop", mode: str = "a", port: int = 18000) -> str:
    return m.file(
        f"{name}.yaml",
        SMALL.format(
            name=name,
            bridge=f"br-{name}"[:15],
            subnet=f"10.{60 + sum(map(ord, name)) % 100}.0.0/24",
            mode=mode,
            port=port,
            port_end=port + 1,
        ),
    )


def test_up_down_up_cycles_leave_nothing(machine: Machine) -> None:
    path = small(machine)
    for _ in range(3):
        out = machine.np("up", "-f", path).stdout
        assert "started app2" in out
        hosts = machine.hosts()
        assert sorted(hosts) == ["app1", "app2", "db"]
        assert all(h["state"] == "running" for h in hosts.values())
        # the link variable and the published port, seen from outside netplumb
        env = machine.np("exec", "app1", "--", "sh", "-c", "echo $DB_PORT_7000_TCP_ADDR").stdout
        assert env.strip() == str(hosts["db"]["addresses"][0]).split("/")[0]
        page = machine.sh(
            "curl -s -m 5 --retry 10 --retry-connrefused --retry-delay 1 -o /dev/null "
            "-w '%{http_code}' http://127.0.0.1:18001/"
        )
        assert page == "200"
        assert "br-shop" in machine.links()
        assert len(machine.nft_rules()) == 4  # two ports, IPv4 and IPv6 each
        machine.np("down", "-f", path)
        machine.assert_empty()


def test_a_second_up_changes_nothing_and_an_edit_replaces_only_what_differs(
    machine: Machine,
) -> None:
    path = small(machine)
    machine.np("up", "-f", path)
    pids = {n: h["pid"] for n, h in machine.hosts().items()}
    again = machine.np("up", "-f", path).stdout
    assert "nothing to do: everything is up to date" in again
    assert {n: h["pid"] for n, h in machine.hosts().items()} == pids
    dry = machine.np("up", "-f", small(machine, mode="b"), "--dry-run").stdout
    assert "remove app2 (changed)" in dry and "start app1 (host)" in dry
    assert "keep db (up to date)" in dry and "remove db" not in dry
    assert {n: h["pid"] for n, h in machine.hosts().items()} == pids  # a dry run changes nothing
    machine.np("up", "-f", path)
    after = {n: h["pid"] for n, h in machine.hosts().items()}
    assert after["db"] == pids["db"]
    assert after["app1"] != pids["app1"] and after["app2"] != pids["app2"]
    machine.np("down", "-f", path)
    machine.assert_empty()


def test_a_failed_up_removes_what_it_created_and_says_what_failed(machine: Machine) -> None:
    path = machine.file(
        "broken.yaml",
        """
        name: broken
        networks:
          side:
            subnet: 10.71.0.0/24
        services:
          first:
            command: sleep infinity
            ports: ["18100:80"]
          second:
            command: /nonexistent/command --flag
            networks: [netplumb, side]
            depends_on: [first]
        """,
    )
    failed = machine.np("up", "-f", path, check=False)
    assert failed.returncode != 0
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        "netplumb: up failed at 'start second (host)': cannot start host second: "
        "/nonexistent/command: No such file or directory; removed what this up had created"
    )
    machine.assert_empty()
    assert machine.records("networks") in ([], ["netplumb"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "netplumb: cannot read {path}: No such file or directory"),
        (
            "services:\n  web:\n    command: sleep 1\n    ports: [abc]\n",
            "netplumb: {path}:4: services.web.ports[0]: invalid port spec: abc",
        ),
    ],
)
def test_bad_files_get_one_line_and_change_nothing(
    machine: Machine, text: str | None, message: str
) -> None:
    path = str(machine.tmp / "bad.yaml")
    if text is not None:
        Path(path).write_text(text)
    for verb in (["up", "-f", path], ["up", "-f", path, "--dry-run"]):
        proc = machine.np(*verb, check=False)
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines()[0].startswith(message.format(path=path)[:40])
        assert len(proc.stderr.strip().splitlines()) == 1
    machine.assert_empty()


def test_kill_9_at_random_points_then_down_or_gc_leaves_nothing(machine: Machine) -> None:
    rng = random.Random(5)
    path = small(machine)
    for i in range(8):
        proc = machine.popen("up", "-f", path)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if i % 2:
            machine.np("gc")
            # gc leaves nothing dangling: every host left runs whole, every holder has a host
            hosts = machine.hosts()
            assert all(h["state"] == "running" for h in hosts.values()), hosts
            holders = [p for p in machine.processes() if p.startswith("netplumb-hold")]
            assert len(holders) == len(hosts)
        machine.np("down", "-f", path)
        machine.assert_empty()


def test_16_parallel_ups_on_one_network_never_share_an_address(machine: Machine) -> None:
    shared = """
        name: {name}
        networks:
          shared:
            bridge: br-shared
            subnet: 10.72.0.0/24
        services:
          {name}-a:
            command: sleep infinity
            networks: [shared]
          {name}-b:
            command: sleep infinity
            networks: [shared]
    """
    files = [machine.file(f"p{i}.yaml", shared.format(name=f"p{i}")) for i in range(16)]
    procs = [machine.popen("up", "-f", f) for f in files]
    assert [p.wait(timeout=300) for p in procs] == [0] * 16
    hosts = machine.hosts()
    assert len(hosts) == 32
    addresses = [a for h in hosts.values() for a in h["addresses"] if str(a).startswith("10.72.")]
    assert len(addresses) == 32
    assert len(set(addresses)) == 32, sorted(addresses)
    # and the kernel agrees: 32 distinct addresses on 32 interfaces behind br-shared
    assert machine.links().count("br-shared") == 1
    procs = [machine.popen("down", "-f", f) for f in files]
    assert [p.wait(timeout=300) for p in procs] == [0] * 16
    machine.assert_empty()
    assert "br-shared" not in machine.links()


def test_down_without_the_file_and_twice(machine: Machine) -> None:
    path = small(machine, name="gone")
    machine.np("up", "-f", path)
    os.unlink(path)
    missing = machine.np("down", "-f", path, check=False)
    assert missing.returncode != 0
    assert missing.stderr.strip() == (
        f"netplumb: cannot read {path}: No such file (or name it: down -p NAME)"
    )
    machine.np("down", "-p", "gone")
    machine.assert_empty()
    again = machine.np("down", "-p", "gone").stdout
    assert "nothing to do: project gone has nothing up" in again


def test_docker_services_get_links_ports_and_extra_interfaces(machine: Machine) -> None:
    tag = secrets.token_hex(2)
    web = f"npt-web{tag}"
    path = machine.file(
        "mixed.yaml",
        f"""
        name: npt-mixed{tag}
        networks:
          side:
            bridge: br-side{tag}
            subnet: 10.73.0.0/24
        services:
          {web}:
            runtime: docker
            image: {BUSYBOX}
            command: httpd -f -p 80 -h /etc
            expose: [80]
            ports: ["18200:80"]
            interfaces:
              - host_if: br-side{tag}
                address: 10.73.0.20/24
          client:
            command: sleep infinity
            links: ["{web}:www"]
            depends_on:
              {web}:
                condition: tcp:80
        """,
    )
    machine.lab.container(web)  # netplumb's to remove: this only if a failure left it
    try:
        machine.np("up", "-f", path)
        env = machine.np("exec", "client", "--", "sh", "-c", "echo $WWW_PORT_80_TCP").stdout
        assert env.strip().startswith("tcp://10.89.0.")
        hosts_file = machine.np("exec", "client", "--", "cat", "/etc/hosts").stdout
        assert f"www {web}" in hosts_file
        assert machine.sh("curl -s -m 5 http://127.0.0.1:18200/hostname").strip() == web
        assert machine.sh("curl -s -m 5 http://10.73.0.20/hostname").strip() == web
        inside = subprocess.run(
            ["docker", "exec", web, "ip", "-o", "-4", "addr"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "10.73.0.20/24" in inside
        assert machine.np("port", web).stdout.splitlines()[0] == "80/tcp -> 0.0.0.0:18200"
        rows = machine.hosts()
        assert rows[web]["state"] == "running"
        assert "10.73.0.20/24" in rows[web]["addresses"]
        assert rows[web]["command"] == f"[docker {BUSYBOX}] httpd -f -p 80 -h /etc"
        assert machine.np("logs", web).returncode == 0
        svg = machine.np("graph").stdout
        assert f">{web}<" in svg and "10.73.0.20" in svg and "80/tcp &lt;- :18200" in svg
        second = machine.np("up", "-f", path).stdout
        assert "nothing to do" in second
    finally:
        machine.np("down", "-f", path, check=False)
    gone = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{web}$", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert gone.strip() == ""
    machine.assert_empty()


def test_a_name_taken_by_another_host_is_refused_and_that_host_kept(machine: Machine) -> None:
    machine.np("run", "--name", "db", "--", "sleep", "infinity")
    before = machine.hosts()["db"]["pid"]
    path = small(machine)
    failed = machine.np("up", "-f", path, check=False)
    assert failed.returncode != 0
    assert failed.stderr.strip() == (
        'netplumb: Conflict. The name "db" is already in use by another command (host): '
        "remove it first or rename the service"
    )
    assert machine.hosts()["db"]["pid"] == before
    assert sorted(machine.hosts()) == ["db"]
    down = machine.np("down", "-f", path).stdout  # nothing of the project: db is not its own
    assert "nothing to do" in down
    assert machine.hosts()["db"]["state"] == "running"
    machine.np("rm", "-f", "db")
    machine.assert_empty()


def test_bash_completion_offers_the_projects_guests(machine: Machine) -> None:
    machine.np("up", "-f", small(machine))
    script = machine.np("completion", "bash").stdout
    bin_dir = str(Path(NETPLUMB).parent)
    probe = (
        f'export PATH="{bin_dir}:$PATH"; {script}\n'
        'COMP_WORDS=(netplumb logs ap); COMP_CWORD=2; _netplumb; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(netplumb network rm ""); COMP_CWORD=3; _netplumb; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(netplumb down -p ""); COMP_CWORD=3; _netplumb; echo "${COMPREPLY[*]}"\n'
    )
    out = subprocess.run(
        ["ip", "netns", "exec", machine.ns, "bash", "-c", probe],
        env=machine.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out == ["app1 app2", "back netplumb", "shop"]
    machine.np("down", "-p", "shop")
    machine.assert_empty()


def test_ps_shows_commands_quoted_and_literal_and_run_finds_netplumbs_commands(
    machine: Machine,
) -> None:
    machine.np(
        "run", "--name", "odd", "--network", "none", "--", "sh", "-c", "echo [/bold]; sleep 100"
    )
    machine.np("run", "--name", "svc", "--network", "none", "--", "birthdays", "--help")
    table = machine.np("ps").stdout
    assert "sh -c 'echo [/bold]; sleep 100'" in table  # rich markup is not interpreted
    assert json.loads(machine.np("ps", "--json").stdout)[0]["command"] == (
        "sh -c 'echo [/bold]; sleep 100'"
    )
    assert "usage: birthdays" in machine.np("logs", "svc").stdout  # found on the host's PATH
    machine.np("rm", "-f", "odd", "svc")
    machine.assert_empty()
