"""One database server and one web server for the session; tests that stop, crash or
reconfigure a server start their own. Every test that reads documents starts from an empty
collection (``clean``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from service.birthdayslab import Doc, Mongo, Service


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("birthdays")


@pytest.fixture(scope="session")
def mongo(workdir: Path) -> Iterator[Mongo]:
    server = Mongo(workdir / "db").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def service(mongo: Mongo, workdir: Path) -> Iterator[Service]:
    svc = Service(mongo, workdir, collection="session").start()
    yield svc
    assert svc.proc.alive(), f"the session's service died:\n{svc.proc.output()[-3000:]}"
    assert svc.stop() == 0
    assert "Traceback" not in svc.proc.output(), svc.proc.output()[-3000:]


@pytest.fixture
def oracle(service: Service) -> Iterator[pymongo.collection.Collection[Doc]]:
    with service.mongo.client() as client:
        yield client.demo[service.collection]


@pytest.fixture
def clean(oracle: pymongo.collection.Collection[Doc]) -> None:
    oracle.delete_many({})
