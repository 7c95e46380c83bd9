"""Published-port throughput: netplumb's kernel DNAT vs the direct path vs Docker's -p.

Side by side in one run on this machine:
  direct            client -> guest address (no translation), netplumb's network
  netplumb -p       client -> 127.0.0.1:PORT, DNAT in netplumb's nftables table
  docker -p         client -> 127.0.0.1:PORT of `docker run -p` (default userland proxy)
  loopback          client -> a server on the client's own loopback (the ceiling)
Each with iperf3 (TCP Gbit/s) and wrk (HTTP requests/s and latency percentiles against
busybox httpd serving a small file). Also the time to publish and unpublish many ports: in
process one call (one kernel transaction) each, the first and the last 100 apart, and all in
one call; and one `netplumb publish` command (one process) each.

netplumb's side runs in a throwaway "machine" namespace; Docker's in the machine's own, as
Docker always does. Usage: .venv/bin/python bench/ports.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")
IMAGE = "netplumb/busybox:test"


def run(
    *argv: str,
    ns: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> str:
    cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, check=check, timeout=timeout
    ).stdout


def iperf(ns: str | None, host: str, port: int, seconds: int) -> float:
    out = run(
        "iperf3", "-c", host, "-p", str(port), "-t", str(seconds), "-J", ns=ns, timeout=seconds + 30
    )
    data = json.loads(out)
    if "error" in data:
        raise SystemExit(f"iperf3 to {host}:{port}: {data['error']}")
    end = data["end"]
    bps = (end.get("sum_received") or end.get("sum") or {})["bits_per_second"]
    return float(bps) / 1e9


def wrk(ns: str | None, url: str, seconds: int, conns: int) -> dict[str, float]:
    out = run(
        "wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", url, ns=ns, timeout=seconds + 30
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99")}


def wait_port(ns: str | None, host: str, port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [*(["ip", "netns", "exec", ns] if ns else []), "nc", "-z", "-w", "1", host, str(port)],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {host}:{port}")


def measure(
    ns: str | None, host: str, iperf_port: int, http_port: int, seconds: int, conns: int
) -> dict[str, float]:
    wait_port(ns, host, iperf_port)
    wait_port(ns, host, http_port)
    result = {"iperf_gbps": iperf(ns, host, iperf_port, seconds)}
    result.update(wrk(ns, f"http://{host}:{http_port}/index.html", seconds, conns))
    return result


def publish_timing(ns: str, env: dict[str, str], count: int) -> dict[str, float]:
    """Publish and unpublish ``count`` ports of one host, in-process: one call (one kernel
    transaction) each, then all in one call. The first and the last 100 one-call publishes are
    timed apart: a publication must cost the same whatever already exists."""
    code = f"""
import time, json
from netplumb.ops import ports
specs = [f"{{p}}:80" for p in range(20000, 20000 + {count})]
each = []
for s in specs:
    t = time.perf_counter()
    ports.publish("host:srv", "srv", [s])
    each.append(time.perf_counter() - t)
t = time.perf_counter()
for s in specs:
    ports.unpublish("host:srv", [s])
each_unpub = time.perf_counter() - t
t = time.perf_counter()
ports.publish("host:srv", "srv", specs)
batch_pub = time.perf_counter() - t
t = time.perf_counter()
ports.unpublish("host:srv", specs)
batch_unpub = time.perf_counter() - t
print(json.dumps(dict(each_publish_s=sum(each), each_unpublish_s=each_unpub,
                      first100_publish_s=sum(each[:100]), last100_publish_s=sum(each[-100:]),
                      publishes_per_s=len(each) / sum(each),
                      batched_publish_s=batch_pub, batched_unpublish_s=batch_unpub)))
"""
    timing: dict[str, float] = json.loads(
        run(str(VENV / "python"), "-c", code, ns=ns, env=env, timeout=1800)
    )
    return timing


def command_timing(ns: str, env: dict[str, str], count: int) -> dict[str, float]:
    """``netplumb publish srv PORT:80``, one command (one process) per port, ``count`` of them,
    then ``netplumb unpublish`` the same way: what a script publishing ports one by one pays,
    process start included. A driver in the namespace starts the commands (``ip netns exec``
    per command would be timed too)."""
    code = f"""
import json, statistics, subprocess, time
np = {str(VENV / "netplumb")!r}
py = {str(VENV / "python3")!r}
each = []
floor = []
for i, p in enumerate(range(21000, 21000 + {count})):
    t = time.perf_counter()
    subprocess.run([np, "publish", "srv", f"{{p}}:80"], check=True, stdout=subprocess.DEVNULL)
    each.append(time.perf_counter() - t)
    if i % 10 == 0:  # the floor, measured alongside: an interpreter that does nothing
        t = time.perf_counter()
        subprocess.run([py, "-S", "-c", "pass"], check=True)
        floor.append(time.perf_counter() - t)
t = time.perf_counter()
for p in range(21000, 21000 + {count}):
    subprocess.run([np, "unpublish", "srv", f"{{p}}:80"], check=True)
unpub = time.perf_counter() - t
print(json.dumps(dict(command_publish_s=sum(each), command_unpublish_s=unpub,
                      command_first100_s=sum(each[:100]), command_last100_s=sum(each[-100:]),
                      command_median_ms=1000 * statistics.median(each),
                      python_floor_median_ms=1000 * statistics.median(floor))))
"""
    timing: dict[str, float] = json.loads(
        run(str(VENV / "python"), "-c", code, ns=ns, env=env, timeout=3600)
    )
    return timing


def publish_targets(timing: dict[str, float], count: int) -> dict[str, dict[str, float]]:
    """Issue 13's targets: 1,000 commands <= 20 s (scaled to ``count``), the last 100 no slower
    than 1.2x the first 100, >= 1,000 publishes/s in-process."""
    total = timing["command_publish_s"]
    ratio = timing["command_last100_s"] / timing["command_first100_s"]
    rate = timing["publishes_per_s"]
    limit_s = 20.0 * count / 1000
    return {
        f"command_total_s ({count})": {"value": total, "limit": limit_s, "met": total <= limit_s},
        "command_last100_over_first100": {"value": ratio, "limit": 1.2, "met": ratio <= 1.2},
        "in_process_publishes_per_s": {"value": rate, "limit": 1000, "met": rate >= 1000},
    }


def leftovers(tmp: str) -> list[str]:
    """Processes of this run still alive after its cleanup: anything serving its www folder
    (every server this benchmark starts is given it) or its iperf3 ports."""
    out = subprocess.run(
        ["pgrep", "-af", f"{tmp}|iperf3 -s -p [123]5201"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 100 ports")
    args = parser.parse_args()
    seconds, count = (3, 100) if args.quick else (8, 1000)
    for tool in ("iperf3", "wrk", "docker", "busybox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make setup` (and `make services`)")
    tag = secrets.token_hex(2)
    machine = f"npb-{tag}-ports"
    tmp = Path(tempfile.mkdtemp(prefix="npbports-"))
    www = tmp / "www"
    www.mkdir()
    (www / "index.html").write_text("name = Albert Einstein, birthday = 14.03.1879\n" * 4)
    os.chmod(tmp, 0o755)
    env = {**os.environ, "NETPLUMB_STATE_DIR": str(tmp / "state")}
    container = f"npb-{tag}"
    results: dict[str, dict[str, float]] = {}
    try:
        run("ip", "netns", "add", machine)
        run("ip", "link", "set", "lo", "up", ns=machine)
        np = str(VENV / "netplumb")
        run(
            np,
            "run",
            "--name",
            "srv",
            "-p",
            "127.0.0.1:15201:5201",
            "-p",
            "127.0.0.1:18080:8080",
            "--",
            "sh",
            "-c",
            f"iperf3 -s -p 5201 & busybox httpd -f -p 8080 -h {www} & wait",
            ns=machine,
            env=env,
        )
        srv_ip = json.loads(run(np, "ps", "--json", ns=machine, env=env))[0]["addresses"][0]
        srv_ip = srv_ip.split("/")[0]
        # Docker: the same servers in a container, host binaries mounted read-only
        subprocess.run(["bash", str(ROOT / "scripts" / "busybox-image.sh")], check=True)
        run(
            "docker",
            "run",
            "-d",
            "--name",
            container,
            "--tmpfs",
            "/tmp",  # iperf3 keeps its stream buffer in a temporary file
            "-p",
            "127.0.0.1:25201:5201",
            "-p",
            "127.0.0.1:28080:8080",
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/lib:/lib:ro",  # Debian's /lib and /lib64 are links into /usr: the loader
            "-v",
            "/lib64:/lib64:ro",
            "-v",
            f"{www}:/www:ro",
            IMAGE,
            "sh",
            "-c",
            "/usr/bin/iperf3 -s -p 5201 & httpd -f -p 8080 -h /www & wait",
        )
        # the ceiling: both ends on the machine namespace's own loopback
        loop = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                machine,
                "sh",
                "-c",
                f"iperf3 -s -p 35201 & busybox httpd -f -p 38080 -h {www} & wait",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # its own process group: the servers sh starts in the background are killed with
            # it (killing sh alone left busybox httpd running, its parent pid 1)
            start_new_session=True,
        )
        try:
            for conns in (10, 50):
                results[f"direct c{conns}"] = measure(machine, srv_ip, 5201, 8080, seconds, conns)
                results[f"netplumb -p c{conns}"] = measure(
                    machine, "127.0.0.1", 15201, 18080, seconds, conns
                )
                results[f"docker -p c{conns}"] = measure(
                    None, "127.0.0.1", 25201, 28080, seconds, conns
                )
                results[f"loopback c{conns}"] = measure(
                    machine, "127.0.0.1", 35201, 38080, seconds, conns
                )
        finally:
            os.killpg(loop.pid, signal.SIGKILL)
            loop.wait()
        timing = publish_timing(machine, env, count)
        timing.update(command_timing(machine, env, count))
    finally:
        subprocess.run(
            ["ip", "netns", "exec", machine, str(VENV / "netplumb"), "rm", "-f", "srv"],
            env=env,
            capture_output=True,
            check=False,
        )
        subprocess.run(
            ["ip", "netns", "exec", machine, "pkill", "-f", "iperf3 -s -p 35201"],
            capture_output=True,
            check=False,
        )
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", machine], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    left = leftovers(str(tmp))
    if left:  # a benchmark cleans up as a test does: what it started must be gone
        print(f"ports.py: left running: {'; '.join(left)}", file=sys.stderr)
        return 1

    print(
        f"published-port throughput, {seconds} s per figure, {os.cpu_count()} CPUs, "
        f"kernel {platform.release()}"
    )
    print(
        f"{'path':18} {'iperf3 Gbit/s':>14} {'wrk req/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'rps vs direct':>14}"
    )
    for conns in (10, 50):
        direct = results[f"direct c{conns}"]
        for side in ("direct", "netplumb -p", "docker -p", "loopback"):
            r = results[f"{side} c{conns}"]
            print(
                f"{side + f' c{conns}':18} {r['iperf_gbps']:14.2f} {r['rps']:10.0f} "
                f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rps'] / direct['rps']:14.2f}"
            )
    ratios = {
        f"c{c}": {
            "netplumb_vs_direct_gbps": results[f"netplumb -p c{c}"]["iperf_gbps"]
            / results[f"direct c{c}"]["iperf_gbps"],
            "netplumb_vs_direct_rps": results[f"netplumb -p c{c}"]["rps"]
            / results[f"direct c{c}"]["rps"],
            "netplumb_vs_docker_gbps": results[f"netplumb -p c{c}"]["iperf_gbps"]
            / results[f"docker -p c{c}"]["iperf_gbps"],
            "netplumb_vs_docker_rps": results[f"netplumb -p c{c}"]["rps"]
            / results[f"docker -p c{c}"]["rps"],
        }
        for c in (10, 50)
    }
    print("ratios:", json.dumps(ratios, indent=1))
    print(
        f"publish {count} ports one transaction each: {timing['each_publish_s']:.2f} s "
        f"({timing['publishes_per_s']:.0f}/s; first 100 {timing['first100_publish_s']:.3f} s, "
        f"last 100 {timing['last100_publish_s']:.3f} s), "
        f"unpublish: {timing['each_unpublish_s']:.2f} s; batched: publish "
        f"{timing['batched_publish_s']:.3f} s, unpublish {timing['batched_unpublish_s']:.3f} s"
    )
    print(
        f"publish {count} ports one `netplumb publish` command each: "
        f"{timing['command_publish_s']:.2f} s (first 100 {timing['command_first100_s']:.2f} s, "
        f"last 100 {timing['command_last100_s']:.2f} s; median "
        f"{timing['command_median_ms']:.1f} ms a command, `python -S -c pass` "
        f"{timing['python_floor_median_ms']:.1f} ms), "
        f"unpublish: {timing['command_unpublish_s']:.2f} s"
    )
    targets = publish_targets(timing, count)
    print(
        "targets (issue 13): "
        + ", ".join(
            f"{k} {t['value']:.2f} (limit {t['limit']}: {'met' if t['met'] else 'MISSED'})"
            for k, t in targets.items()
        )
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ports.json").write_text(
        json.dumps(
            {
                "benchmark": "ports",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "seconds": seconds,
                "results": results,
                "ratios": ratios,
                "publish_timing": {**timing, "ports": count},
                "publish_targets": targets,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
