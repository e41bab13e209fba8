"""The paired bootstrap (`selfimprove.eval.significance`) and its use in `report compare` and the RRR table:
golden cases, determinism, the normal approximation, swap symmetry, and the tables' CI/verdict columns."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove.eval.compare import compare_files
from selfimprove.eval.significance import bootstrap_mean, example_values, paired_bootstrap
from selfimprove.eval.summary import summarize_run


def test_all_equal_runs_have_a_zero_interval_and_no_verdict():
    a = {str(i): [float(i % 2)] for i in range(20)}
    change = paired_bootstrap(a, a)
    assert (change.diff, change.low, change.high, change.verdict) == (0.0, 0.0, 0.0, "within noise")
    assert change.n_examples == 20 and change.n_dropped == 0


def test_a_clear_gain_a_clear_loss_and_ties():
    a = {str(i): [0.0] for i in range(30)}
    b = {str(i): [1.0 if i < 25 else 0.0] for i in range(30)}
    gain = paired_bootstrap(a, b)
    assert gain.verdict == "gain" and gain.low > 0 and gain.diff == pytest.approx(25 / 30)
    assert paired_bootstrap(b, a).verdict == "loss"
    ties = {str(i): [1.0 if i in (0, 1) else 0.0] for i in range(30)}  # 2 fixed, 2 broken: a tie
    tie_b = {str(i): [1.0 if i in (2, 3) else 0.0] for i in range(30)}
    tie = paired_bootstrap(ties, tie_b)
    assert tie.diff == 0.0 and tie.low < 0 < tie.high and tie.verdict == "within noise"


def test_repeats_are_averaged_within_an_example_and_unpaired_examples_dropped():
    a = {"x": [0.0, 1.0], "y": [0.0, 0.0], "only-a": [1.0]}
    b = {"x": [1.0], "y": [1.0, 1.0, 1.0], "only-b": [0.0]}
    change = paired_bootstrap(a, b)
    assert change.mean_a == pytest.approx(0.25) and change.mean_b == 1.0
    assert change.n_examples == 2 and change.n_dropped == 2


def test_one_example_is_never_a_gain():
    change = paired_bootstrap({"x": [0.0]}, {"x": [1.0]})
    assert change.diff == 1.0 and change.low is None and change.verdict == "within noise"


def test_deterministic_under_the_seed():
    rng = np.random.default_rng(3)
    a = {str(i): [float(v)] for i, v in enumerate(rng.random(50))}
    b = {str(i): [float(v)] for i, v in enumerate(rng.random(50))}
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    assert paired_bootstrap(a, b, seed=7).low != paired_bootstrap(a, b, seed=8).low


def test_binary_metric_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    n = 2000
    a = rng.random(n) < 0.30
    b = rng.random(n) < 0.36
    change = paired_bootstrap({str(i): [float(v)] for i, v in enumerate(a)}, {str(i): [float(v)] for i, v in enumerate(b)})
    d = b.astype(float) - a.astype(float)
    half = 1.96 * d.std(ddof=1) / math.sqrt(n)
    assert change.low == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert change.high == pytest.approx(d.mean() + half, abs=0.1 * half)
    assert change.verdict == "gain"
    single = bootstrap_mean({str(i): [float(v)] for i, v in enumerate(b)})
    p = b.mean()
    assert single["high"] - single["low"] == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n), rel=0.1)


values = st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=25)


@settings(deadline=None, max_examples=40)
@given(st.tuples(values, values).map(lambda ab: (ab[0], (ab[1] * 25)[:len(ab[0])])))
def test_interval_holds_the_difference_and_swapping_negates_it(ab):
    a = {str(i): [v] for i, v in enumerate(ab[0])}
    b = {str(i): [v] for i, v in enumerate(ab[1])}
    forward, backward = paired_bootstrap(a, b, n_boot=500), paired_bootstrap(b, a, n_boot=500)
    assert forward.low - 1e-12 <= forward.diff <= forward.high + 1e-12
    assert backward.diff == pytest.approx(-forward.diff, abs=1e-12)
    assert backward.low == pytest.approx(-forward.high, abs=1e-9)
    assert backward.high == pytest.approx(-forward.low, abs=1e-9)
    assert {forward.verdict, backward.verdict} in ({"within noise"}, {"gain", "loss"})


def test_example_values_for_pass_at_k_and_tries():
    rows = [{"example_id": "a", "repeat": r, "correct": c, "attempts": [{"correct": c}, {"correct": True}]}
            for r, c in enumerate([False, True, False])]
    assert example_values(rows, "pass@2") == {"a": [pytest.approx(1 - 1 / 3)]}
    assert example_values(rows, "first_try") == {"a": [0.0, 1.0, 0.0]}
    assert example_values(rows, "second_try") == {"a": [1.0, 1.0, 1.0]}


def test_agent_behaviour_per_episode_is_compared_with_intervals(tmp_path):
    """A multi-turn agent's rows carry each episode's behaviour; compare pairs the episodes by question."""
    from selfimprove.eval.records import eval_rows

    def episode(i, repeats_query):
        steps = [{"action": "search"}, {"action": "search"}, {"action": "answer" if i % 2 else "invalid"}]
        return {"example_id": str(i), "level": "easy", "final_answer": "x" if i % 2 else None, "steps": steps,
                "flags": {"parse_errors": 0 if i % 2 else 1, "repeated_queries": int(repeats_query)},
                "score": {"value": 0.0, "breakdown": {"f1": 0.0}}}

    runs = []
    for name, repeating in (("sft", True), ("dpo", False)):
        rows = [row for r in range(3) for row in eval_rows([episode(i, repeating) for i in range(30)], "m", r, agent=True)]
        path = tmp_path / name
        path.mkdir()
        (path / "records.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        (path / "summary.json").write_text(json.dumps(summarize_run(rows, {"task": "hotpotqa"})))
        runs.append(str(path))
    assert rows[1]["behaviour"] == {"answered": 1.0, "parse_error_share": 0.0, "repeated_query_share": 0.0}
    assert eval_rows([episode(0, True)], "m", 0)[0].get("behaviour") is None  # single-turn rows: none
    text, _ = compare_files(runs, metric="f1", out=str(tmp_path / "cmp"))
    # fewer repeated queries is the better way: a fall whose interval excludes 0 is a gain
    assert "| dpo | m | repeated_query_share (lower is better) | all | 50.0 | 0.0 | -50.0 | [-50.0, -50.0] | 30 | gain |" in text
    assert "| dpo | m | parse_error_share (lower is better) | all | 16.7 | 16.7 | +0.0 |" in text
    assert "| dpo | m | answered | all | 50.0 | 50.0 | +0.0 |" in text


def write_run(path, correct_ids, n=40, repeats=2, level=None):
    """An eval dir (records.jsonl + summary.json) of a Countdown-like task: score = correct."""
    records = [{"model": "m", "repeat": r, "example_id": str(i), "level": level, "type": None,
                "score": float(i in correct_ids), "correct": i in correct_ids, "metrics": {}}
               for r in range(repeats) for i in range(n)]
    path.mkdir(parents=True)
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "summary.json").write_text(json.dumps(summarize_run(records, {"task": "countdown"})))
    return str(path)


def test_compare_table_has_intervals_verdicts_and_no_unknown_level(tmp_path):
    a = write_run(tmp_path / "before", set(range(4)))
    b = write_run(tmp_path / "after", set(range(30)))
    c = write_run(tmp_path / "same", {0, 1, 2, 5})
    text, written = compare_files([a, b, c], metric="score", out=str(tmp_path / "cmp"))
    assert "| run | model | all |" in text and "unknown" not in text
    assert "| after | m | score | all | 10.0 | 75.0 | +65.0 |" in text and "| 40 | gain |" in text
    assert "| same | m | score | all | 10.0 | 10.0 | +0.0 |" in text and "| within noise |" in text
    assert "| after | m | pass@2 | all |" in text
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["levels"] == ["all"]
    change = data["rows"][1]["change"]["all"]
    assert change["verdict"] == "gain" and 0 < change["low"] < change["diff"] < change["high"]
    assert data["rows"][0]["interval"]["all"]["n"] == 40 and "delta" in data["rows"][1]
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_without_records_keeps_the_table_of_means(tmp_path):
    a = write_run(tmp_path / "a", {0})
    b = write_run(tmp_path / "b", {0, 1})
    (tmp_path / "b" / "records.jsonl").unlink()
    text, _ = compare_files([a, b], metric="score")
    assert "| run | model | all |" in text and "| b | m | 5.0 (+2.5) |" in text and "95% CI" not in text


def test_rrr_table_gives_intervals_and_the_change_with_a_verdict():
    from selfimprove.eval.reflection import accuracy_summary, four_number_table

    def result(first, second):
        records = [{"example_id": str(i), "first_correct": f, "retry_correct": s}
                   for i, (f, s) in enumerate(zip(first, second, strict=True))]
        return {**accuracy_summary(first, [f or s for f, s in zip(first, second, strict=True)]), "records": records}

    n = 60
    before = result([i < 6 for i in range(n)], [i < 9 for i in range(n)])
    after = result([i < 30 for i in range(n)], [i < 9 for i in range(n)])
    table = four_number_table(before, after, "demo")
    assert "| vanilla | 60 | 10.0 [" in table and "| RRR-trained | 60 | 50.0 [" in table
    assert "| first try | 10.0 | 50.0 | +40.0 |" in table and "| gain |" in table
    assert "| second try (+reflection) | 15.0 | 50.0 | +35.0 |" in table


def test_too_few_examples_are_never_a_gain_even_with_a_zero_width_interval():
    few = paired_bootstrap({i: [0.0] for i in "abc"}, {i: [1.0] for i in "abc"})
    assert (few.low, few.high, few.verdict) == (1.0, 1.0, "within noise")
    assert paired_bootstrap({i: [0.0] for i in "abcdef"}, {i: [1.0] for i in "abcdef"}).verdict == "gain"


def test_overall_changes_judge_every_shared_metric(tmp_path):
    from selfimprove.eval.compare import overall_changes

    a = write_run(tmp_path / "before", set(range(4)))
    b = write_run(tmp_path / "after", set(range(30)))
    changes = {(model, metric): c for model, metric, c in overall_changes(a, b)}
    assert set(changes) == {("m", "correct"), ("m", "score")}
    assert changes["m", "correct"]["verdict"] == "gain" and changes["m", "correct"]["n_examples"] == 40


def test_no_shared_example_is_plain_json():
    change = paired_bootstrap({"a": [1.0]}, {"b": [0.0]})
    assert json.loads(json.dumps(change.to_dict(), allow_nan=False))["diff"] is None
    assert (change.n_examples, change.n_dropped, change.verdict) == (0, 2, "within noise")
