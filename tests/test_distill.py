"""Distillation: threshold filtering, summaries, sampling checks, and a SIGKILL + resume run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from distill_entry import EchoSearcher, teacher
from selfimprove.agent import AgentSettings
from selfimprove.data.jsonl import read_jsonl
from selfimprove.data.trajectory import trajectory_key
from selfimprove.errors import ConfigError
from selfimprove.workflows.distill import DistillConfig, distill

HERE = Path(__file__).parent


def run_scripted(out: Path, **overrides) -> dict:
    from selfimprove.tasks import get_task

    settings = {"limit": 8, "metric": "f1", "threshold": 1.0, **overrides}
    config = DistillConfig(output_dir=str(out), agent=AgentSettings(attempts=2, temperature=0.7, progress=False), **settings)
    examples = get_task("hotpotqa").load(None)[:8]
    return distill(config, generator=teacher(examples, 0.0), searcher=EchoSearcher())


def keys(path: Path) -> list[tuple]:
    return [trajectory_key(record) for record in read_jsonl(path)]


def test_distill_keeps_what_passes_and_writes_every_attempt(tmp_path):
    summary = run_scripted(tmp_path)
    attempts, kept = read_jsonl(tmp_path / "attempts.jsonl"), read_jsonl(tmp_path / "kept.jsonl")
    assert len(attempts) == 16 and len(kept) == 8
    assert all(record["score"]["breakdown"]["f1"] == 1.0 for record in kept)
    assert summary["counts"]["all"] == {"tried": 16, "kept": 8, "questions": 8, "questions_kept": 4}
    assert sum(row["tried"] for level, row in summary["counts"].items() if level != "all") == 16
    assert summary["behaviour_attempts"]["episodes"] == 16
    assert json.loads((tmp_path / "summary.json").read_text())["counts"] == summary["counts"]


def test_threshold_and_metric_are_configurable(tmp_path):
    summary = run_scripted(tmp_path, metric="value", threshold=0.0)
    assert summary["counts"]["all"]["kept"] == 16


def test_several_attempts_need_sampling(tmp_path):
    config = DistillConfig(output_dir=str(tmp_path), agent=AgentSettings(attempts=3, temperature=0.0))
    with pytest.raises(ConfigError, match="temperature > 0"):
        distill(config, generator=object(), searcher=EchoSearcher())


def test_a_second_run_adds_nothing(tmp_path):
    run_scripted(tmp_path)
    before = (tmp_path / "attempts.jsonl").read_text()
    run_scripted(tmp_path)
    assert (tmp_path / "attempts.jsonl").read_text() == before


def test_kept_is_rederived_after_a_kill_between_the_two_appends(tmp_path):
    run_scripted(tmp_path)
    kept = (tmp_path / "kept.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "kept.jsonl").write_text("".join(kept[:-1]) + kept[-1][:20])  # lost + torn last record
    run_scripted(tmp_path)
    passing = [trajectory_key(r) for r in read_jsonl(tmp_path / "attempts.jsonl") if r["score"]["value"] == 1.0]
    assert sorted(keys(tmp_path / "kept.jsonl")) == sorted(passing) and len(passing) == 8


def test_killed_run_resumes_without_duplicates_or_losses(tmp_path):
    entry = [sys.executable, str(HERE / "distill_entry.py"), str(tmp_path)]
    process = subprocess.Popen([*entry, "0.15"], cwd=HERE)
    attempts = tmp_path / "attempts.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (attempts.exists() and attempts.read_text().count("\n") >= 4):
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written_before = len(read_jsonl(attempts))
    assert 4 <= written_before < 16, "the kill must land mid-run"
    subprocess.run(entry, cwd=HERE, check=True, timeout=300)
    counts = Counter(keys(attempts))
    assert set(counts) == {(f, a) for f in {k[0] for k in counts} for a in (0, 1)}
    assert len(counts) == 16 and set(counts.values()) == {1}
    assert Counter(keys(tmp_path / "kept.jsonl")).most_common(1)[0][1] == 1
    assert len(read_jsonl(tmp_path / "kept.jsonl")) == 8


def test_distill_cli_with_a_local_teacher(tiny_model_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["distill", "--out", str(out), "--teacher", str(tiny_model_dir), "--limit", "2", "-k", "2",
            "--max-turns", "2", "--max-tokens", "8", "--threshold", "0.0", "--metric", "value"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "agent behaviour" in result.output and "repeated_query_rate" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["temperature"] == 0.7 and summary["counts"]["all"]["tried"] == 4
    assert summary["counts"]["all"]["kept"] == 4  # threshold 0 keeps everything
    greedy = CliRunner().invoke(app, [*args, "--temperature", "0"])
    assert greedy.exit_code == 2 and "temperature > 0" in greedy.output
