"""The CI rules of tests/conftest.py, run on a small inner test suite with pytester.

The inner suite gets copies of tests/conftest.py and tests/netns_helpers.py, so what is tested
is the real thing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parents[1]

INNER = """
import pytest

def test_passes():
    pass

def test_skips():
    pytest.skip("no frobnicator here")

@pytest.mark.xfail(reason="known bug 12")
def test_xfails():
    assert False
"""


def copy_infra(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile(netns_helpers=(TESTS / "netns_helpers.py").read_text())
    pytester.makepyfile(leaks=(TESTS / "leaks.py").read_text())
    # the inner run imports its own copies, not the modules this session already holds
    monkeypatch.delitem(sys.modules, "netns_helpers", raising=False)
    monkeypatch.delitem(sys.modules, "leaks", raising=False)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    copy_infra(pytester, monkeypatch)
    pytester.makepyfile(test_inner=INNER)
    return pytester


def test_under_ci_a_skip_and_an_xfail_fail_the_run(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = inner.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*skipped under CI: no frobnicator here*",
            "*xfail under CI (not allowed): known bug 12*",
        ]
    )


def test_without_ci_a_skip_is_a_skip(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = inner.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_under_ci_a_module_level_skip_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_infra(pytester, monkeypatch)
    pytester.makepyfile(
        test_mod="import pytest\npytest.skip('no kernel', allow_module_level=True)\n",
        test_ok="def test_ok():\n    pass\n",
    )
    monkeypatch.setenv("CI", "1")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skipped at collection under CI*", "*test_mod.py: no kernel*"])


def test_kernel_tests_skip_without_root_and_fail_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_infra(pytester, monkeypatch)
    pytester.makeini("[pytest]\nmarkers =\n    kernel: k\n    docker: d\n")
    pytester.makepyfile(test_k="import pytest\n\n@pytest.mark.kernel\ndef test_k():\n    pass\n")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # the skip happens in setup: a setup failure is an error
    result.stdout.fnmatch_lines(["*skipped under CI: needs root (kernel test)*"])


def test_no_two_test_files_share_a_basename() -> None:
    """tests/ has no packages: pytest imports test files by basename, and a second file of the
    same name stops the whole run at collection ("import file mismatch")."""
    from collections import Counter
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    names = Counter(p.name for p in tests.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []


def test_what_an_interrupted_run_left_is_told_apart_from_the_demo() -> None:
    """Objects there before a run are not its leak; those only a test makes (``npt-`` names,
    netplumb's containers and processes of a state under pytest's temporary root) were left by
    an earlier run killed before its cleanup."""
    from leaks import earlier_test_objects

    before = {
        "netns npt-929a3e-demo": "netns npt-929a3e-demo",
        "docker container npt-991be4-t": "docker container npt-991be4-t",
        "docker container mongodb": "docker container mongodb (of /tmp/pytest-of-root/p/state)",
        "test process 4242": "process 4242 netplumb-hold (of /tmp/pytest-of-root/p/state)",
        "process netplumb-hold #0": "process 77 netplumb-hold",
        "nft table inet netplumb": "nft table inet netplumb",
        "link np0 #0": "link np0 (netplumb:network:netplumb)",
        "/run/netplumb/host/hosts/mongodb": "netplumb host record /run/netplumb/host/hosts/mongodb",
    }
    assert earlier_test_objects(before) == [
        "docker container mongodb",
        "docker container npt-991be4-t",
        "netns npt-929a3e-demo",
        "test process 4242",
    ]


def test_a_run_is_live_while_its_process_is(tmp_path: Path) -> None:
    """Markers name a process by pid and start time: a dead pid, or a pid reused by another
    process (another start time), is no live run, and its marker goes."""
    from leaks import Run

    run = Run(tmp_path)
    run.enter()
    init_started = Path("/proc/1/stat").read_text().rsplit(")", 1)[1].split()[19]
    (tmp_path / "1.aaaa").write_text(init_started)  # live
    (tmp_path / "1.bbbb").write_text(str(int(init_started) + 1))  # pid 1, but not that process
    (tmp_path / "4194304.cccc").write_text("1")  # above pid_max: dead
    (tmp_path / f"{run.pid}.dddd").write_text(run.marker.read_text())  # a run inside this one
    (tmp_path / "notes").write_text("")  # not a marker
    assert run.others() == sorted({1, run.pid})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["1.aaaa", f"{run.pid}.dddd", run.marker.name, "notes"]
    )
    run.leave()
    assert not run.marker.exists()


@pytest.mark.kernel
def test_while_another_run_is_live_an_earlier_runs_namespace_is_listed_not_removed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inner run sees this run live (its marker): the ``npt-`` namespace there before it
    may be this run's, so it is shown apart and left alone."""
    import secrets
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    copy_infra(pytester, monkeypatch)
    pytester.makeini("[pytest]\nmarkers =\n    kernel: k\n    docker: d\n")
    pytester.makepyfile(test_k="import pytest\n\n@pytest.mark.kernel\ndef test_k():\n    pass\n")
    name = f"npt-{secrets.token_hex(3)}-old"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        monkeypatch.delenv("CI", raising=False)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "*test objects an earlier run left (left alone: another test run is live (pid*",
                f"netns {name}",
            ]
        )
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert name in listed.split()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
