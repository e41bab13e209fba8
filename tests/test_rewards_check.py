"""`selfimprove rewards list|check|rescore` and the checking library behind them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.errors import DataError, UserError
from selfimprove.rewards.check import auc, check_rewards, load_labelled, rescore_file, separation
from selfimprove.rewards.config import load_reward_set

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "rewards_check.jsonl"
BROKEN = REPO_ROOT / "examples" / "rewards_check_broken.yaml"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_list_shows_registered_rewards():
    result = invoke("rewards", "list")
    assert result.exit_code == 0
    for name in ("exact_match", "xmlcount", "search_effort", "rubric_judge", "citation"):
        assert name in result.output


def test_check_passes_good_rewards():
    result = invoke("rewards", "check", "--data", str(EXAMPLE), "--rewards", "exact_match,token_f1,xml_correctness",
                    "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"exact_match", "token_f1", "xml_correctness", "TOTAL"}
    assert all(row["verdict"] == "ok" and row["auc"] == 1.0 for row in report.values())
    assert report["xml_correctness"]["mean_correct"] == 2.0 and report["xml_correctness"]["mean_incorrect"] == 0.0


def test_check_flags_a_reward_that_pays_for_length(tmp_path):
    result = invoke("rewards", "check", "--data", str(EXAMPLE), "--config", str(BROKEN), "--json")
    assert result.exit_code == 1
    row = json.loads(result.output)["rewards_length"]
    assert row["verdict"] == "FLAG" and row["auc"] < 0.6
    assert row["rewards_wrong"] > 0.5 and row["punishes_right"] > 0.5
    table = invoke("rewards", "check", "--data", str(EXAMPLE), "--config", str(BROKEN))
    assert "rewards_length" in table.output and "FLAG" in table.output


def test_check_flags_the_gists_soft_format_on_multiline_reasoning():
    result = invoke("rewards", "check", "--data", str(EXAMPLE), "--rewards", "soft_format", "--json")
    row = json.loads(result.output)["soft_format"]
    assert row["mean_correct"] == 0.0 and row["zero_variance_groups"] == 1.0 and row["verdict"] == "FLAG"


def test_check_needs_rewards_or_config():
    result = runner.invoke(app, ["rewards", "check", "--data", str(EXAMPLE)])
    assert result.exit_code != 0
    with pytest.raises(UserError, match="either"):
        load_reward_set(None, None)


def test_labelled_rows_are_validated(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"completion": "x", "label": true}\n{"completion": "y", "label": "yes"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'label'"):
        load_labelled(path)


@pytest.mark.parametrize(("right", "wrong", "expected"), [
    ([1, 1], [0, 0], 1.0), ([0, 0], [1, 1], 0.0), ([1, 1], [1, 1], 0.5), ([2, 1], [1, 0], 0.875), ([1], [], None),
])
def test_auc_mann_whitney_with_ties(right, wrong, expected):
    value = auc(right, wrong)
    assert (value != value) if expected is None else value == pytest.approx(expected)


def test_separation_counts_punished_right_answers_and_flat_groups():
    rows = [{"label": True, "group": "a"}, {"label": True, "group": "a"}, {"label": False, "group": "b"},
            {"label": False, "group": "b"}]
    report = separation([1.0, 0.0, 0.0, 0.0], rows)
    assert report["mean_correct"] == 0.5 and report["punishes_right"] == 0.5
    assert report["zero_variance_groups"] == 0.5 and report["verdict"] == "FLAG"
    assert separation([None, 1.0, 0.0, 0.0], rows)["unscored"] == 1


def test_check_rewards_library_reports_the_weighted_total():
    rows = load_labelled(EXAMPLE)
    funcs, weights = load_reward_set("exact_match,length_penalty")
    report = check_rewards(rows, funcs, weights)
    assert report["TOTAL"]["auc"] == 1.0


def _trajectory(example_id, steps, final, gold="Paris"):
    return {"schema_version": 1, "task": "hotpotqa", "example_id": example_id, "attempt": 0, "question": "Capital?",
            "gold": gold, "final_answer": final, "flags": {"parse_errors": 0, "repeated_queries": 0,
                                                          "step_limit": final is None, "finished": final is not None},
            "steps": steps}


def test_rescore_writes_a_new_file_and_never_the_input(tmp_path):
    source = tmp_path / "traj.jsonl"
    search = {"index": 0, "text": "<search>capital of France</search>", "action": "search",
              "argument": "capital of France", "observation": "Paris is the capital."}
    answer = {"index": 1, "text": "<answer>Paris</answer>", "action": "answer", "argument": "Paris"}
    records = [_trajectory("e1", [search, answer], "Paris"), _trajectory("e2", [search], None)]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    original = source.read_text()
    result = invoke("rewards", "rescore", str(source), "--rewards", "exact_match,search_effort,step_limit_penalty")
    assert result.exit_code == 0, result.output
    out = tmp_path / "traj.rescored.jsonl"
    rescored = [json.loads(line) for line in out.read_text().splitlines()]
    assert source.read_text() == original
    assert rescored[0]["rewards"] == {"exact_match": 1.0, "search_effort": 0.35, "step_limit_penalty": 0.0}
    assert rescored[1]["rewards"] == {"exact_match": 0.0, "search_effort": 0.0, "step_limit_penalty": -1.0}
    assert rescored[0]["reward"] == pytest.approx(1.35) and rescored[0]["example_id"] == "e1"
    with pytest.raises(UserError, match="never overwrites"):
        rescore_file(source, source, *load_reward_set("exact_match"))


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "examples").glob("rewards_*.yaml")), ids=lambda p: p.name)
def test_shipped_reward_configs_load(path, monkeypatch):
    import selfimprove.models as models
    from selfimprove.models.scripted import ScriptedGenerator

    monkeypatch.setattr(models, "load_generator", lambda spec: ScriptedGenerator(lambda conv, i: "Verdict: yes"))
    assert path.read_text().startswith("# selfimprove rewards check")
    funcs, weights = load_reward_set(config_path=str(path))
    assert funcs and len(funcs) == len(weights)


def test_shipped_search_agent_config_passes_the_check():
    result = invoke("rewards", "check", "--data", str(EXAMPLE), "--config",
                    str(REPO_ROOT / "examples" / "rewards_search_agent.yaml"))
    assert result.exit_code == 0, result.output


def test_check_reports_judge_failures_as_unscored_with_counters(monkeypatch, tmp_path):
    import selfimprove.models as models
    from selfimprove.models.scripted import ScriptedGenerator

    monkeypatch.setattr(models, "load_generator", lambda spec: ScriptedGenerator(lambda conv, i: "I am a tiny model"))
    config = tmp_path / "judge.yaml"
    config.write_text("rewards:\n  - {name: llm_judge_correctness, params: {judge: tiny}}\n")
    result = invoke("rewards", "check", "--data", str(EXAMPLE), "--config", str(config), "--json")
    row = json.loads(result.output)["llm_judge_correctness"]
    answered = 24  # of the 32 rows; the 8 without a final answer score 0 and the judge is not asked
    assert row["unscored"] == answered and row["auc"] is None and row["verdict"] == "FLAG"
    assert row["judge"]["garbage"] == answered and row["judge"]["failures"] == answered
    table = invoke("rewards", "check", "--data", str(EXAMPLE), "--config", str(config))
    assert f"garbage={answered}" in table.output
