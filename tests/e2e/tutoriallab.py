"""Running docs/tutorial.md: its ``$ `` blocks, a throwaway machine, and the masking rule.

The tutorial shows each command in a fenced block whose first line is ``$ COMMAND``; the lines
after it, up to the next ``$ `` line or the end of the block, are what the command printed
(standard output and standard error, as a terminal shows them). A command ending in ``\\``
continues on the next line. ``parse`` reads these blocks, ``Machine.run`` runs one command as
the tutorial's reader would (``sh -c``, as root, from the repository root, with the
repository's ``.venv/bin`` first on PATH), in a network namespace playing a fresh machine, and
``compare`` says whether the output is the one shown.

The masking rule, for what varies from run to run:

- In the shown output, ``<placeholder>`` (a lowercase word or words in angle brackets, e.g.
  ``<pid>``, ``<container id>``, ``<ms>``) stands for any non-empty text within one line.
- On both sides, trailing blanks are dropped, runs of two or more spaces count as one (table
  columns widen with a PID's digits), a run of ``─`` counts as one (the rule under a table),
  and trailing empty lines are dropped.
- A block whose fence reads ```` ```console unordered ```` compares its lines in any order
  (``netplumb gc`` lists what it removed by container id, which is random).

Everything else must be equal. Addresses are not masked: netplumb leases them in order on a
fresh machine, so they are what the tutorial shows; only addresses others allocate (Docker's
``docker0``) are placeholders.

Paths: the tutorial keeps its files in ``/tmp/netplumb-tutorial`` and ``examples/birthdays.yaml``
keeps the database in ``/var/lib/netplumb-demo/db``. The test maps both to its own temporary
directory (the file through a copy of it), in the commands and back in the outputs, and gives
the tutorial's ``npt-`` Docker containers a per-run prefix (``npt-<hex>-``), also mapped back.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab import Lab, remove_containers, run

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
VENV_BIN = ROOT / ".venv" / "bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DOC_DIR = "/tmp/netplumb-tutorial"
DOC_EXAMPLE = "examples/birthdays.yaml"
DOC_DEMO_DB = "/var/lib/netplumb-demo/db"
PROJECT_CONTAINERS = ("mongodb", "webserver1", "webserver2", "webserver3")

_PLACEHOLDER = re.compile(r"<[a-z][a-z0-9 _.-]*>")
_SPACES = re.compile(r" {2,}")
_RULE = re.compile(r"─+")


@dataclass
class Step:
    """One command of the tutorial and the output it shows."""

    command: str
    expected: list[str]
    line: int
    part: str
    unordered: bool = False


@dataclass
class _Block:
    info: str
    start: int
    lines: list[str] = field(default_factory=list)


def _blocks(text: str) -> list[tuple[str, _Block]]:
    """Fenced blocks, each with the last ``## `` heading above it."""
    out: list[tuple[str, _Block]] = []
    heading = ""
    block: _Block | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if block is None:
            if line.startswith("## "):
                heading = line[3:].strip()
            elif line.startswith("```"):
                block = _Block(line[3:].strip(), number)
        elif line.startswith("```"):
            out.append((heading, block))
            block = None
        else:
            block.lines.append(line)
    if block is not None:
        raise ValueError(f"tutorial: the block at line {block.start} is not closed")
    return out


def parse(text: str) -> list[Step]:
    """The tutorial's commands in order, with what each one shows."""
    steps: list[Step] = []
    for heading, block in _blocks(text):
        if not block.lines or not block.lines[0].startswith("$ "):
            continue
        unordered = "unordered" in block.info.split()
        lines = iter(enumerate(block.lines, block.start + 1))
        current: Step | None = None
        for number, line in lines:
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    _, more = next(lines)
                    command = command[:-1] + "\n" + more
                current = Step(command, [], number, heading, unordered)
                steps.append(current)
            elif current is not None:
                current.expected.append(line)
    return steps


def _normal(line: str) -> str:
    return _RULE.sub("─", _SPACES.sub(" ", line.rstrip()))


def _trim(lines: list[str]) -> list[str]:
    out = [_normal(line) for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def _pattern(shown: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(shown)
    return re.compile(".+?".join(re.escape(p) for p in parts))


def compare(expected: list[str], actual: list[str], unordered: bool = False) -> bool:
    """Whether ``actual`` is the output ``expected`` shows, under the masking rule."""
    want, got = _trim(expected), _trim(actual)
    if len(want) != len(got):
        return False
    patterns = [_pattern(w) for w in want]
    if not unordered:
        return all(p.fullmatch(g) for p, g in zip(patterns, got, strict=True))
    left = list(got)
    for p in patterns:
        hit = next((g for g in left if p.fullmatch(g)), None)
        if hit is None:
            return False
        left.remove(hit)
    return True


class Machine:
    """A namespace playing a fresh machine, with netplumb's state directory of its own: a lab
    of ``tests/lab.py`` (host namespace ``npt-<hex>-tut``) that runs commands as a reader
    would."""

    def __init__(self, tmp: Path) -> None:
        self.lab = Lab(tmp, host="tut")
        with self.lab.closed_on_error():
            self._setup(tmp)

    def _setup(self, tmp: Path) -> None:
        self.tag = self.lab.id
        self.ns = self.lab.host
        self.tmp = tmp
        self.docdir = tmp / "tutorial"
        self.demo_db = tmp / "demo-db"
        example = (ROOT / DOC_EXAMPLE).read_text().replace(DOC_DEMO_DB, str(self.demo_db))
        self.example = tmp / "birthdays.yaml"
        self.example.write_text(example)
        # (as the tutorial writes it, as this run has it): longest real path first on the way back
        self.subs = [
            (DOC_DEMO_DB, str(self.demo_db)),
            (DOC_DIR, str(self.docdir)),
            (DOC_EXAMPLE, str(self.example)),
        ]
        self.env = self.lab.environ({"PATH": f"{VENV_BIN}:{SYSTEM_PATH}"})
        self.env.pop("NETPLUMB_DEFAULT_SUBNET", None)
        self.env.pop("NETPLUMB_DEFAULT_SUBNET6", None)
        self.containers: list[str] = []
        self.lab.defer("what the tutorial left", self.release)

    def to_run(self, command: str) -> str:
        for shown, real in self.subs:
            command = command.replace(shown, real)
        return re.sub(r"\bnpt-", f"npt-{self.tag}-", command)

    def to_shown(self, output: str) -> str:
        for shown, real in sorted(self.subs, key=lambda s: -len(s[1])):
            output = output.replace(real, shown)
        return output.replace(f"npt-{self.tag}-", "npt-")

    def run(self, command: str, timeout: float = 240) -> str:
        """The command's output (stdout and stderr together), as the tutorial would show it."""
        real = self.to_run(command)
        self.containers += re.findall(r"docker run .*?--name (\S+)", real)
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns, "sh", "-c", real],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return self.to_shown(proc.stdout)

    def _quiet(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return run(argv, self.ns, check=False, timeout=120, env=self.env, cwd=ROOT)

    def release(self) -> None:
        """Everything the tutorial may have left, whatever step it stopped at (the lab then
        removes any host left, kills what is left in the namespace, a dead-man timer of an
        unconfirmed ``lan bridge`` say, and deletes it)."""
        self._quiet("netplumb", "lan", "unbridge", "--force")
        self._quiet("netplumb", "down", "-p", "birthdays")
        ps = self._quiet("netplumb", "ps", "--json").stdout
        names = [str(r["name"]) for r in json.loads(ps or "[]")]
        if names:
            self._quiet("netplumb", "rm", "-f", *names)
        remove_containers(self.containers)
        self._quiet("netplumb", "gc")

    def teardown(self) -> None:
        self.lab.close()


def docker_names_free(names: tuple[str, ...], wait: float) -> list[str]:
    """Wait up to ``wait`` seconds for no Docker container to have one of these names (another
    run of the demo's tests may be using them); returns the names still taken."""
    deadline = time.monotonic() + wait
    while True:
        out = subprocess.run(
            ["docker", "ps", "-a", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        taken = sorted(set(names) & set(out))
        if not taken or time.monotonic() >= deadline:
            return taken
        time.sleep(2)


def main() -> None:
    """Print what the tutorial's commands print now (``python tests/e2e/tutoriallab.py [PART]``),
    marking each that differs from what the tutorial shows: for writing the tutorial."""
    import sys
    import tempfile

    part = sys.argv[1] if len(sys.argv) > 1 else ""
    steps = [s for s in parse(TUTORIAL.read_text()) if s.part.startswith(part)]
    with tempfile.TemporaryDirectory() as tmp:
        machine = Machine(Path(tmp))
        try:
            for step in steps:
                out = machine.run(step.command)
                same = compare(step.expected, out.splitlines(), step.unordered)
                mark = "" if same else f"!!! DIFFERS (line {step.line})\n"
                print(f"{mark}$ {step.command}")
                print(out, end="" if out.endswith("\n") or not out else "\n")
        finally:
            machine.teardown()


if __name__ == "__main__":
    main()
