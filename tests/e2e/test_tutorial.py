"""docs/tutorial.md is true: its commands, run in order on a fresh machine, print what it shows.

Each part of the tutorial runs in a throwaway "machine" namespace of its own (``npt-<hex>-tut``)
with its own state directory, every command through ``ip netns exec NS sh -c CMD`` from the
repository root with ``.venv/bin`` first on PATH. The masking rule (``<...>`` placeholders,
blanks, unordered blocks) and the path mapping are in ``tutoriallab.py``. The test stops at the
first command whose output differs, showing both; whatever happened, everything the tutorial
made is removed (hosts, the LAN bridge, the project, the Docker containers it started, the
namespace).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from e2e.tutoriallab import (
    PROJECT_CONTAINERS,
    TUTORIAL,
    Machine,
    Step,
    compare,
    docker_names_free,
    parse,
)

pytestmark = pytest.mark.kernel

IMAGES = ("netplumb/birthdays:local", "netplumb/busybox:test")


def _steps(part: str) -> list[Step]:
    steps = [s for s in parse(TUTORIAL.read_text()) if s.part.startswith(part)]
    assert steps, f"docs/tutorial.md has no commands under a heading '## {part}...'"
    return steps


def _play(machine: Machine, steps: list[Step]) -> None:
    for step in steps:
        out = machine.run(step.command)
        if not compare(step.expected, out.splitlines(), step.unordered):
            shown = "\n".join(step.expected)
            raise AssertionError(
                f"docs/tutorial.md line {step.line}: $ {step.command}\n"
                f"--- the tutorial shows:\n{shown}\n--- the command printed:\n{out}"
            )


def test_the_tutorial_parses_into_commands_with_outputs() -> None:
    """The parser and the masking rule, on the tutorial itself and on small cases."""
    steps = parse(TUTORIAL.read_text())
    assert {s.part.split(":")[0] for s in steps} == {"Part 1", "Part 2"}
    assert all("\n" not in s.command for s in steps)
    assert compare(["a  <pid>   b", "──"], ["a 4242 b   ", "────", ""])
    assert not compare(["a <pid> b"], ["a  b"])
    assert compare(["x <id>", "y"], ["y", "x 1"], unordered=True)
    assert not compare(["x <id>", "y"], ["y", "x 1"])


@pytest.mark.timeout(900)
def test_part_1_netplumb_hosts(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    try:
        _play(machine, _steps("Part 1"))
    finally:
        machine.teardown()


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_part_2_docker_containers(tmp_path: Path) -> None:
    for image in IMAGES:
        found = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
        assert found.returncode == 0, f"image {image} missing: run `make services`"
    # examples/birthdays-docker.yaml names its containers plainly: wait while another run of the
    # demo's tests holds those names, never touch them.
    taken = docker_names_free(PROJECT_CONTAINERS, wait=300)
    assert not taken, f"Docker containers {taken} exist (not this test's): remove them first"
    machine = Machine(tmp_path)
    try:
        _play(machine, _steps("Part 2"))
    finally:
        machine.teardown()
