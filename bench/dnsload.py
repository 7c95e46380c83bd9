"""A DNS load generator over UDP: a fixed window of queries in flight, JSON out.

Usage (stdlib and dnspython only, so it runs as ``ip netns exec NS python bench/dnsload.py``
or under ``nsenter --net=/proc/PID/ns/net``):

  dnsload.py load --server IP [--port 53] --query NAME[:TYPE] ... [--window 64]
                  [--duration S | --count N] [--procs P] [--timeout S]
      Keeps WINDOW queries outstanding (split over P processes, one connected UDP socket
      each), the queries taken in turn from the list. Prints one JSON object: queries/s,
      latency p50/p99/max in ms (per query, send to answer), answer codes (NOERROR,
      NXDOMAIN, SERVFAIL, REFUSED, ..., timeout) and the generator's own CPU seconds per
      query (its ceiling on one core is the inverse).

  dnsload.py poll --server IP --query NAME[:TYPE] [--interval 0.001] [--timeout 30]
      Asks one question every INTERVAL until an answer comes back NOERROR with at least one
      record; prints {"first_ok": CLOCK_MONOTONIC seconds, "queries": n, "rcodes": {...}}.
      Prints "ready" first (on stderr) once the socket is open. CLOCK_MONOTONIC is the same
      in every network namespace, so the caller compares it with its own clock.

  dnsload.py ask --server IP --query NAME[:TYPE] [--repeat N] [--timeout S] [--tcp]
      One question (N times), dnspython's client: rcode, answers in order, TTLs, ms.

  dnsload.py respond [--address 127.0.0.1] [--port 5300]
      A trivial responder (turns each query around with QR set, NOERROR, no answer), to
      measure the generator's own ceiling.

The packets are built once up front (dnspython); each send patches the 16-bit id only.
Query ids are taken in sequence, so an id comes back into use only after 65,536 queries: an
answer that arrives after its query's timeout is counted as ``late`` and otherwise ignored.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import select
import socket
import sys
import time
from array import array
from collections import Counter
from typing import Any

# bench/dns.py would shadow dnspython's ``dns`` package for a script run from bench/
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def build_queries(specs: list[str]) -> list[bytes]:
    """``name[:type]`` -> a wire-format query each (id 0, RD set), built once."""
    import dns.message
    import dns.rdatatype

    out = []
    for spec in specs:
        name, _, qtype = spec.partition(":")
        msg = dns.message.make_query(name, dns.rdatatype.from_text(qtype or "A"))
        msg.id = 0
        out.append(msg.to_wire())
    return out


def connect(server: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.connect((server, port))
    sock.setblocking(False)
    return sock


def run_load(
    server: str,
    port: int,
    packets: list[bytes],
    window: int,
    duration: float,
    count: int,
    timeout: float,
) -> dict[str, Any]:
    """One process's share: ``window`` queries outstanding until ``duration`` or ``count``."""
    sock = connect(server, port)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    sent_at: dict[int, int] = {}  # query id -> ns, for the queries outstanding
    latencies = array("q")  # ns
    rcodes: Counter[str] = Counter()
    late = 0
    next_id = 0
    outstanding = 0
    sent = 0
    npk = len(packets)
    clock = time.monotonic_ns
    deadline = clock() + int(duration * 1e9) if duration else 0
    limit = count or (1 << 62)
    tmo = int(timeout * 1e9)
    last_sweep = clock()
    send = sock.send
    recv = sock.recv
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = clock()

    def fire() -> None:
        nonlocal next_id, outstanding, sent
        qid = next_id
        next_id = (next_id + 1) & 0xFFFF
        pkt = packets[sent % npk]
        sent_at[qid] = clock()
        try:
            send(qid.to_bytes(2, "big") + pkt[2:])
        except OSError:  # e.g. ECONNREFUSED from an earlier ICMP error: count as lost
            pass
        outstanding += 1
        sent += 1

    stopping = False
    while outstanding < window and sent < limit:
        fire()
    while outstanding:
        poller.poll(50)
        now = clock()
        while True:
            try:
                data = recv(4096)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                continue
            if len(data) < 4:
                continue
            now = clock()
            t = sent_at.pop((data[0] << 8) | data[1], 0)
            if not t:
                late += 1
                continue
            outstanding -= 1
            latencies.append(now - t)
            rcodes[RCODES.get(data[3] & 0x0F, str(data[3] & 0x0F))] += 1
            if not stopping:
                if (deadline and now >= deadline) or sent >= limit:
                    stopping = True
                else:
                    fire()
        if now - last_sweep > 20_000_000:  # every 20 ms: queries past their timeout
            last_sweep = now
            for qid, t in list(sent_at.items()):
                if now - t > tmo:
                    del sent_at[qid]
                    outstanding -= 1
                    rcodes["timeout"] += 1
                    if not stopping:
                        fire()
            if deadline and now >= deadline:
                stopping = True
    elapsed = (clock() - t0) / 1e9
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    sock.close()
    return {
        "sent": sent,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "late": late,
        "rcodes": dict(rcodes),
        "latencies_ns": latencies.tobytes(),
    }


def _child(args: tuple[Any, ...]) -> dict[str, Any]:
    return run_load(*args)


def percentile(sorted_xs: list[int], q: float) -> float | None:
    """ms; None without answers (JSON has no NaN)."""
    if not sorted_xs:
        return None
    i = min(len(sorted_xs) - 1, max(0, round(q * (len(sorted_xs) - 1))))
    return round(sorted_xs[i] / 1e6, 3)


def load(args: argparse.Namespace) -> dict[str, Any]:
    packets = build_queries(args.query)
    procs = max(1, args.procs)
    window = max(1, args.window // procs)
    count = -(-args.count // procs) if args.count else 0
    job = (args.server, args.port, packets, window, args.duration, count, args.timeout)
    if procs == 1:
        parts = [run_load(*job)]
    else:
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            parts = pool.map(_child, [job] * procs)
    lat = array("q")
    rcodes: Counter[str] = Counter()
    for p in parts:
        lat.frombytes(p["latencies_ns"])
        rcodes.update(p["rcodes"])
    xs = sorted(lat)
    answered = len(xs)
    elapsed = max(p["elapsed_s"] for p in parts)
    sent = sum(p["sent"] for p in parts)
    cpu = sum(p["cpu_s"] for p in parts)
    return {
        "server": f"{args.server}:{args.port}",
        "queries": args.query,
        "window": window * procs,
        "procs": procs,
        "sent": sent,
        "answered": answered,
        "elapsed_s": round(elapsed, 3),
        "qps": round(answered / elapsed, 1) if elapsed else 0.0,
        "p50_ms": percentile(xs, 0.50),
        "p99_ms": percentile(xs, 0.99),
        "max_ms": percentile(xs, 1.0),
        "rcodes": dict(rcodes),
        "late": sum(p["late"] for p in parts),
        "generator_cpu_us_per_query": round(1e6 * cpu / sent, 2) if sent else None,
    }


def poll(args: argparse.Namespace) -> dict[str, Any]:
    """One query every ``interval`` until a NOERROR answer with a record comes back."""
    packet = build_queries(args.query[:1])[0]
    sock = connect(args.server, args.port)
    print("ready", file=sys.stderr, flush=True)
    rcodes: Counter[str] = Counter()
    deadline = time.monotonic() + args.timeout
    qid = 0
    while time.monotonic() < deadline:
        qid = (qid + 1) & 0xFFFF
        try:
            sock.send(qid.to_bytes(2, "big") + packet[2:])
        except OSError:
            pass
        wait_until = time.monotonic() + args.interval
        while (left := wait_until - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            try:
                data = sock.recv(4096)
            except OSError:
                continue
            if len(data) < 12:
                continue
            code = RCODES.get(data[3] & 0x0F, str(data[3] & 0x0F))
            rcodes[code] += 1
            ancount = (data[6] << 8) | data[7]
            if code == "NOERROR" and ancount:
                return {"first_ok": time.monotonic(), "queries": qid, "rcodes": dict(rcodes)}
        time.sleep(max(0.0, wait_until - time.monotonic()))
    return {"first_ok": None, "queries": qid, "rcodes": dict(rcodes)}


def ask(args: argparse.Namespace) -> dict[str, Any]:
    """One question (``--repeat`` times, the answers' order each time), dnspython's client."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    name, _, qtype = args.query[0].partition(":")
    out: dict[str, Any] = {"query": args.query[0], "server": args.server, "asks": []}
    for _ in range(args.repeat):
        q = dns.message.make_query(name, dns.rdatatype.from_text(qtype or "A"))
        t = time.monotonic()
        try:
            query = dns.query.tcp if args.tcp else dns.query.udp
            r = query(q, args.server, port=args.port, timeout=args.timeout)
        except (dns.exception.Timeout, OSError) as e:
            ms = round((time.monotonic() - t) * 1000, 1)
            out["asks"].append(
                {"rcode": "timeout" if not isinstance(e, OSError) else str(e), "ms": ms}
            )
            continue
        ms = round((time.monotonic() - t) * 1000, 1)
        answers = [rd.to_text() for rrset in r.answer for rd in rrset]
        ttls = sorted({rrset.ttl for rrset in r.answer})
        out["asks"].append(
            {"rcode": dns.rcode.to_text(r.rcode()), "answers": answers, "ttl": ttls, "ms": ms}
        )
    return out


def respond(args: argparse.Namespace) -> None:
    """Turn every query around: QR and RA set, NOERROR, the question only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.bind((args.address, args.port))
    print("ready", file=sys.stderr, flush=True)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        data, peer = recvfrom(4096)
        if len(data) >= 12:
            sendto(data[:2] + bytes([data[2] | 0x80, 0x80]) + data[4:], peer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_load = sub.add_parser("load")
    p_poll = sub.add_parser("poll")
    for p in (p_load, p_poll):
        p.add_argument("--server", required=True)
        p.add_argument("--port", type=int, default=53)
        p.add_argument("--query", action="append", required=True, metavar="NAME[:TYPE]")
    p_load.add_argument("--window", type=int, default=64)
    p_load.add_argument("--duration", type=float, default=0.0)
    p_load.add_argument("--count", type=int, default=0)
    p_load.add_argument("--procs", type=int, default=1)
    p_load.add_argument("--timeout", type=float, default=2.0)
    p_poll.add_argument("--interval", type=float, default=0.001)
    p_poll.add_argument("--timeout", type=float, default=30.0)
    p_ask = sub.add_parser("ask")
    p_ask.add_argument("--server", required=True)
    p_ask.add_argument("--port", type=int, default=53)
    p_ask.add_argument("--query", action="append", required=True, metavar="NAME[:TYPE]")
    p_ask.add_argument("--timeout", type=float, default=3.0)
    p_ask.add_argument("--repeat", type=int, default=1)
    p_ask.add_argument("--tcp", action="store_true")
    p_resp = sub.add_parser("respond")
    p_resp.add_argument("--address", default="127.0.0.1")
    p_resp.add_argument("--port", type=int, default=5300)
    args = parser.parse_args(argv)
    if args.cmd == "load":
        if not args.duration and not args.count:
            args.duration = 5.0
        print(json.dumps(load(args)))
    elif args.cmd == "ask":
        print(json.dumps(ask(args)))
    elif args.cmd == "poll":
        print(json.dumps(poll(args)))
    else:
        respond(args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
