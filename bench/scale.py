"""Scale: bring up and take down N netplumb hosts, against `docker run -d -p` containers.

Each netplumb host is a process in its own namespaces on the default network, with an address
and a published port, started in one netplumb process (as `netplumb up` does, one ruleset
rewrite at the end). Sizes 10, 100 and 1,000 show how the cost grows (it must stay linear);
100 Docker containers of the busybox image with a published port each are the peer.

Usage: .venv/bin/python bench/scale.py [--quick]   (quick: 10 and 100 hosts, 20 containers)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = str(ROOT / ".venv" / "bin" / "python")
RESULTS = ROOT / "bench" / "results"
IMAGE = "netplumb/busybox:test"

WORKER = """
import json, sys, time
from netplumb import containers, ports
from netplumb.hosts import runtime
n = int(sys.argv[1])
names = [f"h{i}" for i in range(n)]
t = time.perf_counter()
with ports.batch():
    for i, name in enumerate(names):
        containers.run(name, ["sleep", "3600"], publish=[f"{20000 + i}:80"], refresh_links=False)
up = time.perf_counter() - t
rules = ports.reconcile_if_drifted()
t = time.perf_counter()
with ports.batch():
    for name in names:
        runtime.remove(name, force=True)
down = time.perf_counter() - t
print(json.dumps({"n": n, "up_s": up, "down_s": down, "drift_after_up": rules}))
"""


def netplumb_side(n: int) -> dict[str, float]:
    ns = f"npb-{secrets.token_hex(2)}-scale"
    tmp = Path(tempfile.mkdtemp(prefix="npbscale-"))
    env = {**os.environ, "NETPLUMB_STATE_DIR": str(tmp / "state")}
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        out = subprocess.run(
            ["ip", "netns", "exec", ns, VENV_PY, "-c", WORKER, str(n)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        ).stdout
        result: dict[str, float] = json.loads(out)
        return result
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def docker_side(n: int) -> dict[str, float]:
    subprocess.run(["bash", str(ROOT / "scripts" / "busybox-image.sh")], check=True)
    tag = secrets.token_hex(2)
    names = [f"npb-{tag}-{i}" for i in range(n)]
    t = time.perf_counter()
    try:
        for i, name in enumerate(names):
            subprocess.run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    name,
                    "-p",
                    f"{30000 + i}:80",
                    IMAGE,
                    "sleep",
                    "3600",
                ],
                capture_output=True,
                check=True,
            )
        up = time.perf_counter() - t
    finally:
        t = time.perf_counter()
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        down = time.perf_counter() - t
    return {"n": n, "up_s": up, "down_s": down}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes, docker_n = ((10, 100), 20) if args.quick else ((10, 100, 1000), 100)
    rows = {f"netplumb {n}": netplumb_side(n) for n in sizes}
    rows[f"docker {docker_n}"] = docker_side(docker_n)
    print(f"scale, {os.cpu_count()} CPUs, kernel {platform.release()}")
    print(f"{'side':16} {'up s':>8} {'down s':>8} {'up ms/host':>11} {'down ms/host':>13}")
    for name, r in rows.items():
        print(
            f"{name:16} {r['up_s']:8.2f} {r['down_s']:8.2f} {1000 * r['up_s'] / r['n']:11.1f} "
            f"{1000 * r['down_s'] / r['n']:13.1f}"
        )
    d = rows[f"docker {docker_n}"]
    n100 = rows["netplumb 100"]
    ratio_up = (d["up_s"] / d["n"]) / (n100["up_s"] / n100["n"])
    ratio_down = (d["down_s"] / d["n"]) / (n100["down_s"] / n100["n"])
    small, big = rows[f"netplumb {sizes[0]}"], rows[f"netplumb {sizes[-1]}"]
    growth = (big["up_s"] / big["n"]) / (small["up_s"] / small["n"])
    print(
        f"per-host cost, Docker / netplumb (100): up {ratio_up:.1f}x, down {ratio_down:.1f}x; "
        f"netplumb per-host up cost at {sizes[-1]} vs {sizes[0]}: {growth:.2f}x"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(
        json.dumps(
            {
                "benchmark": "scale",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "rows": rows,
                "docker_over_netplumb_per_host": {"up": ratio_up, "down": ratio_down},
                "per_host_growth": growth,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
