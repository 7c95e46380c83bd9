"""The demo's steps: each command shown as the article shows one, and bounded in time.

Every step has a bound: a command's own timeout (curl ``-m``, netplumb's readiness waits) and,
around it, the demo's. A step that fails or takes longer stops the demo with one line that
names the step and what did not answer (exit status 1), never a hang.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time

from netplumb.errors import NetplumbError

STEP_TIMEOUT = 180.0  # `up` of the whole system, cold, under load: well below it
CURL_TIMEOUT = "10"  # one HTTP request to a ready service: milliseconds


def show(
    argv: list[str], *, check: bool = True, quiet: bool = False, timeout: float = STEP_TIMEOUT
) -> str:
    """Run a command the way the article shows one: the prompt line, then its output."""
    shown = " ".join(shlex.quote(a) if a != argv[0] else os.path.basename(a) for a in argv)
    print(f"> {shown}", flush=True)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise NetplumbError(
            f"demo step timed out after {timeout:g} s: {shown}: no answer"
        ) from None
    out = proc.stdout
    if out and not quiet:
        print(out, end="" if out.endswith("\n") else "\n", flush=True)
    if proc.returncode != 0 and check:
        detail = (proc.stderr or proc.stdout).strip().replace("\n", " ")
        if "curl" in argv:  # directly or through netplumb exec, which passes its status on
            detail = curl_error(proc.returncode, detail)
        raise NetplumbError(f"demo step failed: {shown}: {detail or f'exit {proc.returncode}'}")
    return out


def curl_error(code: int, detail: str) -> str:
    """curl -s says nothing: name what did not answer from its exit status."""
    known = {
        7: "connection refused or no route",
        28: f"no answer within {CURL_TIMEOUT} s (a firewall dropping packets?)",
        52: "the server closed the connection without an answer",
        56: "the connection was reset",
    }
    return known.get(code, detail or f"curl exit {code}")


def curl(*args: str) -> list[str]:
    """A curl command line of the demo: silent, and bounded."""
    return ["curl", "-s", "-m", CURL_TIMEOUT, *args]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", f"{url}/readyz"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if probe.stdout == "200":
            return
        time.sleep(0.2)
    raise NetplumbError(f"demo: {url} did not become ready in {seconds:g} s")


QUERY_TIMEOUT = 30.0  # a read-only command (ip -j, netplumb inspect/status/ps, ping -W): instant


def query(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command the demo reads (not shown), bounded like a step."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=QUERY_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        shown = " ".join(shlex.quote(a) for a in argv)
        raise NetplumbError(
            f"demo step timed out after {QUERY_TIMEOUT:g} s: {shown}: no answer"
        ) from None
