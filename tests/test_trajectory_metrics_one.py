"""`agent run`, `eval` and `distill` summarise one trajectories file with the same numbers.

One file holds an answered-right, an answered-wrong, a step-limit (with a repeated query), a
parse-error-then-answer and a single-turn unanswered episode (flagged finished, as single-turn
eval writes it, but with no answer). Each command's summarising library function reads it; the
shared keys must agree, and each number is pinned to its golden value.
"""

from __future__ import annotations

import pytest

from selfimprove.data.jsonl import read_jsonl
from selfimprove.data.trajectory import Flags, Step, Trajectory, read_trajectories, write_trajectories
from selfimprove.data.trajectory_metrics import trajectory_metrics
from selfimprove.eval.records import behaviour_by_repeat, eval_rows
from selfimprove.eval.summary import summarize_run
from selfimprove.workflows.distill import DistillConfig, summarize_distillation

GOLDEN = {
    "episodes": 5, "answered": 3, "step_limit": 1, "steps": 9, "searches": 4, "parse_errors": 2,
    "repeated_queries": 1, "answered_rate": 0.6, "step_limit_rate": 0.2, "steps_per_episode": 1.8,
    "searches_per_episode": 0.8, "parse_error_rate": 0.2222, "episodes_with_parse_error": 0.4,
    "repeated_query_rate": 0.25, "episodes_with_repeat": 0.2, "mean_score": 0.2, "accuracy": 0.2,
    "mean_f1": 0.3, "breakdown": {"em": 0.2, "f1": 0.3},
}


def step(index: int, action: str, argument: str = "", repeated: bool = False) -> Step:
    return Step(index=index, text=f"{action} {argument}", action=action, argument=argument,
                parse_error="no action found" if action == "invalid" else None, repeated_query=repeated)


def episode(example_id: str, steps: list[Step], answer: str | None, f1: float, flags: Flags,
            level: str) -> Trajectory:
    score = {"value": float(f1 == 1.0), "correct": f1 == 1.0, "breakdown": {"em": float(f1 == 1.0), "f1": f1}}
    return Trajectory("hotpotqa", example_id, 0, "Q?", "Paris", steps=steps, final_answer=answer, score=score,
                      flags=flags, level=level, model="m")


def trajectories() -> list[Trajectory]:
    return [
        episode("right", [step(0, "search", "capital"), step(1, "answer", "Paris")], "Paris", 1.0,
                Flags(finished=True), "easy"),
        episode("wrong", [step(0, "answer", "Paris France")], "Paris France", 0.5, Flags(finished=True), "easy"),
        episode("limit", [step(0, "search", "a"), step(1, "search", "a", repeated=True), step(2, "search", "b")],
                None, 0.0, Flags(repeated_queries=1, step_limit=True), "hard"),
        episode("parse", [step(0, "invalid"), step(1, "answer", "Lyon")], "Lyon", 0.0,
                Flags(parse_errors=1, finished=True), "hard"),
        episode("single", [step(0, "invalid")], None, 0.0, Flags(parse_errors=1, finished=True), "medium"),
    ]


@pytest.fixture
def path(tmp_path):
    target = tmp_path / "attempts.jsonl"
    write_trajectories(target, trajectories())
    return target


def agent_run_summary(path) -> dict:
    return trajectory_metrics(read_trajectories(path))


def eval_summary(path) -> dict:
    records = list(read_jsonl(path))
    summary = summarize_run(eval_rows(records, "m", 0), {}, {"m": [behaviour_by_repeat(records)]})
    return summary["models"]["m"]


def distill_summary(path) -> dict:
    (path.parent / "kept.jsonl").write_text(path.read_text())
    return summarize_distillation(DistillConfig.model_construct(), path.parent)["behaviour_attempts"]


def test_agent_run_reports_the_golden_numbers(path):
    assert agent_run_summary(path) == GOLDEN


def test_distill_reports_the_same_numbers(path):
    assert distill_summary(path) == agent_run_summary(path) == GOLDEN


def test_eval_behaviour_reports_the_same_numbers(path):
    behaviour = eval_summary(path)["behaviour"]
    shared = {key: value for key, value in GOLDEN.items() if key in behaviour}
    assert set(shared) == set(GOLDEN) - {"mean_score", "accuracy", "mean_f1", "breakdown"}
    assert {key: behaviour[key]["mean"] for key in shared} == pytest.approx(shared)


def test_eval_scores_match_the_score_means(path):
    metrics = eval_summary(path)["by_level"]["all"]["metrics"]
    assert metrics["score"]["mean"] == pytest.approx(GOLDEN["mean_score"])
    assert metrics["correct"]["mean"] == pytest.approx(GOLDEN["accuracy"])
    assert metrics["f1"]["mean"] == pytest.approx(GOLDEN["mean_f1"])
    assert metrics["em"]["mean"] == pytest.approx(GOLDEN["breakdown"]["em"])


def test_empty_input_gives_zero_counts_and_no_rates():
    metrics = trajectory_metrics([])
    assert metrics["episodes"] == metrics["parse_errors"] == 0
    assert metrics["parse_error_rate"] is None and metrics["answered_rate"] is None and metrics["breakdown"] == {}
