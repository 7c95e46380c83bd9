"""Test-run rules: kernel tests need root, under CI nothing may skip, a leak check closes the run.

- Tests marked ``kernel`` skip unless run as root, tests marked ``docker`` unless a Docker Engine
  answers. Under CI (``CI`` set, as ``.ci/run`` runs) a skipped test is turned into a failure
  ("skipped under CI: <reason>") and so is an ``xfail``: kernel and Docker tests must run here.
- After a run as root that ran kernel or Docker tests, a leak check lists what netplumb or the
  tests left behind and fails the run: test namespaces (``npt-*``), netplumb host records in
  ``/run/netplumb/*/hosts``, links marked ``netplumb:`` in this namespace, netplumb nftables
  tables, holder processes, CNI agents, test containers. What was there before the run is left
  out (it is not this run's leak), compared by what it is, not by pid or veth name: the
  README's demo, up before the run and brought up again by its test, is not a leak. Nothing
  is deleted: the check only reports. Test objects there before the run (``npt-`` namespaces
  and containers: a run killed before its cleanup left them) are listed apart, without failing.
- The one lab helper (namespaces, netplumb's state, commands, processes, cleanup) is
  ``lab.py``; the fixtures ``netns`` and ``busybox_container`` live in ``netns_helpers.py``.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

pytest_plugins = ["netns_helpers"]
# imported below, before pytest_plugins is read
pytest.register_assert_rewrite("lab", "netns_helpers")

from leaks import earlier_test_objects  # noqa: E402
from netns_helpers import docker_reachable, is_root  # noqa: E402

_LEAKS_BEFORE = pytest.StashKey[dict[str, str]]()
_LEAKS = pytest.StashKey[list[str]]()
_CI_SKIPS = pytest.StashKey[list[str]]()
_RAN_KERNEL = pytest.StashKey[bool]()
_DOCKER_UP = pytest.StashKey[bool]()


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _skip_reason(longrepr: object) -> str:
    # A skip's longrepr is (path, lineno, "Skipped: reason").
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr
    return str(text).removeprefix("Skipped: ")


def _needs_kernel(item: pytest.Item) -> bool:
    return any(m.name in ("kernel", "docker") for m in item.iter_markers())


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_CI_SKIPS] = []
    config.stash[_RAN_KERNEL] = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    marks = {m.name for m in item.iter_markers()}
    if _needs_kernel(item):
        item.config.stash[_RAN_KERNEL] = True
    if "kernel" in marks and not is_root():
        pytest.skip("needs root (kernel test)")
    if "docker" in marks:
        if _DOCKER_UP not in item.config.stash:
            item.config.stash[_DOCKER_UP] = docker_reachable()
        if not item.config.stash[_DOCKER_UP]:
            pytest.skip("Docker Engine not reachable (make test starts it)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not _under_ci():
        return report
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        # xfail (and xpass) would be a way round the rule below: not allowed either.
        report.outcome = "failed"
        report.longrepr = f"xfail under CI (not allowed): {wasxfail}"
        delattr(report, "wasxfail")
    elif report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI: {_skip_reason(report.longrepr)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    # A module-level skip (pytest.skip(allow_module_level=True), importorskip) happens at
    # collection, where a failed report would abort the whole run: note it, fail at the end.
    report = yield
    if _under_ci() and report.skipped:
        collector.config.stash[_CI_SKIPS].append(
            f"{report.nodeid}: {_skip_reason(report.longrepr)}"
        )
    return report


def _out(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout


def find_leaks() -> dict[str, str]:
    """What netplumb or the tests may have left on this machine, one line per object.

    Keyed by what the object is, not by its kernel name or pid: a demo that was up before the
    run and is up again after it (its hosts restarted) has new pids and veth names, and is not
    this run's leak; the line shown says which object it is now.
    """
    found: dict[str, str] = {}
    for line in _out(["ip", "netns", "list"]).splitlines():
        name = line.split(" ")[0]
        if name.startswith("npt-"):
            found[f"netns {name}"] = f"netns {name}"
    for path in glob.glob("/run/netplumb/*/hosts/*"):
        found[path] = f"netplumb host record {path}"
    links = _out(["ip", "-j", "link"])
    for link in json.loads(links) if links.strip() else []:
        alias = str(link.get("ifalias", ""))
        if alias.startswith("netplumb:"):
            # a host's veth is named after its holder's pid: the owner says which it is
            key = alias if alias.startswith("netplumb:host:") else link["ifname"]
            n = sum(1 for k in found if k.startswith(f"link {key} #"))
            found[f"link {key} #{n}"] = f"link {link['ifname']} ({alias})"
    for line in _out(["nft", "list", "tables"]).splitlines():
        if "netplumb" in line:
            found[f"nft {line.strip()}"] = f"nft {line.strip()}"
    for line in _out(
        [
            "pgrep",
            "-af",
            "netplumb-hold|netplumb-host|netplumb-dns|netplumb-test-marker"
            # CNI agents: started on demand (netplumb-cni-agent), by hand or by a test
            "|netplumb-cni-agent|netplumb cni agent|netplumb[.]cni[.]agent",
        ]
    ).splitlines():
        command = line.split(" ", 1)[-1]
        n = sum(1 for k in found if k.startswith(f"process {command} #"))
        found[f"process {command} #{n}"] = f"process {line}"
    docker = _out(["docker", "ps", "-a", "--filter", "name=^npt-", "--format", "{{.Names}}"])
    for name in docker.split():
        found[f"docker container {name}"] = f"docker container {name}"
    return found


def pytest_collection_finish(session: pytest.Session) -> None:
    # What is there before the tests run is not this run's leak (another run's, or a
    # developer's demo): the check reports only what is new.
    if is_root() and any(_needs_kernel(item) for item in session.items):
        session.config.stash[_LEAKS_BEFORE] = find_leaks()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if config.stash[_CI_SKIPS]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if (
        not is_root()
        or not config.stash[_RAN_KERNEL]
        or _LEAKS_BEFORE not in config.stash
        or hasattr(config, "workerinput")  # an xdist worker: the controller checks
    ):
        return
    before = config.stash[_LEAKS_BEFORE]
    after = find_leaks()
    leaks = sorted(line for key, line in after.items() if key not in before)
    config.stash[_LEAKS] = leaks
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    skips = config.stash[_CI_SKIPS]
    if skips:
        terminalreporter.section("skipped at collection under CI (fails the run)", red=True)
        for line in skips:
            terminalreporter.line(line)
    leaks = config.stash.get(_LEAKS, [])
    if leaks:
        terminalreporter.section("leak check: left behind by this run (fails the run)", red=True)
        for line in leaks:
            terminalreporter.line(line)
    stale = earlier_test_objects(config.stash.get(_LEAKS_BEFORE, {}))
    if stale:
        # a run killed before its cleanup (a session ended mid-run) leaves them; the next run
        # cannot tell them from a developer's, so it shows them without failing
        terminalreporter.section("test objects an earlier run left (not this run's)", yellow=True)
        for line in stale:
            terminalreporter.line(line)
