"""The whole pipeline from the CLI on the embedded SmolLM2-135M (slow: minutes on CPU).

distill (2 questions x 2 attempts, keep everything) -> convert sft/dpo -> train sft -> train dpo
from the SFT adapter -> an agent run with the merged DPO model. The teacher is a scripted ReAct
agent (`tests/recipe_scripts.py`): the 135M model rarely writes a parseable step, and an empty SFT
set would test nothing; training and the final agent run use the real model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app

pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


def test_distill_convert_sft_dpo_eval_from_the_cli(tmp_path):
    run = tmp_path / "run"
    invoke("distill", "--out", str(run / "distill"), "--teacher", "scripted:recipe_scripts:react_teacher",
           "--limit", "2", "-k", "2", "--max-turns", "2",
           "--max-tokens", "48", "--metric", "value", "--threshold", "0")
    invoke("convert", "sft", "--in", str(run / "distill" / "kept.jsonl"), "--out", str(run / "sft.jsonl"))
    invoke("convert", "dpo", "--in", str(run / "distill" / "kept.jsonl"), "--out", str(run / "dpo.jsonl"))
    small = ["--set", "trainer.max_steps=1", "--set", "trainer.gradient_accumulation_steps=1"]
    invoke("train", "sft", "--config", str(CONFIGS / "sft_cpu.yaml"), "--set", f"data={run / 'sft.jsonl'}",
           "--set", f"output_dir={run / 'sft'}", *small)
    invoke("train", "dpo", "--config", str(CONFIGS / "dpo_cpu.yaml"), "--set", f"data={run / 'dpo.jsonl'}",
           "--set", f"output_dir={run / 'dpo'}", "--set", f"model.adapter={run / 'sft' / 'adapter'}", *small)
    assert json.loads((run / "dpo" / "train_summary.json").read_text())["first_loss"] == pytest.approx(0.693, abs=0.01)
    invoke("agent", "run", "--model", str(run / "dpo" / "merged"), "--limit", "1", "--max-turns", "2",
           "--max-tokens", "32", "--out", str(run / "eval"))
    assert (run / "eval" / "trajectories.jsonl").read_text().count("\n") == 1
