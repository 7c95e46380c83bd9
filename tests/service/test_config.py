"""Configuration as in the article (positional arguments, link variables, a URI), the CLI's
one-line errors, the database launcher, and the rule that birthdays never imports netplumb."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from birthdays import config as cfg
from birthdays.errors import ConfigError
from birthdays.mongo import MongoOptions, command
from service.birthdayslab import (
    BIRTHDAYS,
    ROOT,
    Mongo,
    Service,
    env_without_mongo_link,
    free_port,
    wait_for,
)

LINK = {cfg.ENV_ADDR: "172.17.0.2", cfg.ENV_PORT: "27017"}


@pytest.mark.parametrize(
    ("positional", "uri", "env", "expected"),
    [
        ([], None, {}, ("mongodb://127.0.0.1:27017/", True, "default")),
        (["10.0.0.5", "27018"], None, LINK, ("mongodb://10.0.0.5:27018/", True, "arguments")),
        (["db.example"], None, {}, ("mongodb://db.example:27017/", True, "arguments")),
        (["fd00::5", "27017"], None, {}, ("mongodb://[fd00::5]:27017/", True, "arguments")),
        ([], None, LINK, ("mongodb://172.17.0.2:27017/", True, cfg.ENV_ADDR)),
        (
            [],
            None,
            {cfg.ENV_ADDR: "172.17.0.2"},
            ("mongodb://172.17.0.2:27017/", True, cfg.ENV_ADDR),
        ),
        (
            [],
            None,
            {cfg.ENV_ADDR: "", cfg.ENV_PORT: "1"},
            ("mongodb://127.0.0.1:27017/", True, "default"),
        ),
        (
            [],
            "mongodb://a,b/?replicaSet=rs",
            LINK,
            ("mongodb://a,b/?replicaSet=rs", False, "--mongo-uri"),
        ),
    ],
)
def test_where_the_database_is(
    positional: list[str], uri: str | None, env: dict[str, str], expected: tuple[str, bool, str]
) -> None:
    target = cfg.resolve_mongo(positional, uri, env)
    assert (target.uri, target.direct, target.source) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "http"], "birthdays: port: invalid port: 'http'"),
        (["serve", "8080", "db", "99999"], "birthdays: database port: invalid port: '99999'"),
        (["serve", "8080", "db", "1", "extra"], "birthdays: too many arguments: extra"),
        (["serve", "8080", "db", "--mongo-uri", "mongodb://x/"],
         "birthdays: give the database as --mongo-uri or as ADDR PORT, not both"),
        (["serve", "--mongo-uri", "http://x/"], "birthdays: --mongo-uri: not a MongoDB URI: 'http://x/'"),
        (["serve", "--max-body", "3000000"], "birthdays: --max-body: must be 1..2097152 bytes"),
        (["serve", "--workers", "0"], "birthdays: --workers: must be 1..64"),
        (["serve", "--write-concern", "0"],
         "birthdays: --write-concern: expected a number >= 1 or 'majority', not '0'"),
        (["serve", "--database", "a.b"], "birthdays: --database: invalid name: 'a.b'"),
        (["serve", "--collection", "system.x"],
         "birthdays: --collection: invalid name: 'system.x'"),
        (["mongo", "--port", "0"], "birthdays: --port: invalid port: '0'"),
        (["mongo", "--engine", "mongod"], "birthdays: cannot start mongod: not installed (no mongod in PATH)"),  # noqa: E501
    ],
)  # fmt: skip
def test_cli_errors_are_one_line(argv: list[str], message: str) -> None:
    env = {**env_without_mongo_link(), "PATH": os.path.dirname(sys.executable)}
    out = subprocess.run([BIRTHDAYS, *argv], capture_output=True, text=True, env=env, timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (
        1 if "mongod" in message else 2,
        "",
        message + "\n",
    )


def test_port_taken_is_a_one_line_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run(
            [BIRTHDAYS, "serve", str(port), "--listen", "127.0.0.1"], capture_output=True, text=True
        )
    assert out.returncode == 2
    assert out.stderr == f"birthdays: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_the_dockerfile_command_line_with_link_variables(mongo: Mongo, tmp_path: Path) -> None:
    # deploy/docker/webserver.Dockerfile's CMD, in the shell form that expands the variables.
    dockerfile = (ROOT / "deploy" / "docker" / "webserver.Dockerfile").read_text()
    (cmd,) = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    port = free_port()
    shell = cmd.removeprefix("CMD ").replace("birthdays serve 8080", f"{BIRTHDAYS} serve {port}")
    shell += " --listen 127.0.0.1 --collection dockercmd"
    env = {**env_without_mongo_link(), cfg.ENV_ADDR: "127.0.0.1", cfg.ENV_PORT: str(mongo.port)}
    log = (tmp_path / "cmd.log").open("wb")
    proc = subprocess.Popen(["sh", "-c", shell], env=env, stdout=log, stderr=log)
    svc = Service(mongo, tmp_path, collection="dockercmd", port=port)
    try:
        wait_for("the service", lambda: svc.request("GET", "/healthz").status == 200)
        svc.oracle().delete_many({})
        assert svc.post({"name": "Albert Einstein", "birthday": "14.03.1879"}).status == 201
        assert svc.request("GET", "/").body == b"name = Albert Einstein, birthday = 14.03.1879\n"
        text = (tmp_path / "cmd.log").read_text()
        # The shell expanded the link variables into the article's positional arguments.
        assert f"database mongodb://127.0.0.1:{mongo.port}/ (from arguments)" in text
    finally:
        proc.terminate()  # `exec` in the CMD: the service itself gets SIGTERM, and exits 0
        assert proc.wait(timeout=30) == 0


def test_launcher_prefers_mongod_when_installed(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "mongod"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    data = tmp_path / "data"
    out = subprocess.run(
        [BIRTHDAYS, "mongo", "--port", "27999", "--data", str(data)], env=env, timeout=30
    )
    assert out.returncode == 0
    assert (tmp_path / "args").read_text() == f"--port 27999 --dbpath {data} --bind_ip 127.0.0.1\n"
    assert data.is_dir()


def test_launcher_falls_back_to_secantusdb() -> None:
    argv = command(MongoOptions(27017, "0.0.0.0", "/data/db", "secantus"))
    assert argv[1:] == ["-m", "birthdays.secantusd", "--host", "0.0.0.0", "--port", "27017",
                        "--storage-path", "/data/db"]  # fmt: skip


def test_check_refuses_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="--max-body"):
        cfg.check(cfg.ServeConfig(max_body=0))
    assert cfg.check(cfg.ServeConfig()) == cfg.ServeConfig()


def test_birthdays_never_imports_netplumb() -> None:
    # Statically: no module of the package names netplumb in an import.
    for path in (ROOT / "src" / "birthdays").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "netplumb" for n in names), (path, names)
    # And at run time, with every module loaded.
    code = (
        "import sys, birthdays.cli, birthdays.server, birthdays.app, birthdays.store, "
        "birthdays.mongo; print(sorted(m for m in sys.modules if m.startswith('netplumb')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"
