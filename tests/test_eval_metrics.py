"""Eval statistics and reports: pass@k against the combinatorial definition, repeat averaging,
grouping, first vs second try, markdown tables, comparisons and plots."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove.eval.metrics import (
    attempt_table,
    grouped,
    mean_std,
    over_repeats,
    pass_at_k,
    pass_at_k_table,
)
from selfimprove.eval.report import (
    compare_runs,
    format_cell,
    markdown_compare,
    markdown_report,
    write_run_plots,
)
from selfimprove.eval.summary import headline, summarize_run


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_the_combinatorial_definition(ncK):
    n, c, k = ncK
    expected = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    # C(5000, 2500) does not fit in a float; the product form still gives k/n for c = 1.
    assert pass_at_k(5000, 1, 2500) == pytest.approx(0.5)
    assert pass_at_k(5000, 0, 10) == 0.0


@pytest.mark.parametrize("n,c,k", [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def rows(values, level="easy", model="m"):
    """values[repeat][example] -> (f1, correct)."""
    return [{"model": model, "repeat": r, "example_id": f"q{i}", "level": level, "type": "bridge",
             "score": f1, "correct": ok, "metrics": {"f1": f1, "em": float(ok)}}
            for r, per_example in enumerate(values) for i, (f1, ok) in enumerate(per_example)]


def test_over_repeats_averages_within_a_repeat_then_across_repeats():
    data = rows([[(1.0, True), (0.0, False)], [(0.5, False), (0.5, False)], [(0.0, False), (0.0, False)]])
    stats = over_repeats(data, lambda r: r["metrics"])
    assert stats["f1"]["mean"] == pytest.approx(1 / 3)  # repeat means 0.5, 0.5, 0.0
    assert stats["f1"]["std"] == pytest.approx(math.sqrt(1 / 12))  # sample std of (0.5, 0.5, 0)
    assert stats["em"]["mean"] == pytest.approx(1 / 6)


def test_grouped_orders_levels_and_adds_all():
    data = rows([[(1.0, True)]], level="hard") + rows([[(0.0, False)]], level="easy")
    data[1]["example_id"] = "other"
    groups = grouped(data, "level")
    assert list(groups) == ["easy", "hard", "all"]
    assert groups["hard"]["metrics"]["f1"]["mean"] == 1.0
    assert groups["all"]["metrics"]["f1"]["mean"] == 0.5
    assert groups["all"]["count"] == 2


def test_mean_std_of_nothing_is_nan_with_n_zero():
    stats = mean_std([])
    assert stats["n"] == 0 and math.isnan(stats["mean"])


def test_pass_at_k_table_over_repeats_of_each_example():
    data = rows([[(1, True), (0, False)], [(0, False), (0, False)], [(1, True), (0, False)]])
    table = pass_at_k_table(data)
    assert table["1"] == pytest.approx((2 / 3 + 0) / 2)
    assert table["3"] == pytest.approx(0.5)
    assert set(table) == {"1", "2", "3"}


def test_attempt_table_second_try_only_adds_failed_first_tries():
    data = [{"repeat": 0, "example_id": "a", "attempts": [{"correct": False}, {"correct": True}]},
            {"repeat": 0, "example_id": "b", "attempts": [{"correct": True}, {"correct": False}]},
            {"repeat": 0, "example_id": "c", "attempts": [{"correct": False}, {"correct": False}]},
            {"repeat": 0, "example_id": "d", "attempts": [{"correct": False}]}]
    table = attempt_table(data)
    assert table["first_try"]["mean"] == pytest.approx(0.25)
    assert table["second_try"]["mean"] == pytest.approx(0.5)
    assert attempt_table([{"repeat": 0, "example_id": "x"}]) is None


def two_model_summary():
    easy = rows([[(0.5, False)], [(0.7, True)]], "easy", "A") + rows([[(1.0, True)], [(1.0, True)]], "easy", "B")
    hard = rows([[(0.1, False)], [(0.1, False)]], "hard", "A") + rows([[(0.4, False)], [(0.2, False)]], "hard", "B")
    for row in hard:
        row["example_id"] = "h"
    behaviour = {"A": [{"repeated_query_rate": 0.5}, {"repeated_query_rate": 0.25}]}
    return summarize_run(easy + hard, {"task": "hotpotqa", "repeats": 2}, behaviour)


def test_markdown_report_has_the_araft_table_with_mean_and_std():
    text = markdown_report(two_model_summary())
    assert "| model | easy (n=1) | hard (n=1) | all (n=2) |" in text
    assert "| A | 60.0 ± 14.1 | 10.0 ± 0.0 | 35.0 ± 7.1 |" in text
    assert "| B | 100.0 ± 0.0 | 30.0 ± 14.1 | 65.0 ± 7.1 |" in text
    assert "## EM by level" in text and "SCORE by level" not in text
    assert "| repeated_query_rate | 0.38 ± 0.18 | - |" in text
    assert "pass@2" in text


def test_a_task_without_levels_or_types_shows_all_only():
    rows = [{"model": "m", "repeat": 0, "example_id": str(i), "level": None, "type": None, "score": float(i % 2),
             "correct": bool(i % 2)} for i in range(4)]
    text = markdown_report(summarize_run(rows, {"task": "countdown", "repeats": 1}))
    assert "| model | all (n=4) |" in text and "| m | 50.0 ± 0.0 |" in text
    assert "unknown" not in text and "by question type" not in text


def test_format_cell_and_headline():
    assert format_cell(None, True) == "-"
    assert format_cell({"mean": 0.5, "std": 0.25, "n": 2}, True) == "50.0 ± 25.0"
    assert headline(two_model_summary(), "B") == pytest.approx(0.65)


def test_compare_reports_b_minus_a_per_level():
    summary = two_model_summary()
    only_a = {"models": {"A": summary["models"]["A"]}}
    only_b = {"models": {"B": summary["models"]["B"]}}
    comparison = compare_runs([("run-a", only_a), ("run-b", only_b)])
    delta = comparison["rows"][1]["delta"]
    assert delta["easy"] == pytest.approx(0.4) and delta["all"] == pytest.approx(0.3)
    text = markdown_compare(comparison)
    assert "| run-b | B | 100.0 (+40.0) | 30.0 (+20.0) | 65.0 (+30.0) |" in text


def test_plots_are_png_files(tmp_path):
    paths = write_run_plots(two_model_summary(), tmp_path)
    assert [p.name for p in paths] == ["levels.png", "pass_at_k.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
