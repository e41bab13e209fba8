"""Printing `rewards check` reports as a rich table (numbers as computed by `rewards.check`)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

COLUMNS = [("mean_correct", "mean right"), ("mean_incorrect", "mean wrong"), ("auc", "AUC"),
           ("rewards_wrong", "rewards wrong"), ("punishes_right", "punishes right"),
           ("zero_variance_groups", "0-var groups"), ("unscored", "unscored")]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def print_check_report(report: dict[str, dict[str, Any]], console: Console | None = None) -> None:
    """One row per reward; flagged rewards in red."""
    table = Table(title="reward check")
    table.add_column("reward")
    for _, header in COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("verdict")
    for name, row in report.items():
        verdict = "[bold red]FLAG[/]" if row["verdict"] == "FLAG" else "[green]ok[/]"
        table.add_row(escape(name), *(_cell(row[key]) for key, _ in COLUMNS), verdict)
    console = console or Console(width=140)
    console.print(table)
    for name, row in report.items():
        if row.get("judge"):
            console.print(f"{name} judge: " + ", ".join(f"{k}={v}" for k, v in row["judge"].items()), highlight=False,
                          markup=False)
