"""Fixtures of the kernel tests: the attach lab (attachlab.py) and the simulated LAN (lanlab.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.attachlab import Lab
from kernel.lanlab import LanLab
from kernel.nameslab import NamesLab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root")
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[LanLab]:
    lab = LanLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def names(tmp_path: Path) -> Iterator[NamesLab]:
    lab = NamesLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
