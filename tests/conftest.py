"""Test-run rules: under CI a skipped test fails the run, and a leak check closes the session.

Kernel and Docker tests need root and a Docker Engine; here they must run, not skip. The leak
check fails the run if anything of netplumb's is left after the tests: a test namespace
(``npt-*``), a link marked ``netplumb:`` in this namespace, a netplumb nftables table here, or a
netplumb holder process.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI (kernel and Docker tests must run): {reason}"


def _leaks() -> list[str]:
    found: list[str] = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith("npt-")]
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout
    for link in json.loads(links or "[]"):
        if str(link.get("ifalias", "")).startswith("netplumb:"):
            found.append(f"link {link['ifname']} ({link['ifalias']})")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found += [f"nft {line}" for line in tables.splitlines() if "netplumb" in line]
    holders = subprocess.run(
        ["pgrep", "-af", "^netplumb-hold"], capture_output=True, text=True
    ).stdout
    found += [f"process {line}" for line in holders.splitlines()]
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.geteuid() != 0 or os.environ.get("NETPLUMB_SKIP_LEAK_CHECK"):
        return
    leaks = _leaks()
    if leaks:
        print("\nleak check: netplumb left these behind:\n  " + "\n  ".join(leaks))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
