"""Test-run rules: kernel tests need root, under CI nothing may skip, a leak check closes the run.

- Tests marked ``kernel`` skip unless run as root, tests marked ``docker`` unless a Docker Engine
  answers. Under CI (``CI`` set, as ``.ci/run`` runs) a skipped test is turned into a failure
  ("skipped under CI: <reason>") and so is an ``xfail``: kernel and Docker tests must run here.
- After a run as root that ran kernel or Docker tests, a leak check lists what netplumb or the
  tests left behind and fails the run: test namespaces (``npt-*``), netplumb host records in
  ``/run/netplumb/*/hosts``, links marked ``netplumb:`` in this namespace, netplumb nftables
  tables, holder processes, CNI agents, test containers, the socket redirection's BPF
  programs (``np_*``). What was there before the run is left
  out (it is not this run's leak), compared by what it is, not by pid or veth name: the
  README's demo, up before the run and brought up again by its test, is not a leak. Nothing
  is deleted by the check: it only reports.
- Test objects there before the run (``npt-`` namespaces and containers, netplumb's containers
  and processes of a state under pytest's temporary root: see ``leaks.py``) were left by a run
  killed before its cleanup. Each run marks itself live (``/run/netplumb-tests``); when no
  other run is live they are removed before the tests start, else only listed. The summary
  shows them apart, without failing.
- The one lab helper (namespaces, netplumb's state, commands, processes, cleanup) is
  ``lab.py``; the fixtures ``netns`` and ``busybox_container`` live in ``netns_helpers.py``.
"""

from __future__ import annotations

import os
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

from leaks import Run, earlier_test_objects, find_leaks, reclaim  # noqa: E402
from netns_helpers import docker_reachable, is_root  # noqa: E402

_LEAKS_BEFORE = pytest.StashKey[dict[str, str]]()
_LEAKS = pytest.StashKey[list[str]]()
_CI_SKIPS = pytest.StashKey[list[str]]()
_RAN_KERNEL = pytest.StashKey[bool]()
_DOCKER_UP = pytest.StashKey[bool]()
_RUN = pytest.StashKey[Run]()
_EARLIER = pytest.StashKey[tuple[str, list[str]]]()


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
    if is_root():
        run = config.stash[_RUN] = Run()
        run.enter()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RUN in config.stash:
        config.stash[_RUN].leave()


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


def pytest_collection_finish(session: pytest.Session) -> None:
    # What is there before the tests run is not this run's leak (another run's, or a
    # developer's demo): the check reports only what is new.
    if not (is_root() and any(_needs_kernel(item) for item in session.items)):
        return
    config = session.config
    before = find_leaks()
    earlier = earlier_test_objects(before)
    if earlier:
        # only a test makes them: a run killed before its cleanup left them. With no other run
        # live they are that dead run's, and one of them may hold a name a test needs (the
        # demo's `mongodb`): removed. While another run is live they may be its: listed only.
        lines = [before[key] for key in earlier]
        others = config.stash[_RUN].others()
        if others:
            pids = ", ".join(map(str, others))
            config.stash[_EARLIER] = (f"left alone: another test run is live (pid {pids})", lines)
        else:
            failed = reclaim(earlier)
            config.stash[_EARLIER] = ("removed: no other test run is live", lines + failed)
            before = find_leaks()
    config.stash[_LEAKS_BEFORE] = before


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
    if _EARLIER in config.stash:
        # a run killed before its cleanup (a session ended mid-run) left them
        what, lines = config.stash[_EARLIER]
        terminalreporter.section(f"test objects an earlier run left ({what})", yellow=True)
        for line in lines:
            terminalreporter.line(line)
