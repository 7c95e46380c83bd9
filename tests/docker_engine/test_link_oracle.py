"""Docker is the oracle for link variables.

For several EXPOSE / -e / alias configurations, the variables ``netplumb link env`` prints for a
Docker target equal those a real ``docker run --link`` gives, wherever the local engine agrees
with engine 28's rules. The one known difference: engines before 28 pick ``ALIAS_PORT`` from
another sort order (this machine's 20.10 names the udp port first), so ``ALIAS_PORT`` is checked
against the engine-28 rule instead (tests/unit pins that rule).
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from netns_helpers import busybox_image

pytestmark = pytest.mark.docker

NETPLUMB = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "netplumb")
IMAGE = "netplumb/busybox:test"

CASES = [
    ("db", ["--expose", "27017"], ["FOO=bar"]),
    ("web", ["--expose", "80", "--expose", "443", "--expose", "53/udp"], []),
    ("my-db.x", ["--expose", "5432"], ["MixedCase=Yes", "HOME=/nothome", "EMPTY="]),
    ("ranged", ["--expose", "9000-9002", "--expose", "7000/udp"], ["A=1", "B=2"]),
]


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.fixture(scope="module")
def engine() -> None:
    busybox_image()  # or a skip: no Docker Engine


@pytest.mark.parametrize(("alias", "expose", "env"), CASES)
def test_link_env_equals_dockers(
    engine: None, alias: str, expose: list[str], env: list[str]
) -> None:
    tag = secrets.token_hex(3)
    target, linker = f"npt-{tag}-t", f"npt-{tag}-l"
    env_args = [a for e in env for a in ("-e", e)]
    try:
        _docker("run", "-d", "--name", target, *expose, *env_args, IMAGE, "sleep", "600")
        seen = _docker("run", "--rm", "--name", linker, "--link", f"{target}:{alias}", IMAGE, "env")
        prefix = alias.upper().replace("-", "_") + "_"
        docker_vars = {v for v in seen.splitlines() if v.startswith(prefix)}
        ours = subprocess.run(
            [NETPLUMB, "link", "env", target, alias, "--from", linker],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert len(ours) == len(set(ours))
        assert {v for v in ours if not v.startswith(f"{prefix}PORT=")} == {
            v for v in docker_vars if not v.startswith(f"{prefix}PORT=")
        }
        # ALIAS_PORT: engine 28's rule, the lowest tcp port when any tcp port is exposed
        ip = _docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", target).strip()
        tcp = sorted(
            p
            for spec in expose[1::2]
            if "/" not in spec
            for p in range(int(spec.split("-")[0]), int(spec.split("-")[-1]) + 1)
        )
        assert ours[0] == f"{prefix}PORT=tcp://{ip}:{tcp[0]}"
    finally:
        subprocess.run(["docker", "rm", "-f", target], capture_output=True)


def test_docker_link_errors_have_dockers_words(engine: None) -> None:
    proc = subprocess.run(
        [NETPLUMB, "link", "env", "npt-nosuch", "db"], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert (
        proc.stderr
        == "netplumb: could not get container for npt-nosuch: No such container: npt-nosuch\n"
    )
    name = f"npt-{secrets.token_hex(3)}"
    try:
        _docker("create", "--name", name, IMAGE, "sleep", "1")
        proc = subprocess.run(
            [NETPLUMB, "link", "env", name, "db", "--from", "web"], capture_output=True, text=True
        )
        assert (
            proc.stderr == f"netplumb: Cannot link to a non running container: /{name} AS /web/db\n"
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
