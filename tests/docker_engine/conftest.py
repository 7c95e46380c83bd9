"""Fixtures of the Docker engine tests: ``engine``, a private dockerd (privatedockerd.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from docker_engine.privatedockerd import Engine, private_engine


@pytest.fixture
def engine() -> Iterator[Engine]:
    yield from private_engine()
