"""The ``birthdays`` command: ``serve`` (the web service) and ``mongo`` (a database server).

::

    birthdays serve [PORT [ADDR [DBPORT]]] [--mongo-uri URI] [--workers N] ...
    birthdays mongo [--port 27017] [--data DIR] [--host ADDR] [--engine auto|mongod|secantus]

``serve 8080 $MONGO_PORT_27017_TCP_ADDR $MONGO_PORT_27017_TCP_PORT`` is the article's command
line; with empty link variables the shell drops the words and the environment is read instead.
Errors print one line and exit non-zero; ``--debug`` shows the trace.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from birthdays import config as cfg
from birthdays.errors import BirthdaysError, ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="birthdays", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web service")
    serve.add_argument("port", nargs="?", default="8080", help="HTTP port (8080)")
    serve.add_argument(
        "db",
        nargs="*",
        metavar="ADDR [DBPORT]",
        help="database address and port (as the article's script)",
    )
    serve.add_argument("--mongo-uri", help="database as a MongoDB URI")
    serve.add_argument("--listen", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    serve.add_argument("--workers", type=int, default=1, help="processes (1)")
    serve.add_argument("--database", default="demo")
    serve.add_argument("--collection", default="birthdays")
    serve.add_argument(
        "--max-body",
        type=int,
        default=cfg.MIB,
        help=f"largest request body in bytes ({cfg.MIB}; at most {cfg.MAX_BODY_CEILING})",
    )
    serve.add_argument(
        "--db-timeout",
        type=float,
        default=2.0,
        help="seconds to find the database before answering 503 (2)",
    )
    serve.add_argument(
        "--write-concern",
        default="1",
        help="w of the journaled write concern: a number or 'majority' (1)",
    )
    serve.add_argument(
        "--batch-docs", type=int, default=1000, help="most documents in one group commit (1000)"
    )
    serve.add_argument(
        "--stream-batch",
        type=int,
        default=1000,
        help="documents per database batch when streaming (1000)",
    )
    serve.add_argument(
        "--db-reads",
        type=int,
        default=1,
        help="database reads in flight at once per process; GETs take turns per batch (1)",
    )
    serve.add_argument("--max-connections", type=int, default=1024)
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=25.0,
        help="seconds to finish requests after SIGTERM (25)",
    )
    serve.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="event loop: uvloop when installed (auto), or asyncio's own",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    mongo = sub.add_parser("mongo", help="run a MongoDB-compatible database server")
    mongo.add_argument("--port", default="27017")
    mongo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    mongo.add_argument("--data", default="mongo-data", help="data directory (./mongo-data)")
    mongo.add_argument("--engine", default="auto", choices=["auto", "mongod", "secantus"])
    return parser


def serve_config(args: argparse.Namespace, env: dict[str, str]) -> cfg.ServeConfig:
    return cfg.check(
        cfg.ServeConfig(
            port=cfg.parse_port(args.port, "port"),
            listen=args.listen,
            mongo=cfg.resolve_mongo(args.db, args.mongo_uri, env),
            database=args.database,
            collection=args.collection,
            workers=args.workers,
            max_body=args.max_body,
            db_timeout=args.db_timeout,
            write_concern=cfg.parse_write_concern(args.write_concern),
            batch_docs=args.batch_docs,
            stream_batch=args.stream_batch,
            db_reads=args.db_reads,
            max_connections=args.max_connections,
            shutdown_timeout=args.shutdown_timeout,
            loop=args.loop,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "mongo":
            from birthdays import mongo

            port = cfg.parse_port(args.port, "--port")
            mongo.run(mongo.MongoOptions(port, args.host, args.data, args.engine))
            return 0
        config = serve_config(args, dict(os.environ))
        logging.basicConfig(
            level=args.log_level, format="%(asctime)s birthdays[%(process)d] %(message)s"
        )
        from birthdays import server

        return server.run(config)
    except BirthdaysError as exc:
        if args.debug:
            raise
        print(f"birthdays: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ConfigError", "main"]
