"""Task rewards are drop-in for plain TRL: only the task's own columns, clear errors, no crash on bad rows.

As a TRL user meets them: `countdown_correct` on a `datasets.Dataset` holding just `prompt`, `nums`
and `target` inside TRL's own `GRPOTrainer`; a missing column names the reward and the column; a
row whose values cannot be read scores None (TRL's "not applicable") instead of crashing the run;
xLAM and BFCL column names work for `function_call_correct`; and `selfimprove.rewards.<name>` is
resolved by TRL's own `trl grpo` code (its `main`, in process; the real CLI in a subprocess is slow).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfimprove.errors import UserError

RIGHT, WRONG = "<answer>(2 + 3) * 4</answer>", "<answer>2 * 3 * 4</answer>"


def _trl_resolve(dotted: str):
    """What `trl grpo --reward_funcs a.b.c` does with a dotted path (trl/scripts/grpo.py, TRL 1.16)."""
    module_path, attr = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module_path), attr)


def _countdown_rows() -> list[dict]:
    prompt = [{"role": "user", "content": "Using 2, 3, 4 make 20. Answer in <answer></answer>."}]
    return [{"prompt": prompt, "nums": [2, 3, 4], "target": 20}, {"prompt": prompt, "nums": [5, 1, 3], "target": 15},
            {"prompt": prompt, "nums": [1, 2, 3], "target": None}, {"prompt": prompt, "nums": None, "target": 9}]


# --- (1) only the task's columns, in TRL's GRPOTrainer ------------------------------------------------------


def test_countdown_correct_needs_only_nums_and_target_in_grpo_trainer(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove.rewards import get_reward

    dataset = Dataset.from_list(_countdown_rows())  # no example_id; two rows hold None
    assert set(dataset.column_names) == {"prompt", "nums", "target"}
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to="none", use_cpu=True,
                      save_strategy="no", seed=0, shuffle_dataset=False)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                          reward_funcs=[get_reward("countdown_correct")], args=args, train_dataset=dataset,
                          processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert trainer.state.global_step == 2
    assert "rewards/countdown_correct/mean" in logged, sorted(logged)


def test_task_rewards_score_rows_with_only_their_own_columns():
    from selfimprove.rewards import get_reward

    countdown = get_reward("countdown_correct")
    assert countdown([RIGHT, WRONG], nums=[[2, 3, 4]] * 2, target=[20, 20]) == [1.0, 0.0]
    assert get_reward("task_reward", {"task_name": "hotpotqa"})(["<answer>Paris</answer>"], answer=["Paris"]) == [1.0]
    refiner = get_reward("task_reward", {"task_name": "refiner", "field": "correct"})
    snippets = json.dumps([{"id": "a1", "text": "Paris is in France."}])
    cited = "<answer><snippet id=a1>Paris is in France</snippet>.</answer>"
    assert refiner([cited, "<answer><snippet id=zz>made up</snippet></answer>"], snippets=[snippets] * 2) == [1.0, 0.0]


# --- function calling: documented columns and the xLAM / BFCL names ---------------------------------------

ADD_TOOL = {"name": "add", "description": "a + b",
            "parameters": {"type": "dict", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                           "required": ["a", "b"]}}
CALL = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 2}}</tool_call>'
OTHER_CALL = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'


@pytest.mark.parametrize("columns", [
    pytest.param({"query": "2+2?", "tools": json.dumps([{"name": "add", "description": "a + b", "parameters": {
        "a": {"type": "int", "description": "a"}, "b": {"type": "int", "description": "b"}}}]),
        "answers": json.dumps([{"name": "add", "arguments": {"a": 2, "b": 2}}])}, id="xlam"),
    pytest.param({"question": [[{"role": "user", "content": "2+2?"}]], "function": [ADD_TOOL],
                  "ground_truth": [{"add": {"a": [2], "b": [2]}}]}, id="bfcl"),
    pytest.param({"tools": json.dumps([ADD_TOOL]), "gold_calls": json.dumps([{"add": {"a": [2], "b": [2]}}])},
                 id="selfimprove-minimal"),
    pytest.param({"tools": [{"type": "function", "function": {**ADD_TOOL, "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}],
        "answers": [{"name": "add", "arguments": {"a": 2, "b": 2}}]}, id="openai-tools"),
])
def test_function_call_correct_reads_xlam_and_bfcl_columns(columns):
    from selfimprove.rewards import get_reward

    batch = {key: [value] * 3 for key, value in columns.items()}
    assert get_reward("function_call_correct")([CALL, OTHER_CALL, "no call"], **batch) == [1.0, 0.0, 0.0]


# --- (2) a missing column: one clear error naming the reward and the column --------------------------------


@pytest.mark.parametrize(("reward", "columns", "message"), [
    ("countdown_correct", {"nums": [[2, 3, 4]] * 2}, "countdown_correct needs dataset columns nums, target; "
                                                     "missing: target"),
    ("countdown_correct", {"answer": ["20"] * 2}, "countdown_correct needs dataset columns nums, target; "
                                                  "missing: nums, target"),
    ("function_call_correct", {"tools": ["[]"] * 2, "question": ["q"] * 2},
     "function_call_correct needs dataset columns tools (or function), gold_calls (or ground_truth, answers); "
     "missing: gold_calls (or ground_truth, answers)"),
])
def test_a_missing_column_is_one_clear_error(reward, columns, message):
    from selfimprove.rewards import get_reward

    with pytest.raises(UserError) as caught:
        get_reward(reward)([RIGHT, WRONG], **columns)
    assert str(caught.value) == message


def test_a_missing_column_of_a_plugin_task_is_named():
    from selfimprove.rewards.answer import task_reward

    with pytest.raises(UserError, match="TinyTask_value needs dataset column 'target'"):
        task_reward("test_rewards:TinyTask")([RIGHT], example_id=["a"])


class ColumnsTask:
    """A user task that declares the columns its reward needs (`reward_columns`), as built-in tasks do."""

    name = "columns"
    reward_columns = (("target",), ("source", "origin"))

    def from_row(self, row):
        raise AssertionError("a missing declared column is refused before any row is read")


def test_the_columns_a_task_declares_are_checked_before_any_row():
    from selfimprove.rewards.answer import task_reward

    with pytest.raises(UserError) as caught:
        task_reward(f"{__name__}:ColumnsTask")([RIGHT], example_id=["a"], origin=["x"])
    assert str(caught.value) == "ColumnsTask_value needs dataset columns target, source (or origin); missing: target"


# --- (3) None or wrong-typed values: that row scores None, the others are scored -------------------------


@pytest.mark.parametrize(("reward", "good", "bad"), [
    ("countdown_correct", {"nums": [2, 3, 4], "target": 20}, {"nums": None}),
    ("countdown_correct", {"nums": [2, 3, 4], "target": 20}, {"target": None}),
    ("countdown_correct", {"nums": [2, 3, 4], "target": 20}, {"nums": "2 3 4"}),
    ("countdown_correct", {"nums": [2, 3, 4], "target": 20}, {"nums": [2, "x", 4]}),
    ("countdown_correct", {"nums": [2, 3, 4], "target": 20}, {"target": "twenty"}),
    ("countdown_correct", {"nums": [2, 3, 4], "target": 20}, {"target": 20.5}),
    ("countdown_correct", {"nums": [2, 3, 4], "target": 20}, {"target": True}),
    ("function_call_correct", {"tools": json.dumps([ADD_TOOL]), "gold_calls": '[{"add": {"a": [2], "b": [2]}}]'},
     {"tools": None}),
    ("function_call_correct", {"tools": json.dumps([ADD_TOOL]), "gold_calls": '[{"add": {"a": [2], "b": [2]}}]'},
     {"gold_calls": "not json"}),
    ("function_call_correct", {"tools": json.dumps([ADD_TOOL]), "gold_calls": '[{"add": {"a": [2], "b": [2]}}]'},
     {"gold_calls": 5}),
    ("function_call_correct", {"tools": json.dumps([ADD_TOOL]), "gold_calls": '[{"add": {"a": [2], "b": [2]}}]'},
     {"gold_calls": '[{"add": 2}]'}),
    ("function_call_correct", {"tools": json.dumps([ADD_TOOL]), "answers": '[{"name": "add", "arguments": '
                                                                           '{"a": 2, "b": 2}}]'},
     {"answers": '[{"arguments": {}}]'}),
])
def test_an_unreadable_row_scores_none_and_the_rest_are_scored(reward, good, bad, caplog):
    from selfimprove.rewards import get_reward

    rows = [good, {**good, **bad}, good]
    columns = {key: [row[key] for row in rows] for key in good}
    completion = RIGHT if reward == "countdown_correct" else CALL
    with caplog.at_level("WARNING"):
        assert get_reward(reward)([completion] * 3, **columns) == [1.0, None, 1.0]
    assert f"{reward}: 1 of 3 rows cannot be read and score None" in caplog.text


def test_unreadable_rows_in_other_tasks_score_none():
    from selfimprove.rewards.answer import task_reward

    assert task_reward("hotpotqa")(["<answer>Paris</answer>"] * 2, answer=["Paris", None]) == [1.0, None]
    refiner = task_reward("refiner", field="correct")
    cited = "<answer><snippet id=a1>Paris is in France</snippet>.</answer>"
    assert refiner([cited] * 2, tool_output=["<snippet id=a1>Paris is in France.</snippet>", 7]) == [1.0, None]


# --- (4) `selfimprove.rewards.<name>` resolved as TRL resolves it -------------------------------------------


def test_every_built_in_reward_is_importable_by_dotted_path():
    import selfimprove.rewards as rewards

    needs_params = {"task_reward", "llm_judge_correctness", "rubric_judge", "refiner_reward"}
    for name in rewards._ready_names():
        if name in needs_params:
            with pytest.raises(AttributeError, match="needs params"):
                _trl_resolve(f"selfimprove.rewards.{name}")
            continue
        reward = _trl_resolve(f"selfimprove.rewards.{name}")
        assert callable(reward) and not getattr(reward, "is_reward_factory", False), name
    countdown = _trl_resolve("selfimprove.rewards.countdown_correct")
    assert countdown.__name__ == "countdown_correct"
    assert countdown(prompts=["p"] * 2, completions=[RIGHT, WRONG], completion_ids=[[1], [2]], nums=[[2, 3, 4]] * 2,
                     target=[20, 20], trainer_state=None) == [1.0, 0.0]
    assert _trl_resolve("selfimprove.rewards.citation_reward").__name__ == "citation"
    assert _trl_resolve("selfimprove.rewards.exact_match") is importlib.import_module(
        "selfimprove.rewards.answer").exact_match
    assert importlib.import_module("selfimprove.rewards.citation").__name__ == "selfimprove.rewards.citation"


def _dataset_dir(tmp_path: Path) -> Path:
    data = tmp_path / "countdown-data"
    data.mkdir()
    rows = [row for row in _countdown_rows() if row["nums"] is not None and row["target"] is not None] * 2
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return data


def _cli_args(tiny_model_dir: Path, tmp_path: Path) -> list[str]:
    return ["--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(_dataset_dir(tmp_path)),
            "--reward_funcs", "selfimprove.rewards.countdown_correct", "selfimprove.rewards.xmlcount",
            "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--per_device_train_batch_size", "2",
            "--num_generations", "2", "--max_completion_length", "8", "--logging_steps", "1",
            "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no"]


def test_trl_grpo_main_resolves_selfimprove_rewards(tiny_model_dir, tmp_path, monkeypatch):
    """TRL's own `trl grpo` code (parser + main), in process: the dotted names resolve and one step runs."""
    from transformers import Trainer
    from trl.scripts import grpo

    logs: list[dict] = []
    original_log = Trainer.log  # GRPOTrainer.log adds its reward metrics, then calls this

    def recording_log(self, entries, *args, **kwargs):
        logs.append(dict(entries))
        return original_log(self, entries, *args, **kwargs)

    monkeypatch.setattr(Trainer, "log", recording_log)
    monkeypatch.chdir(tmp_path)
    parsed = grpo.make_parser().parse_args_and_config(args=_cli_args(tiny_model_dir, tmp_path),
                                                      fail_with_unknown_args=False)
    grpo.main(*parsed[:4])
    logged = {key for entry in logs for key in entry}
    assert {"rewards/countdown_correct/mean", "rewards/xmlcount/mean"} <= logged, sorted(logged)


@pytest.mark.slow
def test_trl_grpo_cli_subprocess(tiny_model_dir, tmp_path):
    """The real `trl grpo` command line with `--reward_funcs selfimprove.rewards.countdown_correct`."""
    trl = Path(sys.executable).with_name("trl")
    if not trl.is_file():
        pytest.skip("the trl console script is not installed beside this python")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([str(trl), "grpo", *_cli_args(tiny_model_dir, tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rewards/countdown_correct/mean" in result.stdout + result.stderr
