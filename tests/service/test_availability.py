"""The database going away and coming back, SIGTERM, worker processes: each test with its own
database and web server processes."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from service.birthdayslab import Mongo, Service, kill_quietly, wait_for


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_database_down_gives_503_and_the_service_recovers_by_itself(tmp_path: Path) -> None:
    mongo = Mongo(tmp_path / "db").start()
    svc = Service(mongo, tmp_path).start()
    try:
        first = svc.post({"name": "before"})
        assert first.status == 201
        mongo.kill()

        reply = svc.post({"name": "while down"})
        assert reply.status == 503
        assert reply.headers["retry-after"] == "1"
        assert reply.problem()["detail"].startswith(
            "cannot insert 1 documents into demo.birthdays: database unavailable: "
        )
        for path in ("/", first.headers["location"]):
            got = svc.request("GET", path)
            assert got.status == 503
            assert got.headers["retry-after"] == "1"
            assert got.problem()["detail"].startswith(
                "cannot read demo.birthdays: database unavailable: "
            )
        ready = svc.request("GET", "/readyz")
        assert (ready.status, ready.headers["retry-after"]) == (503, "1")
        assert ready.json()["status"] == "unavailable"
        assert svc.request("GET", "/healthz").status == 200

        mongo = Mongo(mongo.data, mongo.port).start()  # the same data directory and port
        wait_for("POST to succeed again", lambda: svc.post({"name": "after"}).status == 201)
        assert svc.request("GET", "/readyz").json() == {"status": "ready"}
        lines = svc.request("GET", "/").body.decode().splitlines()
        assert lines[0] == "name = before"
        assert lines[-1] == "name = after"
        assert "name = while down" not in lines
        assert svc.proc.alive()
    finally:
        kill_quietly(svc, mongo)


def test_sigterm_finishes_the_request_in_flight_then_exits_0(mongo: Mongo, tmp_path: Path) -> None:
    svc = Service(mongo, tmp_path, collection="sigterm").start()
    svc.oracle().delete_many({})
    body = b'{"name": "in flight"}'
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    busy = socket.create_connection(("127.0.0.1", svc.port), timeout=30)
    idle = socket.create_connection(("127.0.0.1", svc.port), timeout=30)
    try:
        busy.sendall(head + body[:5])  # the head and part of the body: a request in flight
        assert busy.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"  # the head was read
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")  # then idle, kept alive
        assert idle.recv(4096).startswith(b"HTTP/1.1 200 OK")
        svc.proc.signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", svc.port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for("the listening socket to close", refused)
        assert idle.recv(4096) == b""  # the idle keep-alive connection was closed
        busy.sendall(body[5:])
        answer = b""
        while chunk := busy.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 201 Created\r\n")
        assert b"Connection: close\r\n" in answer
        assert svc.proc.wait(timeout=30) == 0
        assert [d["name"] for d in svc.oracle().find()] == ["in flight"]
    finally:
        busy.close()
        idle.close()
        kill_quietly(svc)


def test_sigterm_when_idle_exits_0(mongo: Mongo, tmp_path: Path) -> None:
    svc = Service(mongo, tmp_path).start()
    svc.proc.signal(signal.SIGTERM)
    assert svc.proc.wait(timeout=30) == 0
    assert "stopped" in svc.proc.output()


def test_workers_share_the_port_and_a_dead_one_is_replaced(mongo: Mongo, tmp_path: Path) -> None:
    svc = Service(mongo, tmp_path, collection="workers", args=("--workers", "2")).start()
    try:
        svc.oracle().delete_many({})
        workers = wait_for(
            "two workers", lambda: len(children(svc.proc.pid)) == 2 and children(svc.proc.pid)
        )
        for i in range(20):
            assert svc.post({"i": i}).status == 201
        assert svc.oracle().count_documents({}) == 20
        os.kill(workers[0], signal.SIGKILL)
        wait_for(
            "a new worker",
            lambda: len(children(svc.proc.pid)) == 2 and workers[0] not in children(svc.proc.pid),
        )
        wait_for("the service to answer", lambda: svc.post({"i": 20}).status == 201)
        svc.proc.signal(signal.SIGTERM)
        assert svc.proc.wait(timeout=30) == 0
        assert "worker 0" in svc.proc.output() or "worker 1" in svc.proc.output()
    finally:
        kill_quietly(svc)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_database_launcher_stops_cleanly(tmp_path: Path, signame: str) -> None:
    mongo = Mongo(tmp_path / "db").start()
    mongo.proc.signal(getattr(signal, signame))
    assert mongo.proc.wait(timeout=30) == 0


def test_connections_over_the_limit_get_503(mongo: Mongo, tmp_path: Path) -> None:
    svc = Service(mongo, tmp_path, args=("--max-connections", "1")).start()
    try:
        with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as held:
            held.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert held.recv(4096).startswith(b"HTTP/1.1 200 OK")  # kept alive: one of one
            reply = svc.request("GET", "/healthz")
            assert (reply.status, reply.headers["retry-after"]) == (503, "1")
            assert reply.problem()["detail"] == "too many connections"
        wait_for("the connection to be free", lambda: svc.request("GET", "/").status == 200)
    finally:
        kill_quietly(svc)
