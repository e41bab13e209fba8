"""Converters: trajectories -> SFT rows and DPO pairs (golden files, prompt fidelity, pairing rules)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfimprove.agent.formats import get_format
from selfimprove.convert.dpo import FIXED_USELESS_REPLY, dpo_rows, failure_pairs, repetition_pairs
from selfimprove.convert.sft import sft_rows
from selfimprove.data.jsonl import read_jsonl
from selfimprove.data.trajectory import write_trajectories
from trajectory_samples import sample_trajectories, step, trajectory

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, rows: list[dict]) -> None:
    """Compare with tests/golden/NAME; SELFIMPROVE_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    if os.environ.get("SELFIMPROVE_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; if intended, regenerate the golden file"


def test_sft_rows_match_golden_file():
    kept, _ = sample_trajectories()
    check_golden("sft_rows.jsonl", list(sft_rows(kept)))


def test_dpo_rows_match_golden_file():
    kept, attempts = sample_trajectories()
    check_golden("dpo_pairs.jsonl", dpo_rows(kept, attempts, metric="f1", success=1.0))


def test_sft_prompt_is_what_the_agent_saw_and_completion_is_the_step():
    kept, _ = sample_trajectories()
    rows = list(sft_rows(kept))
    fmt = get_format("react")
    q2 = kept[1]
    q2_rows = [r for r in rows if r["example_id"] == "q2"]
    assert [r["step"] for r in q2_rows] == [0, 2, 3]  # the invalid step 1 is never a target
    assert q2_rows[1]["prompt"] == fmt.conversation(q2.question, q2.steps[:2])
    assert "Observation: [Nile] The Nile is long." in q2_rows[1]["prompt"][-1]["content"]
    assert q2_rows[1]["completion"] == [{"role": "assistant", "content": q2.steps[2].text}]
    assert q2_rows[2]["completion"][0]["content"].endswith("action_input: Cairo]")


def test_sft_prompts_equal_the_conversations_sent_by_the_agent_runner():
    from selfimprove.agent import AgentSettings, run_agent
    from selfimprove.models.scripted import ScriptedGenerator
    from selfimprove.tasks.base import Example
    from selfimprove.tools.base import Hit

    class OneHit:
        name = "fake"

        def search(self, queries, k):
            return [[Hit("1", "T", f"about {q}", 1.0)] for q in queries]

    def script(conversation, index):
        turn = conversation[-1]["content"].count("Observation:")
        if turn < 2:
            return f"Thought: look {turn}\nAction: [action: Search, action_input: query {turn}] tail"
        return "Thought: done\nAction: [action: Answer, action_input: Paris]"

    class Task:
        name = "t"

        def score_answer(self, example, answer):
            from selfimprove.tasks.base import Score
            return Score(value=1.0, correct=True, parsed=answer, breakdown={"f1": 1.0})

    generator = ScriptedGenerator(script)
    trajectories = run_agent(generator, Task(), [Example("e1", "Where?", "Paris")], OneHit(), "react",
                             AgentSettings(progress=False))
    rows = list(sft_rows(trajectories))
    assert [row["prompt"] for row in rows] == [call[0] for call in generator.calls]
    assert rows[0]["completion"][0]["content"].endswith("action_input: query 0]")


def test_min_score_filters_trajectories():
    _, attempts = sample_trajectories()
    rows = list(sft_rows(attempts, min_score=1.0))
    assert {(r["example_id"], r["attempt"]) for r in rows} == {("q1", 0), ("q2", 0)}


def test_repetition_pairs_reject_the_previous_step_and_the_fixed_reply_at_step_zero():
    kept, _ = sample_trajectories()
    pairs = list(repetition_pairs(kept[0]))
    assert pairs[0]["rejected"][0]["content"] == FIXED_USELESS_REPLY
    assert pairs[1]["chosen"][0]["content"] == kept[0].steps[1].text
    assert pairs[1]["rejected"][0]["content"] == kept[0].steps[0].text
    assert [p["step"] for p in repetition_pairs(kept[0], first_step="skip")] == [1]
    assert list(repetition_pairs(kept[0], fixed_reply="nope"))[0]["rejected"][0]["content"] == "nope"


def test_identical_chosen_and_rejected_are_dropped():
    same = step(0, "x", "search", "q", "obs")
    repeated = trajectory("q3", 0, [same, step(1, "x", "search", "q", "obs"), step(2, "a", "answer", "A")], 1.0)
    assert [p["step"] for p in repetition_pairs(repeated, first_step="skip")] == [2]


def test_failure_pairs_come_from_the_first_divergence_with_the_same_prompt():
    kept, attempts = sample_trajectories()
    pairs = list(failure_pairs(attempts, metric="f1", success=1.0))
    assert len(pairs) == 1
    (row,) = pairs
    assert row["step"] == 1 and row["rejected_attempt"] == 1 and row["source"] == "failure"
    assert row["chosen"][0]["content"] == kept[0].steps[1].text
    assert row["rejected"][0]["content"] == attempts[1].steps[1].text
    assert row["prompt"] == get_format("react").conversation(attempts[1].question, attempts[1].steps[:1])


def test_dpo_rows_are_deduplicated():
    kept, attempts = sample_trajectories()
    once = dpo_rows(kept, attempts, metric="f1")
    assert dpo_rows(kept + kept, attempts + attempts, metric="f1") == once


@pytest.fixture()
def trajectory_files(tmp_path):
    kept, attempts = sample_trajectories()
    write_trajectories(tmp_path / "kept.jsonl", kept)
    write_trajectories(tmp_path / "attempts.jsonl", attempts)
    return tmp_path


def test_convert_cli_writes_sft_and_dpo_files(trajectory_files):
    from selfimprove.cli import app

    runner = CliRunner()
    out = trajectory_files
    result = runner.invoke(app, ["convert", "sft", "--in", str(out / "kept.jsonl"), "--out", str(out / "sft.jsonl")])
    assert result.exit_code == 0, result.output
    assert "wrote 5 SFT rows" in result.output
    assert len(read_jsonl(out / "sft.jsonl")) == 5
    result = runner.invoke(app, ["convert", "dpo", "--in", str(out / "kept.jsonl"), "--attempts",
                                 str(out / "attempts.jsonl"), "--out", str(out / "dpo.jsonl")])
    assert result.exit_code == 0, result.output
    assert "(5 repetition, 1 failure)" in result.output
    assert read_jsonl(out / "dpo.jsonl") == json.loads(json.dumps(dpo_rows(*sample_trajectories(), metric="f1")))


def test_convert_cli_rejects_a_bad_first_step_option(trajectory_files):
    from selfimprove.cli import app

    result = CliRunner().invoke(app, ["convert", "dpo", "--in", str(trajectory_files / "kept.jsonl"), "--out",
                                      str(trajectory_files / "d.jsonl"), "--first-step", "never"])
    assert result.exit_code != 0
