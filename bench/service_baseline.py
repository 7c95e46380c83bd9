"""The article's webserver.py in Python 3, the baseline of bench/service.py.

The original's design kept as it was: ``http.server`` single-threaded (one request at a time,
HTTP/1.0, a new connection per request), synchronous pymongo with one ``insert`` per POST and
the driver's default write concern (w:1, not journaled: weaker than the service's), and a GET
that writes one line at a time to the unbuffered socket. The only changes are Python 3
spellings, ``insert_one`` for the removed ``insert``, and ``retryWrites=false`` so that
secantusdb 0.7's slowdown under retryable writes (docs/service.md) does not handicap it.

Usage: python bench/service_baseline.py PORT MONGO_ADDR MONGO_PORT
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pymongo
from pymongo.collection import Collection


class ServerHandler(BaseHTTPRequestHandler):
    server: BaselineServer

    def do_POST(self) -> None:
        data_len = int(self.headers["Content-Length"])
        data = self.rfile.read(data_len)
        self.server.collection.insert_one(json.loads(data))
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-type", "text/plain")
        self.end_headers()
        for e in self.server.collection.find():
            line = ", ".join(f"{k} = {e[k]}" for k in e if k != "_id")
            self.wfile.write(f"{line}\n".encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the original logged every request to stderr; that cost is not the design


class BaselineServer(HTTPServer):
    def __init__(self, port: int, collection: Collection[dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", port), ServerHandler)
        self.collection = collection


def main(argv: list[str]) -> None:
    port, mongo_addr, mongo_port = int(argv[1]), argv[2], int(argv[3])
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_addr, mongo_port, retryWrites=False
    )
    server = BaselineServer(port, client.demo.birthdays)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv)
