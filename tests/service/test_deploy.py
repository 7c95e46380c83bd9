"""The Docker and Kubernetes files, read as data: they cannot be built or applied here (no
registry, no cluster), so what the service relies on is checked instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from birthdays.openapi import SPEC
from service.birthdayslab import ROOT

DOCKER = ROOT / "deploy" / "docker"
KUBE = ROOT / "deploy" / "kubernetes"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = path.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0], line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_webserver_image_is_the_articles() -> None:
    steps = instructions(DOCKER / "webserver.Dockerfile")
    assert steps[0] == ("FROM", "python:3.12-slim")
    assert ("EXPOSE", "8080") in steps
    (cmd,) = [args for op, args in steps if op == "CMD"]
    assert not cmd.startswith("[")  # the shell form: only it expands the link variables
    assert cmd == "exec birthdays serve 8080 $MONGO_PORT_27017_TCP_ADDR $MONGO_PORT_27017_TCP_PORT"
    assert [args for op, args in steps if op == "USER"] == ["10001"]


def test_database_image_serves_27017_with_a_volume() -> None:
    steps = instructions(DOCKER / "database.Dockerfile")
    assert ("EXPOSE", "27017") in steps
    assert ("VOLUME", '["/data/db"]') in steps
    assert ("ENTRYPOINT", '["birthdays", "mongo", "--host", "0.0.0.0", "--port", "27017"]') in steps
    assert ("CMD", '["--data", "/data/db"]') in steps


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBE / name).read_text()) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_three_webservers_find_the_database_through_the_mongo_service() -> None:
    docs = load("database.yaml") + load("webserver.yaml")
    web = one(docs, "Deployment", "webserver")
    assert web["spec"]["replicas"] == 3
    pod = web["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # No address configured: the link variables of the `mongo` Service are the configuration.
    assert "env" not in container and "command" not in container and "args" not in container
    assert pod.get("enableServiceLinks", True) is True
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= set(SPEC["paths"])
    assert pod["terminationGracePeriodSeconds"] > 25  # the service's --shutdown-timeout

    mongo = one(docs, "Service", "mongo")  # the name makes the MONGO_PORT_27017_TCP_* vars
    assert [p["port"] for p in mongo["spec"]["ports"]] == [27017]
    db = one(docs, "Deployment", "mongodb")
    labels = db["spec"]["template"]["metadata"]["labels"]
    assert mongo["spec"]["selector"].items() <= labels.items()
    (db_container,) = db["spec"]["template"]["spec"]["containers"]
    assert db_container["ports"] == [{"name": "mongo", "containerPort": 27017}]


def test_kustomization_applies_the_database_first() -> None:
    (kustomization,) = load("kustomization.yaml")
    assert kustomization["resources"] == ["database.yaml", "webserver.yaml"]
