"""The birthday service vs the article's original design, side by side in one run.

One database server (``birthdays mongo``: mongod if installed, else secantusdb) serves both
sides, each with three instances as in the article:

  baseline   bench/service_baseline.py: http.server, synchronous pymongo, one process per port
  service    ``birthdays serve``: asyncio, group commit, streaming, journaled writes

wrk drives each instance with its own process (one per port, connections split 4/3/3 and
17/17/16); requests/s add up and the latency percentiles are merged from the three
distributions. Measured: POST at 10 and 50 connections; GET with 100 and 10,000 stored
documents; the database's own find rate for 10,000 documents (1 and 3 clients) with the CPU
share of every process during the GET runs and a py-spy profile of one instance; the memory
of one instance streaming 1,000,000 documents (RSS sampled from /proc); the slow-client case
(bench/service_slow.py: 1,000 idle connections, a client at 100 requests/s); and the
retryable-writes slowdown of a replica-set-mode secantusdb; and the database's own journaled
insert rate without HTTP (bench/service_floor.py: the floor of POSTs at 10 connections).

Usage: .venv/bin/python bench/service.py [--quick] [--duration S] [--rounds N]
       [--stream-docs N] [--only wrk|floor|stream|retry|slow]...
Prints a table and writes bench/results/service.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pymongo
from service_floor import SHAPES, fsync_latency, run_clients
from service_procs import (
    PYTHON,
    ROOT,
    VENV,
    Json,
    WrkFailed,
    free_port,
    processes,
    profile,
    rss_kib,
    settle,
    stream_rate,
    wrk,
)
from service_slow import IDLE, slow_clients

BIRTHDAYS = str(VENV / "birthdays") if (VENV / "birthdays").exists() else "birthdays"
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")
SECTIONS = ("wrk", "floor", "stream", "retry", "slow")


# -- the database ------------------------------------------------------------------------------


def client(port: int) -> pymongo.MongoClient[Json]:
    return pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/", directConnection=True, retryWrites=False
    )


def preload(port: int, n: int) -> None:
    coll = client(port).demo.birthdays
    coll.drop()
    batch = 10_000
    for start in range(0, n, batch):
        coll.insert_many(
            [
                {"name": f"Physicist {i}", "birthday": "14.03.1879"}
                for i in range(start, min(n, start + batch))
            ]
        )


# The service's own query (sorted by _id on the _id index, batches of 1000) as raw batches
# that are counted, not decoded: the database's rate, with as little client work as possible.
FIND_CLIENT = """
import sys, time, pymongo
c = pymongo.MongoClient(sys.argv[1], directConnection=True)
coll = c.demo.birthdays
end = time.monotonic() + float(sys.argv[2]); n = 0
while time.monotonic() < end:
    for raw in coll.find_raw_batches({}, sort=[("_id", 1)], hint=[("_id", 1)], batch_size=1000):
        n += raw.count(b"\\x07_id\\x00")  # one ObjectId _id per preloaded document
print(n)
"""


def db_find_rate(port: int, clients: int, duration: float) -> float:
    """Documents/s the database itself returns to ``clients`` synchronous pymongo processes."""
    uri = f"mongodb://127.0.0.1:{port}/"
    procs = [
        subprocess.Popen([PYTHON, "-c", FIND_CLIENT, uri, str(duration)], stdout=subprocess.PIPE)
        for _ in range(clients)
    ]
    t0 = time.monotonic()
    total = sum(int(p.communicate()[0]) for p in procs)
    return float(round(total / (time.monotonic() - t0)))


# -- sides -------------------------------------------------------------------------------------


def baseline_argv(port: int, db_port: int) -> list[str]:
    return [
        PYTHON,
        str(ROOT / "bench" / "service_baseline.py"),
        str(port),
        "127.0.0.1",
        str(db_port),
    ]


def service_argv(port: int, db_port: int) -> list[str]:
    return [
        BIRTHDAYS,
        "serve",
        str(port),
        "127.0.0.1",
        str(db_port),
        "--listen",
        "127.0.0.1",
        "--log-level",
        "WARNING",
    ]


def stream_memory(port: int, db_port: int, db_pid: int, docs: int) -> Json:
    """RSS of one instance while a client reads all ``docs`` documents as text."""
    preload(db_port, docs)
    with processes([service_argv(port, db_port)], [port]) as (pid,):
        before = rss_kib(pid)
        peak = before
        db_peak = rss_kib(db_pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak, db_peak
            while not stop.is_set():
                peak = max(peak, rss_kib(pid))
                db_peak = max(db_peak, rss_kib(db_pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.monotonic()
        received = lines = 0
        head = b""
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")  # close-delimited
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            head, _, chunk = head.partition(b"\r\n\r\n")
            first_byte = time.monotonic() - t0
            while True:
                received += len(chunk)
                lines += chunk.count(b"\n")
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
        seconds = time.monotonic() - t0
        stop.set()
        sampler.join()
        hwm = rss_kib(pid, "VmHWM")
    return {
        "documents": docs,
        "status": head.split(b"\r\n")[0].decode(),
        "lines_received": lines,
        "complete": lines == docs,
        "first_byte_s": round(first_byte, 2),
        "bytes": received,
        "seconds": round(seconds, 2),
        "docs_per_s": round(docs / seconds),
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_sampled_mib": round(peak / 1024, 1),
        "rss_hwm_mib": round(hwm / 1024, 1),
        "database_rss_peak_mib": round(db_peak / 1024, 1),
    }


RETRY_CLIENT = """
import sys, time, pymongo
c = pymongo.MongoClient(sys.argv[1], retryWrites=sys.argv[2] == "1")
coll = c.demo.retry
out = []
for block in range(int(sys.argv[3])):
    t = time.perf_counter()
    for i in range(1000):
        coll.insert_one({"name": "Albert Einstein", "birthday": "14.03.1879"})
    out.append(round((time.perf_counter() - t), 3))
print(" ".join(map(str, out)))
"""


def retry_study(blocks: int) -> Json:
    """ms per insert_one, per 1000 inserts, against a replica-set-mode secantusdb (its default)
    with retryable writes on and off, each on a fresh server."""
    out: Json = {}
    for label, flag in (("retryWrites=true", "1"), ("retryWrites=false", "0")):
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="bench-retry-") as data:
            argv = [
                PYTHON,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                data,
                "--log-level",
                "WARNING",
            ]
            with processes([argv], [port]):
                r = subprocess.run(
                    [PYTHON, "-c", RETRY_CLIENT, f"mongodb://127.0.0.1:{port}/", flag, str(blocks)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
        out[label] = [float(x) for x in r.stdout.split()]
    return out


def db_floor(port: int, db_pid: int, data: str, secs: float) -> Json:
    """Journaled inserts straight from pymongo clients, in the shapes the two sides produce at
    10 connections (bench/service_floor.py)."""
    uri = f"mongodb://127.0.0.1:{port}/"
    rows = []
    run_clients(uri, 3, 1, True, 1.0, db_pid)  # warm-up
    for clients, batch, journal in SHAPES:
        row = run_clients(uri, clients, batch, journal, secs, db_pid)
        rows.append(row)
        print(
            f"  {clients:2} clients x {batch:2} docs j={journal!s:5}: {row['docs_per_s']:6} docs/s "
            f"{row['commands_per_s']:5} commands/s p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms",
            flush=True,
        )
    client(port).demo.floor.drop()
    return {"fsync": fsync_latency(data), "shapes": rows}


# -- the run -----------------------------------------------------------------------------------


def compare(title: str, run: Callable[[str], Json], result: Json, rounds: int) -> None:
    """``rounds`` runs per side, alternating which goes first (B S, S B, ...) so that a drift
    of the shared machine's load does not favour one side; the sides' means are compared."""
    runs: dict[str, list[Json]] = {"baseline": [], "service": []}
    for r in range(rounds):
        for side in ("baseline", "service") if r % 2 == 0 else ("service", "baseline"):
            runs[side].append(run(side))
    base, svc = (mean_run(runs[side]) for side in ("baseline", "service"))
    ratio = round(svc["rps"] / base["rps"], 2) if base["rps"] else float("inf")
    result[title] = {"baseline": base, "service": svc, "ratio_rps": ratio, "runs": runs}
    print(
        f"  {title}: baseline {base['rps']:.1f}/s p99 {base['p99_ms']} ms, service "
        f"{svc['rps']:.1f}/s p99 {svc['p99_ms']} ms, x{ratio}",
        flush=True,
    )


def mean_run(runs: list[Json]) -> Json:
    def mean(key: str) -> float:
        return round(sum(float(r[key]) for r in runs) / len(runs), 2)

    return {
        "rps": mean("rps"),
        "p50_ms": mean("p50_ms"),
        "p99_ms": mean("p99_ms"),
        "requests": sum(int(r["requests"]) for r in runs),
        "errors": sum(int(r["errors"]) for r in runs),
        "cpu_percent": runs[-1]["cpu_percent"],
    }


def wrk_section(
    db_port: int, db_pid: int, result: Json, duration: float, rounds: int, quick: bool
) -> None:
    """POST and GET through wrk on both sides, the database's own find rate, the profile."""
    base_ports = [free_port() for _ in range(3)]
    svc_ports = [free_port() for _ in range(3)]
    with (
        processes([baseline_argv(p, db_port) for p in base_ports], base_ports, quiet=True) as bpids,
        processes([service_argv(p, db_port) for p in svc_ports], svc_ports) as spids,
    ):
        sides = {"baseline": (base_ports, bpids), "service": (svc_ports, spids)}

        def run(method: str, conns: int, secs: float) -> Callable[[str], Json]:
            def go(side: str) -> Json:
                ports, pids = sides[side]
                try:
                    return wrk(ports, conns, secs, method, watch=[db_pid, *pids])
                except WrkFailed as exc:  # once more, after the backlog has drained
                    print(f"  {side}: {exc}; again", flush=True)
                    settle([db_pid, *pids])
                    return wrk(ports, conns, secs, method, watch=[db_pid, *pids])

            return go

        print("warm-up", flush=True)
        for side in sides:
            run("POST", 10, 1)(side)
        client(db_port).demo.birthdays.drop()
        for conns in (10, 50):
            compare(f"POST c={conns}", run("POST", conns, duration), result, rounds)
        for docs in (100, 10_000):
            preload(db_port, docs)
            for conns in (10, 50):
                if quick and docs == 10_000 and conns == 50:
                    continue
                # Concurrent GETs of 10,000 documents share a database streaming ~40,000
                # documents/s: at 50 connections each takes ~12 s. wrk counts only completed
                # requests, so the runs are long enough that the ones cut off at the end
                # weigh little.
                secs = duration if docs == 100 else max(duration * 3, conns * 0.9)
                compare(f"GET {docs} docs c={conns}", run("GET", conns, secs), result, rounds)
        # Documents/s, back to back: the database's own rate and what 10 clients receive
        # from each side. wrk's completed requests/s is coarse for responses of seconds (those
        # cut off at the end of a run are lost; the baseline's close-delimited ones and the
        # service's interleaved ones unequally).
        find = {f"{n} clients": db_find_rate(db_port, n, duration) for n in (1, 3)}
        streamed = stream_rate(svc_ports, 10, duration)
        settle([db_pid, *spids])
        base_streamed = stream_rate(base_ports, 10, duration)
        settle([db_pid, *bpids])
        result["db_find_10k"] = {
            "db_docs_per_s": find,
            "service_docs_per_s_streamed": streamed,
            "baseline_docs_per_s_streamed": base_streamed,
            "service_vs_db_3_clients": round(streamed / find["3 clients"], 2),
            "service_vs_baseline": round(streamed / base_streamed, 2),
        }
        print(
            f"  database find rate: {find}; 10 clients receive {streamed:.0f} docs/s "
            f"from the service, {base_streamed:.0f} from the baseline"
        )
        # The profile: CPU of every process and the hottest frames of the database and of
        # one instance, while 10 clients stream from the three instances.
        profiles: Json = {}
        spies = [
            threading.Thread(target=lambda k=k, p=p: profiles.__setitem__(k, profile(p, 4)))
            for k, p in (("database", db_pid), ("instance", spids[0]))
        ]
        for spy in spies:
            spy.start()
        time.sleep(0.3)
        cpu = wrk(svc_ports, 10, 5, "GET", watch=[db_pid, *spids])["cpu_percent"]
        for spy in spies:
            spy.join()
        result["profile_get_10k"] = {
            "cpu_percent": cpu,
            "pids": {"database": db_pid, "instances": spids},
            "py-spy": profiles,
        }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs, 50,000 streamed documents")
    ap.add_argument("--duration", type=float, help="seconds per wrk run (10; quick: 2)")
    ap.add_argument("--stream-docs", type=int, help="documents for the memory run (1,000,000)")
    ap.add_argument("--rounds", type=int, help="runs per side and scenario (2; quick: 1)")
    ap.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable), updating the existing results file",
    )
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    duration = args.duration or (2.0 if args.quick else 10.0)
    rounds = args.rounds or (1 if args.quick else 2)
    stream_docs = args.stream_docs or (50_000 if args.quick else 1_000_000)
    sections = args.only or list(SECTIONS)
    out = RESULTS / "service.json"
    result: Json = json.loads(out.read_text()) if args.only and out.exists() else {}
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    result["duration_s"], result["rounds"] = duration, rounds
    db_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-service-") as data:
        db_argv = [BIRTHDAYS, "mongo", "--port", str(db_port), "--data", data]
        with processes([db_argv], [db_port]) as (db_pid,):
            result["database"] = " ".join(Path(f"/proc/{db_pid}/cmdline").read_text().split("\0"))
            if "wrk" in sections:
                wrk_section(db_port, db_pid, result, duration, rounds, args.quick)
            if "floor" in sections:
                print("the database's own insert rate (no HTTP)", flush=True)
                result["db_insert_floor"] = db_floor(db_port, db_pid, data, duration / 2)
            if "stream" in sections:
                print(f"streaming {stream_docs} documents from one instance", flush=True)
                result["stream_memory"] = stream_memory(free_port(), db_port, db_pid, stream_docs)
            if "slow" in sections:
                print(f"{IDLE} idle connections, a client at 100 requests/s", flush=True)
                port = free_port()
                argv = [*service_argv(port, db_port), "--max-connections", str(IDLE)]
                with processes([argv], [port]):
                    result["slow_clients"] = slow_clients(port, duration * 4)
                print(f"  {result['slow_clients']}", flush=True)
    if "retry" in sections:
        print("retryable writes on secantusdb (replica-set mode)", flush=True)
        result["retryable_writes_s_per_1000"] = retry_study(5 if args.quick else 14)
    report(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def report(result: Json) -> None:
    print()
    head = f"{'':22} {'baseline req/s':>14} {'p50':>8} {'p99':>8}   {'service req/s':>13} {'p50':>8} {'p99':>8}  {'ratio':>6}"  # noqa: E501
    print(head)
    print("-" * len(head))
    for title, row in result.items():
        if not (isinstance(row, dict) and "baseline" in row):
            continue
        b, s = row["baseline"], row["service"]
        ratio = s["rps"] / b["rps"] if b["rps"] else float("inf")
        print(
            f"{title:22} {b['rps']:14.1f} {b['p50_ms']:8.2f} {b['p99_ms']:8.2f}   "
            f"{s['rps']:13.1f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f}  {ratio:5.1f}x"
        )
    print("(latencies in ms; three instances per side, one wrk process per instance)")
    floor = result.get("db_insert_floor")
    if floor:
        print(f"\nThe database alone, pymongo clients, no HTTP (fsync {floor['fsync']}):")
        for row in floor["shapes"]:
            print(
                f"  {row['clients']:2} clients x {row['docs_per_command']:2} docs "
                f"j={row['j']!s:5}: {row['docs_per_s']:6} docs/s, "
                f"{row['commands_per_s']:5} commands/s, p50 {row['p50_ms']} ms"
            )
    if "db_find_10k" not in result:
        return
    find = result["db_find_10k"]
    print(
        f"\nGET 10,000 docs, 10 clients streaming: the service delivers "
        f"{find['service_docs_per_s_streamed']:.0f} docs/s, the baseline "
        f"{find['baseline_docs_per_s_streamed']:.0f}; the database alone finds "
        f"{find['db_docs_per_s']} docs/s: the service reaches "
        f"{find['service_vs_db_3_clients'] * 100:.0f}% of its 3-client rate"
    )
    prof = result["profile_get_10k"]
    print(f"CPU % of one core while streaming (database, then instances): {prof['cpu_percent']}")
    for name, frames in prof["py-spy"].items():
        if frames:
            print(f"py-spy, {name}:\n    " + "\n    ".join(frames[:12]))
    mem = result.get("stream_memory")
    if not mem:
        return
    print(
        f"streaming {mem['documents']} docs from one instance: {mem['seconds']} s "
        f"({mem['docs_per_s']} docs/s, first byte after {mem['first_byte_s']} s, "
        f"{'complete' if mem['complete'] else 'INCOMPLETE'}), RSS {mem['rss_before_mib']} MiB "
        f"before, peak {mem['rss_peak_sampled_mib']} MiB sampled, VmHWM {mem['rss_hwm_mib']} MiB "
        f"(the database's RSS peaked at {mem['database_rss_peak_mib']} MiB)"
    )
    retry = result.get("retryable_writes_s_per_1000")
    if retry:
        for label, blocks in retry.items():
            print(
                f"secantusdb insert_one, {label}: ms per insert by 1000s: "
                + " ".join(f"{b:.2f}" for b in blocks)
            )


if __name__ == "__main__":
    raise SystemExit(main())
