"""The database's own write floor: what journaled inserts cost secantusdb (or mongod) directly.

Clients are separate processes with synchronous pymongo (no HTTP, no service), each sending
its next command as soon as the last one returned, the way a wrk connection behind an
instance does. Measured, for a fresh ``birthdays mongo`` on a free port:

  fsync       the disk's own fsync latency (the physical floor of a journaled write)
  insert_one  N clients, one document per command, ``{j: true}`` and ``{w: 1}`` (the baseline)
  batches     K clients, B documents per ``insert_many`` ``{j: true}``: the shapes a group
              commit of three instances produces (3 batches of 3-4 at 10 connections)

Each line: documents/s, commands/s, p50/p99 ms per command, the database's CPU share.

Usage: .venv/bin/python bench/service_floor.py [--duration S] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from service_procs import PYTHON, VENV, Json, cpu_seconds, free_port, processes

BIRTHDAYS = str(VENV / "birthdays") if (VENV / "birthdays").exists() else "birthdays"

# One client: B documents per command, back to back for a duration; prints its latencies (us).
CLIENT = """
import sys, time, pymongo
from pymongo import WriteConcern
uri, batch, journal, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4])
c = pymongo.MongoClient(uri, directConnection=True, retryWrites=False)
coll = c.demo.get_collection("floor", write_concern=WriteConcern(w=1, j=journal))
doc = {"name": "Albert Einstein", "birthday": "14.03.1879"}
coll.insert_one(dict(doc))  # connect
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
lat = []; end = time.monotonic() + secs
while time.monotonic() < end:
    docs = [dict(doc) for _ in range(batch)]
    t = time.perf_counter()
    if batch == 1:
        coll.insert_one(docs[0])
    else:
        coll.insert_many(docs, ordered=False)
    lat.append(int((time.perf_counter() - t) * 1e6))
print(" ".join(map(str, lat)))
"""


def fsync_latency(directory: str, n: int = 500) -> Json:
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    lat = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 200)
            t = time.perf_counter()
            os.fsync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"p50_ms": round(lat[n // 2] * 1000, 3), "p99_ms": round(lat[n * 99 // 100] * 1000, 3)}


def run_clients(
    uri: str, clients: int, batch: int, journal: bool, secs: float, db_pid: int
) -> Json:
    argv = [PYTHON, "-c", CLIENT, uri, str(batch), "1" if journal else "0", str(secs)]
    procs = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    cpu0, t0 = cpu_seconds(db_pid), time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    lat: list[int] = []
    for p in procs:
        out, _ = p.communicate()
        lat.extend(int(x) for x in out.split())
    wall = time.monotonic() - t0
    cpu = (cpu_seconds(db_pid) - cpu0) / wall * 100
    lat.sort()
    return {
        "clients": clients,
        "docs_per_command": batch,
        "j": journal,
        "docs_per_s": round(len(lat) * batch / secs),
        "commands_per_s": round(len(lat) / secs),
        "p50_ms": round(lat[len(lat) // 2] / 1000, 2),
        "p99_ms": round(lat[len(lat) * 99 // 100] / 1000, 2),
        "db_cpu_percent": round(cpu, 1),
        "db_cpu_ms_per_command": round(cpu / 100 * wall / len(lat) * 1000, 3),
    }


SHAPES = (
    # clients, documents per command, journaled
    (1, 1, True),
    (3, 1, True),
    (10, 1, True),
    (10, 1, False),
    (1, 10, True),
    (3, 3, True),
    (3, 4, True),
    (6, 2, True),
    (3, 17, True),
)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per shape (5)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    result: Json = {}
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as data:
        result["fsync"] = fsync_latency(data)
        print(f"fsync of the data directory's disk: {result['fsync']}", flush=True)
        db_argv = [BIRTHDAYS, "mongo", "--port", str(port), "--data", data]
        with processes([db_argv], [port]) as (db_pid,):
            uri = f"mongodb://127.0.0.1:{port}/"
            run_clients(uri, 3, 1, True, 1.0, db_pid)  # warm-up
            rows = []
            for clients, batch, journal in SHAPES:
                row = run_clients(uri, clients, batch, journal, args.duration, db_pid)
                rows.append(row)
                print(
                    f"  {clients:2} clients x {batch:2} docs/command j={journal!s:5}: "
                    f"{row['docs_per_s']:6} docs/s {row['commands_per_s']:5} commands/s  "
                    f"p50 {row['p50_ms']:5} ms p99 {row['p99_ms']:6} ms  "
                    f"database {row['db_cpu_percent']:5}% CPU, "
                    f"{row['db_cpu_ms_per_command']} ms/command",
                    flush=True,
                )
            result["shapes"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
