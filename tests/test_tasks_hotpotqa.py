"""HotpotQA task: metrics equal the official script, both layouts load, CLI, extraction, rows."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.errors import DataError, UserError
from selfimprove.tasks import get_task
from selfimprove.tasks.hotpotqa.metrics import (
    METRIC_KEYS,
    evaluate,
    exact_match_score,
    f1_score,
    normalize_answer,
)
from selfimprove.tasks.hotpotqa.official import official_eval, official_exact_match_score, official_f1_score
from selfimprove.tasks.hotpotqa.task import load_file, read_predictions

runner = CliRunner()




@pytest.fixture(scope="module")
def gold(shared_data):
    return json.loads((shared_data / "hotpotqa_train_100.json").read_text())


def make_predictions(gold, seed):
    """Exact, partial, noisy, yes/no-flipped, empty and missing answers; exact, partial, extra, missing sp."""
    rng = random.Random(seed)
    answers, sps = {}, {}
    for item in gold:
        kind = rng.choice(["exact", "article", "partial", "extra", "yes", "no", "wrong", "empty", "missing"])
        answer = item["answer"]
        answers[item["_id"]] = {
            "exact": answer, "article": f"The {answer.upper()}!", "partial": " ".join(answer.split()[:1]),
            "extra": f"{answer} and {answer.split()[0]} again", "yes": "yes", "no": "No.",
            "wrong": "Zanzibar", "empty": "",
        }.get(kind)
        if kind == "missing":
            del answers[item["_id"]]
        facts = [list(f) for f in item["supporting_facts"]]
        sp_kind = rng.choice(["exact", "partial", "extra", "empty", "missing"])
        if sp_kind != "missing":
            sps[item["_id"]] = {"exact": facts, "partial": facts[:1], "extra": facts + [[item["context"][0][0], 99]],
                                "empty": []}[sp_kind]
    return {"answer": answers, "sp": sps}


def to_hf_layout(item):
    """The Hugging Face layout of one original-layout record."""
    return {"id": item["_id"], "question": item["question"], "answer": item["answer"], "type": item["type"],
            "level": item["level"],
            "supporting_facts": {"title": [f[0] for f in item["supporting_facts"]],
                                 "sent_id": [f[1] for f in item["supporting_facts"]]},
            "context": {"title": [p[0] for p in item["context"]], "sentences": [p[1] for p in item["context"]]}}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_evaluate_equals_official_script(gold, seed):
    predictions = make_predictions(gold, seed)
    ours = evaluate(predictions, gold)
    official = official_eval(predictions, gold)
    assert {key: ours[key] for key in METRIC_KEYS} == official


@pytest.mark.parametrize(
    "prediction, truth",
    [("yes", "yes"), ("yes", "no"), ("no", "No."), ("noanswer", "no answer"), ("The Beatles", "beatles"),
     ("Paris, France", "Paris"), ("", "Paris"), ("a an the", "the"), ("yes indeed", "yes"), ("1,000", "1000")],
)
def test_answer_metrics_equal_official(prediction, truth):
    assert f1_score(prediction, truth) == official_f1_score(prediction, truth)
    assert exact_match_score(prediction, truth) == float(official_exact_match_score(prediction, truth))


def test_breakdowns_by_level_and_type(gold):
    result = evaluate({"answer": {g["_id"]: g["answer"] for g in gold if g["level"] == "easy"}, "sp": {}}, gold)
    assert result["by_level"]["easy"]["em"] == 1.0 and result["by_level"]["easy"]["count"] == 16
    assert result["by_level"]["hard"]["em"] == 0.0
    assert sum(group["count"] for group in result["by_type"].values()) == 100
    assert result["missing_answer"] == 84 and result["missing_sp"] == 100


@pytest.mark.parametrize("layout", ["original", "hf"])
def test_cli_equals_official_for_both_gold_layouts(gold, tmp_path, layout):
    predictions = make_predictions(gold, 7)
    pred_path, gold_path = tmp_path / "pred.json", tmp_path / "gold.jsonl"
    pred_path.write_text(json.dumps(predictions))
    records = gold if layout == "original" else [to_hf_layout(item) for item in gold]
    gold_path.write_text("\n".join(json.dumps(r) for r in records))
    result = runner.invoke(app, ["score", "hotpotqa", str(pred_path), str(gold_path), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    official = official_eval(predictions, gold)
    assert {key: printed[key] for key in METRIC_KEYS} == pytest.approx(official, abs=1e-12)
    text = runner.invoke(app, ["score", "hotpotqa", str(pred_path), str(gold_path)]).output
    assert "joint_f1=" in text and "level=hard" in text and "type=comparison" in text


def test_hf_layout_loads_to_original_layout(gold, tmp_path):
    path = tmp_path / "hf.json"
    path.write_text(json.dumps([to_hf_layout(item) for item in gold[:5]]))
    from_hf, from_original = load_file(path), load_file_original(gold[:5], tmp_path)
    assert from_hf == from_original
    assert from_hf[0].meta["supporting_facts"] == [list(f) for f in gold[0]["supporting_facts"]]


def load_file_original(items, tmp_path):
    path = tmp_path / "orig.json"
    path.write_text(json.dumps(items))
    return load_file(path)


def test_demo_has_ten_per_level():
    examples = get_task("hotpotqa").load()
    assert Counter(e.meta["level"] for e in examples) == {"easy": 10, "medium": 10, "hard": 10}


@pytest.mark.parametrize(
    "completion, value, correct",
    [("<answer>" + "{gold}" + "</answer>", 1.0, True),
     ("<answer>nope</answer> then <answer>{gold}</answer>", 1.0, True),
     ("<answer>{gold}</answer> then <answer>nope</answer>", 0.0, False),
     ("{gold}", 0.0, False)],
)
def test_score_uses_last_answer_block(completion, value, correct):
    task = get_task("hotpotqa")
    example = task.load()[0]
    score = task.score(example, completion.format(gold=example.answer))
    assert (score.value, score.correct) == (value, correct)
    assert set(score.breakdown) == {"em", "f1", "prec", "recall"}


def test_partial_answer_gets_f1_not_correct():
    task = get_task("hotpotqa")
    example = next(e for e in task.load() if len(normalize_answer(e.answer).split()) >= 2)
    score = task.score(example, f"<answer>{normalize_answer(example.answer).split()[-1]}</answer>")
    assert 0 < score.value < 1 and not score.correct and score.breakdown["prec"] == 1.0


def test_row_round_trip_and_prompt():
    task = get_task("hotpotqa")
    example = task.load()[3]
    row = task.to_row(example)
    json.dumps(row)
    assert task.from_row(row) == example
    assert row["prompt"][-1]["role"] == "user" and example.question in row["prompt"][-1]["content"]
    assert "<answer>" in row["prompt"][0]["content"]


@pytest.mark.parametrize(
    "content, line, field",
    [('{"_id": "a", "question": "q"}\n', 1, "answer"),
     ('{"_id": "a", "question": "q", "answer": "x"}\n{"_id": "b", "question": "q", "answer": "x", '
      '"supporting_facts": [["t", "zero"]]}\n', 2, "supporting_facts"),
     ('{"_id": "a", "question": "q", "answer": "x", "context": {"title": ["t"], "sentences": []}}\n', 1, "context"),
     ('not json\n', 1, None)],
)
def test_malformed_files_name_file_line_field(tmp_path, content, line, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_file(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)


def test_bad_prediction_file_names_the_field(tmp_path):
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"answer": [], "sp": {}}))
    with pytest.raises(DataError) as info:
        read_predictions(pred)
    assert info.value.field == "answer"
    pred.write_text(json.dumps({"answer": {}, "sp": {"q": "title"}}))
    with pytest.raises(DataError, match="sp of 'q'"):
        read_predictions(pred)


def test_hub_source_is_lazy_and_normalised(monkeypatch, gold):
    import subprocess
    import sys

    code = ("import sys; from selfimprove.tasks import get_task; get_task('hotpotqa').load(); "
            "print('datasets' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    import datasets

    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return [to_hf_layout(item) for item in gold[:3]]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = get_task("hotpotqa").load("hub:distractor:validation", limit=3)
    assert calls == [("hotpotqa/hotpot_qa", "distractor", "validation[:3]")]
    assert [e.id for e in examples] == [item["_id"] for item in gold[:3]]
    assert examples[0].meta["context"] == [[t, s] for t, s in gold[0]["context"]]
    with pytest.raises(UserError):
        get_task("hotpotqa").load("hub:nonsense:train")


# --- what a task declares for the other layers: its default agent format, its reward's columns --------------


class SearchingTask:
    """A user task that declares it runs as a search agent (eval reads this, not a list of task names)."""

    name = "searching"
    agent_format = "xml"


class PlainTask:
    """A user task that declares nothing: it runs single-turn."""

    name = "plain"


def test_every_registered_task_declares_its_agent_format_and_eval_defaults_to_it():
    from selfimprove.agent.formats import FORMATS
    from selfimprove.eval.harness import EvalSettings
    from selfimprove.tasks import TASKS

    for name in TASKS.names():
        task = get_task(name)
        assert task.agent_format == "single" or task.agent_format in FORMATS, name
        assert EvalSettings(task=name).agent_format() == task.agent_format, name
        assert EvalSettings(task=name, format="tools").agent_format() == "tools", name
        assert all(isinstance(column, tuple) and column for column in task.reward_columns), name
    assert get_task("hotpotqa").agent_format == "react" and get_task("countdown").agent_format == "single"


@pytest.mark.parametrize(("task", "fmt"), [("SearchingTask", "xml"), ("PlainTask", "single")])
def test_eval_runs_a_user_task_in_the_format_it_declares(task, fmt):
    from selfimprove.eval.harness import EvalSettings

    assert EvalSettings(task=f"{__name__}:{task}").agent_format() == fmt
