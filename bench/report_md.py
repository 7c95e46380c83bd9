"""The report's Markdown tables and plots (bench/report.py and its sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["PLOTS", "Json", "fmt", "plt", "save", "table"]

Json = dict[str, Any]
PLOTS = Path(__file__).resolve().parent / "plots"  # report.py moves it for a quick run


def fmt(value: object, digits: int = 1) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits if abs(value) >= 10 else 2}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def table(head: list[str], rows: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def save(fig: Any, name: str) -> str:
    PLOTS.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOTS / name, dpi=100)
    plt.close(fig)
    return f"![{name}](plots/{name})"  # relative to REPORT.md, which sits beside plots/
