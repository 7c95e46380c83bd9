"""``podman run -d`` on a netplumb-cni network and on a reference bridge network, start to
running (the network is set up before the command returns): the runtime's view of
``bench/cni.py``'s plugin calls. Podman 4.3 with the CNI backend, private storage, in the
bench's host namespace; netplumb's plugin as the default install (its agent started by
Podman's first call). Run by ``bench/cni.py --podman N``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from cni import REF_DIR, np_conf, ref_conf, sh, summarize


def podman_bench(tag: str, host: str, n: int, tmp: Path, plugin_dir: Path) -> dict[str, Any]:
    """``podman run -d`` wall time on each network (container started, network set up)."""
    base = tmp / "podman"
    netd = base / "net.d"
    netd.mkdir(parents=True)
    conf = base / "containers.conf"
    conf.write_text(
        '[network]\nnetwork_backend = "cni"\n'
        f'cni_plugin_dirs = ["{plugin_dir}", "{REF_DIR}"]\n'
        f'network_config_dir = "{netd}"\n[containers]\n'
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
    )
    nets = {"netplumb": np_conf("npbpodnp", 135), "reference": ref_conf("npbpodref", 136, tmp)}
    for side, net in nets.items():
        plugin = {**net, "capabilities": {"portMappings": True}}
        (netd / f"{side}.conflist").write_text(
            json.dumps({"cniVersion": "1.0.0", "name": plugin.pop("name"), "plugins": [plugin]})
        )
    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sleep").symlink_to("busybox")
    sh("tar", "-C", str(rootfs), "-cf", str(base / "bb.tar"), ".")
    env = {k: v for k, v in os.environ.items() if k != "NETPLUMB_STATE_DIR"}
    env["CONTAINERS_CONF"] = str(conf)
    pm = [
        "nsenter",
        f"--net=/run/netns/{host}",
        "podman",
        "--root",
        str(base / "root"),
        "--runroot",
        str(base / "runroot"),
        "--storage-driver",
        "vfs",
    ]
    out: dict[str, Any] = {}
    try:
        sh(*pm, "import", str(base / "bb.tar"), "localhost/npb-busybox:bench", env=env)
        times: dict[str, list[float]] = {"npbpodnp": [], "npbpodref": []}
        for i in range(n):
            for network in ("npbpodnp", "npbpodref") if i % 2 == 0 else ("npbpodref", "npbpodnp"):
                name = f"npb-{tag}-{network}-{i}"
                t0 = time.perf_counter_ns()
                proc = sh(
                    *pm,
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--network",
                    network,
                    "localhost/npb-busybox:bench",
                    "sleep",
                    "600",
                    env=env,
                    check=False,
                )
                dt = (time.perf_counter_ns() - t0) / 1e6
                if proc.returncode == 0:
                    times[network].append(dt)
                else:
                    out.setdefault("errors", []).append(proc.stderr[-300:])
                sh(*pm, "rm", "-f", "-t", "0", name, env=env, check=False)
        out["netplumb"] = summarize(times["npbpodnp"])
        out["reference"] = summarize(times["npbpodref"])
    finally:
        sh(*pm, "rm", "-af", "-t", "0", env=env, check=False)
        sh("umount", "-R", str(base / "root"), check=False)
    return out
