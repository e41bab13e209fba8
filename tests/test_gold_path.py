"""The gold-path teacher: real agent loop and BM25 over the bundled demo, verifier-accepted trajectories."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from selfimprove.agent import AgentSettings
from selfimprove.agent.gold_path import GoldPathTeacher, supporting_titles
from selfimprove.cli import app
from selfimprove.convert.sft import sft_rows
from selfimprove.data.jsonl import read_jsonl
from selfimprove.data.trajectory import read_trajectories
from selfimprove.errors import ConfigError, UserError
from selfimprove.tasks import get_task
from selfimprove.tasks.selection import held_out_examples, select_examples
from selfimprove.workflows.distill import DistillConfig, distill


@pytest.fixture(scope="module")
def demo():
    return get_task("hotpotqa").load(None)


@pytest.mark.parametrize("fmt", ["react", "xml"])
def test_gold_path_trajectories_search_each_supporting_title_then_answer(fmt, demo, tmp_path):
    config = DistillConfig(teacher="gold-path", limit=6, output_dir=str(tmp_path),
                           agent=AgentSettings(format=fmt, progress=False))
    summary = distill(config)
    trajectories = read_trajectories(tmp_path / "kept.jsonl")
    assert len(trajectories) == 6 and summary["kept"] == 6
    for trajectory, example in zip(trajectories, demo[:6], strict=True):
        searches = [s.argument for s in trajectory.steps if s.action == "search"]
        assert searches == supporting_titles(example)
        assert trajectory.steps[-1].action == "answer" and trajectory.final_answer == example.answer
        assert trajectory.score["breakdown"]["f1"] == 1.0 and trajectory.score["correct"]
        assert not any(s.parse_error for s in trajectory.steps)
        assert all(s.observation for s in trajectory.steps[:-1])  # the real search tool answered
    rows = list(sft_rows(trajectories))
    assert len(rows) == sum(len(t.steps) for t in trajectories)


def test_distillation_can_leave_out_the_eval_questions(demo, tmp_path):
    held = held_out_examples(demo, 4)
    assert not {e.id for e in held} & {e.id for e in select_examples(demo, None, 4)}
    assert len(held) == len(demo) - 12
    distill(DistillConfig(teacher="gold-path", skip_eval_per_level=4, output_dir=str(tmp_path),
                          agent=AgentSettings(progress=False)))
    assert [r["example_id"] for r in read_jsonl(tmp_path / "attempts.jsonl")] == [e.id for e in held]


def test_gold_path_refuses_formats_and_adapters_it_cannot_serve(demo, tmp_path):
    with pytest.raises(UserError, match="react or xml"):
        GoldPathTeacher(demo, "tools")
    with pytest.raises(ConfigError, match="no adapter"):
        distill(DistillConfig(teacher="gold-path", adapter=str(tmp_path), limit=1, output_dir=str(tmp_path / "o")))


def test_distill_cli_with_the_gold_path_teacher(tmp_path):
    result = CliRunner().invoke(app, ["distill", "--teacher", "gold-path", "--limit", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(tmp_path / "kept.jsonl")) == 3


def test_distill_cli_rejects_a_missing_adapter(tmp_path):
    result = subprocess.run([sys.executable, "-m", "selfimprove", "distill", "--adapter", str(tmp_path / "nope"),
                             "--limit", "1", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "not a PEFT adapter directory" in result.stderr
    assert not (tmp_path / "o" / "attempts.jsonl").exists()
