"""Every speed figure in the README comes from bench/results (through bench/summary.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# appended, not first: bench/dns.py must not shadow dnspython's ``dns`` for later imports
sys.path.append(str(ROOT / "bench"))

import summary  # noqa: E402

# A figure of speed: a time in ms/µs, a rate, a throughput, a decimal number of seconds, a ratio.
FIGURE = re.compile(
    r"\b\d[\d,]*(?:\.\d+)?\s?(?:ms|µs|us|Gbit/s|Mbit/s|requests/s|req/s|docs/s)\b"
    r"|\b\d+\.\d+\s?s\b|\b\d+(?:\.\d+)?x\b"
)


def test_the_readme_block_is_what_the_results_give() -> None:
    text = (ROOT / "README.md").read_text()
    block = summary.current(text)
    assert block is not None, "README.md has no speed block"
    assert block == summary.render(), "stale: run .venv/bin/python bench/summary.py"


def test_no_speed_figure_outside_the_block() -> None:
    text = (ROOT / "README.md").read_text()
    block = summary.current(text)
    assert block is not None
    outside = text.replace(block, "")
    assert FIGURE.findall(outside) == []


def test_the_block_gives_each_runs_date() -> None:
    for line in summary.render().splitlines()[1:-1]:
        assert re.search(r"\(\d{4}-\d{2}-\d{2}", line), line


def test_the_pattern_sees_figures() -> None:
    for figure in ("27-29 ms", "24 Gbit/s", "3,260 requests/s", "0.97 s", "1.8x", "16.6 ms"):
        assert FIGURE.search(figure), figure
    for text in ("--timeout 60", "SIGKILL after 10 s", "10.89.0.0/16", "port 8080"):
        assert not FIGURE.search(text), text


def test_every_path_the_readme_names_is_in_the_repository() -> None:
    """A clone has no ../shared: the README sends readers only to files of the repository."""
    text = (ROOT / "README.md").read_text()
    assert "../" not in text
    named = set(re.findall(r"`((?:src|tests|docs|examples|bench|deploy|scripts)/[\w./-]*)`", text))
    named |= set(re.findall(r"\]\(((?:docs|examples|bench|deploy)/[\w./-]+)\)", text))
    assert "docs/architecture.md" in named
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []
