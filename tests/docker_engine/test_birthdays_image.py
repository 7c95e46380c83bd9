"""The birthday service in Docker, from the locally built image netplumb/birthdays:local.

scripts/python-image.sh builds the image (debootstrap + docker import; no registry here). A
`birthdays mongo` container and a `birthdays serve` container talk to each other as the
article's two images do, and the test talks to them only through a container's address or a
port published on 127.0.0.1: the article's document is POSTed and read back byte for byte.
The deploy/docker Dockerfiles' commands are run as Docker would run them (ENTRYPOINT + CMD of
the database, the web server's shell-form CMD under /bin/sh -c with `--link ...:mongo`).
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import REMOVE
from lab import Lab as BaseLab

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "netplumb/birthdays:local"
EINSTEIN = b'{"name":"Albert Einstein","birthday":"14.03.1879"}'
LINE = b"name = Albert Einstein, birthday = 14.03.1879\n"
READY_WITHIN_S = 120  # a deadline for start-up on a loaded machine, not a measurement


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=120
    )


@pytest.fixture(scope="module")
def image() -> str:
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("Docker Engine not reachable (make test starts it)")
    # Builds the image when it is missing or out of date, else returns at once.
    subprocess.run(["bash", str(ROOT / "scripts" / "python-image.sh")], check=True, timeout=280)
    return IMAGE


class Lab(BaseLab):
    """Containers and networks named npt-<tag>-<role>, all removed at the end (a lab of
    ``tests/lab.py`` without namespaces)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, host=None)
        self.tag = self.id
        self.containers: list[str] = []

    def network(self) -> str:
        name = f"npt-{self.tag}-net"
        remove = ["network", "rm", name]
        self.defer(f"docker network {name}", lambda: _docker(*remove, check=False), REMOVE)
        _docker("network", "create", name)
        return name

    def run(self, role: str, *args: str) -> str:
        name = self.container(f"npt-{self.tag}-{role}")
        self.containers.append(name)
        _docker("run", "-d", "--name", name, *args)
        return name

    def logs(self) -> str:
        """Every container's output, for a failure's message."""
        parts = []
        for name in self.containers:
            out = _docker("logs", name, check=False)
            parts.append(f"--- {name}:\n{(out.stdout + out.stderr)[-3000:]}")
        return "\n".join(parts)


@pytest.fixture
def lab(image: str, tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path) as lab:
        yield lab


def request(
    host: str, port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def wait_ready(lab: Lab, host: str, port: int) -> None:
    """Until /readyz says the web server reaches its database (or a container has stopped)."""
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        for name in lab.containers:
            state = _docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            if state != "true":
                pytest.fail(f"container {name} stopped\n{lab.logs()}")
        try:
            if request(host, port, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"not ready within {READY_WITHIN_S} s\n{lab.logs()}")


def post_and_get_einstein(host: str, port: int) -> None:
    status, headers, body = request(host, port, "POST", "/", EINSTEIN)
    assert (status, body) == (201, b"")
    assert re.fullmatch(r"/[0-9a-f]{24}", headers["location"])
    status, _, listing = request(host, port, "GET", "/")
    assert (status, listing) == (200, LINE)
    status, _, one = request(host, port, "GET", headers["location"])
    assert status == 200
    assert json.loads(one) == {
        "id": headers["location"][1:],
        "document": {"name": "Albert Einstein", "birthday": "14.03.1879"},
    }


def ip_on(container: str, network: str) -> str:
    fmt = '{{(index .NetworkSettings.Networks "' + network + '").IPAddress}}'
    address = _docker("inspect", "-f", fmt, container).stdout.strip()
    assert address, f"{container} has no address on {network}"
    return address


def test_building_again_changes_nothing(image: str) -> None:
    before = _docker("image", "inspect", "-f", "{{.Id}}", image).stdout
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "python-image.sh")], capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert _docker("image", "inspect", "-f", "{{.Id}}", image).stdout == before


def test_serve_and_mongo_on_a_user_defined_network(lab: Lab) -> None:
    net = lab.network()
    mongo = ["birthdays", "mongo", "--host", "0.0.0.0", "--port", "27017", "--data", "/data"]
    db = lab.run("db", "--network", net, IMAGE, *mongo)
    db_ip = ip_on(db, net)
    web = lab.run("web", "--network", net, IMAGE, "birthdays", "serve", "8080", db_ip, "27017")
    web_ip = ip_on(web, net)
    wait_ready(lab, web_ip, 8080)
    post_and_get_einstein(web_ip, 8080)
    # What a person debugging a container finds on PATH: the service, Python, sh and ip.
    look = "for c in birthdays python3 sh ip; do command -v $c; done; ip -4 -o addr show eth0"
    found = _docker("exec", web, "sh", "-c", look).stdout.splitlines()
    assert found[:4] == [
        "/opt/birthdays/bin/birthdays",
        "/opt/birthdays/bin/python3",
        "/usr/bin/sh",
        "/usr/sbin/ip",
    ]
    assert f" {web_ip}/" in found[4]


def dockerfile(name: str) -> dict[str, str]:
    """The instructions of deploy/docker/NAME.Dockerfile (continuation lines joined)."""
    text = (ROOT / "deploy" / "docker" / f"{name}.Dockerfile").read_text()
    steps: dict[str, str] = {}
    for line in text.replace("\\\n", " ").splitlines():
        if line.strip() and not line.startswith("#"):
            op, _, args = line.partition(" ")
            steps[op] = args.strip()
    return steps


def test_the_deploy_dockerfiles_commands_with_a_link(lab: Lab) -> None:
    database, webserver = dockerfile("database"), dockerfile("webserver")
    entrypoint, cmd = json.loads(database["ENTRYPOINT"]), json.loads(database["CMD"])
    shell_cmd = webserver["CMD"]
    assert not shell_cmd.startswith("[")  # the shell form: only it expands the link variables
    exposed = ["--expose", database["EXPOSE"]]
    db = lab.run("mongo", *exposed, "--entrypoint", entrypoint[0], IMAGE, *entrypoint[1:], *cmd)
    link = ["--link", f"{db}:mongo", "-p", f"127.0.0.1::{webserver['EXPOSE']}"]
    web = lab.run("web", *link, IMAGE, "/bin/sh", "-c", shell_cmd)
    published = _docker("port", web, f"{webserver['EXPOSE']}/tcp").stdout.split()[0]
    host, port = published.rsplit(":", 1)
    assert host == "127.0.0.1"
    wait_ready(lab, host, int(port))
    post_and_get_einstein(host, int(port))
    # The shell expanded the link variables into the article's positional arguments ...
    db_ip = ip_on(db, "bridge")
    out = _docker("logs", web)
    logs = out.stdout + out.stderr
    assert f"database mongodb://{db_ip}:27017/ (from arguments)" in logs
    # ... and exec made the service PID 1, so docker stop's SIGTERM reaches it: it exits 0.
    pid1 = _docker("exec", web, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert pid1[1:4] == ["/opt/birthdays/bin/birthdays", "serve", "8080"]
    _docker("stop", "-t", "30", web)
    assert _docker("inspect", "-f", "{{.State.ExitCode}}", web).stdout.strip() == "0"
