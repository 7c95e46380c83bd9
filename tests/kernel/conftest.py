"""Fixtures for the attach tests (test_attach.py); the lab itself is in attachlab.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.attachlab import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root")
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
