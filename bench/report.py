"""Rows of results: percentiles, the printed table and the JSON form."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
    }


@dataclass
class Row:
    """One measurement: samples of Timestep, and of its baseline when there is one."""

    scenario: str
    metric: str
    unit: str
    samples: list[float]
    baseline_name: str = ""
    baseline: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        base = statistics.median(self.baseline)
        return self.median / base if base else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "scenario": self.scenario,
            "metric": self.metric,
            "unit": self.unit,
            **summary(self.samples),
        }
        if self.baseline:
            data["baseline"] = {"name": self.baseline_name, **summary(self.baseline)}
            data["ratio"] = self.ratio
        if self.note:
            data["note"] = self.note
        return data


HEADER = (
    f"{'scenario':<11} {'measure':<46} {'unit':<9} {'n':>5} {'median':>10} {'p95':>10} {'p99':>10} "
    f"{'baseline':>10} {'ratio':>7}  baseline is"
)


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_row(row: Row) -> str:
    stats = summary(row.samples)
    base = _number(statistics.median(row.baseline)) if row.baseline else "-"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    return (
        f"{row.scenario:<11} {row.metric:<46} {row.unit:<9} {stats['n']:>5} {_number(stats['median']):>10} "
        f"{_number(stats['p95']):>10} {_number(stats['p99']):>10} {base:>10} {ratio:>7}  {row.baseline_name}"
    )


def table(rows: list[Row]) -> str:
    return "\n".join([HEADER, "-" * len(HEADER), *(format_row(row) for row in rows)])
