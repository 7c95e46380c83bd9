"""Real processes for the service tests: a database server (``birthdays mongo``) and web servers
(``birthdays serve``) on free loopback ports, an HTTP client, and the oracle: pymongo reading
the database directly, never through the service's code.

No namespaces here (everything is on loopback); a process is ended the way the lab
(``tests/lab.py``) ends its background processes: ``lab.stop_process``.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo

from lab import stop_process

ROOT = Path(__file__).resolve().parents[2]
_VENV_BIRTHDAYS = ROOT / ".venv" / "bin" / "birthdays"
BIRTHDAYS = str(_VENV_BIRTHDAYS) if _VENV_BIRTHDAYS.exists() else (shutil.which("birthdays") or "")

Doc = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    """Poll ``check()`` until it returns a true value; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.log.parent
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit status."""
        if self.proc is None:
            return None
        return stop_process(self.proc, grace=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Mongo:
    """``birthdays mongo`` on a free port with its data in ``data``."""

    def __init__(self, data: Path, port: int | None = None) -> None:
        self.data = data
        self.port = port or free_port()
        data.mkdir(parents=True, exist_ok=True)
        argv = [BIRTHDAYS, "mongo", "--port", str(self.port), "--data", str(data)]
        self.proc = Proc(argv, data.parent / f"mongo-{self.port}.log")

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def client(self, timeout_ms: int = 5000) -> pymongo.MongoClient[Doc]:
        return pymongo.MongoClient(
            self.uri, directConnection=True, serverSelectionTimeoutMS=timeout_ms
        )

    def start(self) -> Mongo:
        self.proc.start()

        def ping() -> bool:
            if not self.proc.alive():
                raise AssertionError(f"database exited:\n{self.proc.output()[-2000:]}")
            with self.client(timeout_ms=300) as c:
                c.admin.command("ping")
            return True

        wait_for(f"the database on port {self.port}", ping)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self.proc.signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.stop()


@dataclass(frozen=True)
class Upload:
    """What a client that sends and reads at once got back (``Service.upload``)."""

    answer: bytes
    sent: int  # bytes of the request sent before the answer came
    ended: str  # "eof" for a clean close, else how the connection broke ("reset", ...)

    def response(self) -> tuple[bytes, dict[str, str], bytes]:
        """The status line, header fields (lower-case names) and body of a whole answer; fails
        when the body is shorter than its Content-Length."""
        head, sep, body = self.answer.partition(b"\r\n\r\n")
        assert sep, f"no whole response head in {self.answer[:200]!r} ({self.ended})"
        status, *lines = head.decode("latin-1").split("\r\n")
        fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        assert len(body) == int(fields["content-length"]), (len(body), self.ended)
        return status.encode("latin-1"), fields, body


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def problem(self) -> Any:
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        doc = self.json()
        assert set(doc) == {"type", "title", "status", "detail"}, doc
        assert doc["status"] == self.status
        return doc


class Service:
    """``birthdays serve`` on a free loopback port against ``mongo``."""

    def __init__(
        self,
        mongo: Mongo,
        workdir: Path,
        *,
        collection: str = "birthdays",
        args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.mongo = mongo
        self.port = port or free_port()
        self.collection = collection
        argv = [BIRTHDAYS, "serve", str(self.port), "127.0.0.1", str(mongo.port)]
        argv += ["--listen", "127.0.0.1", "--collection", collection, "--db-timeout", "1", *args]
        self.proc = Proc(argv, workdir / f"serve-{self.port}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Service:
        self.proc.start()

        def healthy() -> bool:
            if not self.proc.alive():
                raise AssertionError(f"service exited:\n{self.proc.output()[-2000:]}")
            return self.request("GET", "/healthz").status == 200

        wait_for(f"the service on port {self.port}", healthy)
        return self

    def request(
        self,
        method: str,
        path: str = "/",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            payload = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
        finally:
            conn.close()

    def post(self, doc: Doc | str) -> Reply:
        body = doc if isinstance(doc, str) else json.dumps(doc)
        return self.request("POST", "/", body, {"Content-Type": "application/json"})

    def raw(self, data: bytes, *, timeout: float = 10.0) -> bytes:
        """Send ``data`` and read until the server closes the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def upload(self, data: bytes, *, timeout: float = 10.0) -> Upload:
        """Send ``data`` while reading, as curl does: stop sending once an answer starts to
        arrive, then read until the server closes. Unlike ``raw`` this never blocks in a send
        while the answer waits, so with a ``data`` larger than the socket buffers the server
        certainly has unread request bytes when it answers: what the client then gets (a
        whole answer and a clean close, or an RST) is decided by the server alone."""
        view = memoryview(data)
        sent = 0
        answer = bytearray()
        both = selectors.EVENT_READ | selectors.EVENT_WRITE
        deadline = time.monotonic() + timeout
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s,
            selectors.DefaultSelector() as sel,
        ):
            s.setblocking(False)
            sel.register(s, both)
            while (left := deadline - time.monotonic()) > 0:
                for _key, events in sel.select(left):
                    try:
                        if events & selectors.EVENT_READ:
                            chunk = s.recv(65536)
                            if not chunk:
                                return Upload(bytes(answer), sent, "eof")
                            answer += chunk
                            sel.modify(s, selectors.EVENT_READ)  # the answer came: stop sending
                        else:
                            sent += s.send(view[sent : sent + 256 * 1024])
                            if sent == len(view):
                                sel.modify(s, selectors.EVENT_READ)
                    except ConnectionResetError:
                        return Upload(bytes(answer), sent, "reset")
                    except BrokenPipeError:
                        return Upload(bytes(answer), sent, "broken pipe")
        return Upload(bytes(answer), sent, "timeout")

    def oracle(self) -> pymongo.collection.Collection[Doc]:
        """The service's collection, read with pymongo directly."""
        return self.mongo.client().demo[self.collection]

    def stop(self) -> int | None:
        return self.proc.stop()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``sock``: one recv() returns whatever has arrived, which may be less
    than what the server wrote in one piece."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data


def recv_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length from a kept-alive connection, nothing more."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += recv_exactly(sock, 1)
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:-2])
    return head + recv_exactly(sock, int(fields[b"Content-Length"]))


def kill_quietly(*procs: Any) -> None:
    for proc in procs:
        try:
            proc.stop()
        except Exception:
            pass


def env_without_mongo_link() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MONGO_PORT")}
