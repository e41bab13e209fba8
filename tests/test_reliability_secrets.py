"""API keys come only from the environment and never reach logs, manifests, trajectories or reports.

OPENAI_API_KEY is set to a sentinel; a distillation (library and CLI), an eval and a recipe run
against the local fake server (including a failing stage whose error lands in its manifest,
from a server that echoes the key back). The server must have received the key (so the test
would see a leak), and no byte of any output file, captured log record, stdout or stderr may
contain it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_entry import EchoSearcher
from fault_openai_server import FaultServer
from selfimprove.agent import AgentSettings
from selfimprove.errors import ServerError
from selfimprove.workflows.distill import DistillConfig, distill

SENTINEL = "sk-SENTINEL-7f3a9c-never-log-me"
ANSWER = "Thought: I know.\nAction: [action: Answer, action_input: Paris]"


def files_containing(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def key_was_sent(server: FaultServer) -> bool:
    return any(r["headers"].get("Authorization") == f"Bearer {SENTINEL}" for r in server.requests)


@pytest.fixture
def secret_env(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logs included
    return caplog


def distill_config(out: Path, url: str) -> DistillConfig:
    return DistillConfig(teacher=f"openai:teacher@{url}", output_dir=str(out), limit=2, threshold=0.0,
                         agent=AgentSettings(attempts=1, progress=False))


def test_distill_and_eval_never_write_the_key(secret_env, tmp_path, capsys):
    from selfimprove.eval.harness import EvalSettings, run_eval

    with FaultServer(["500"], reply=ANSWER) as server:
        distill(distill_config(tmp_path / "distill", server.url), searcher=EchoSearcher())
        run_eval(EvalSettings(task="countdown", data="generate:n=3,seed=1", format="single",
                              models=[f"openai:student@{server.url}"], output_dir=str(tmp_path / "eval")))
        assert key_was_sent(server)
    captured = capsys.readouterr()
    assert files_containing(tmp_path, SENTINEL) == []
    assert SENTINEL not in secret_env.text + captured.out + captured.err
    assert len(list(tmp_path.rglob("*.jsonl"))) >= 3  # trajectories, records: there was output to leak into


def test_a_recipe_with_a_failing_stage_never_records_the_key(secret_env, tmp_path):
    from selfimprove.workflows.pipeline.recipe import load_recipe
    from selfimprove.workflows.pipeline.run_recipe import run_recipe
    from selfimprove.workflows.pipeline.stages import STAGE_KINDS

    def teacher_stage(params, stage_dir, inputs):
        return {"kept": distill(distill_config(stage_dir, params["url"]), searcher=EchoSearcher())["counts"]}

    if "secret_distill" not in STAGE_KINDS:
        STAGE_KINDS.register("secret_distill", teacher_stage)
    with FaultServer(["echo400"], reply=ANSWER) as server:
        path = tmp_path / "recipe.yaml"
        path.write_text(json.dumps({"name": "secret", "stages": [
            {"name": "distill", "kind": "secret_distill", "params": {"url": server.url}}]}))
        with pytest.raises(ServerError):
            run_recipe(load_recipe(path), tmp_path / "out")
        failed = json.loads((tmp_path / "out" / "distill" / "manifest.json").read_text())
        run_recipe(load_recipe(path), tmp_path / "out")
        assert key_was_sent(server)
    assert "HTTP 400" in failed["error"] and SENTINEL not in json.dumps(failed)  # rewritten by the rerun
    assert json.loads((tmp_path / "out" / "distill" / "manifest.json").read_text())["status"] == "done"
    assert files_containing(tmp_path, SENTINEL) == []
    assert SENTINEL not in secret_env.text


def test_the_distill_cli_never_prints_the_key(tmp_path):
    with FaultServer(["429", "echo400"], reply=ANSWER) as server:
        args = ["distill", "--out", str(tmp_path / "run"), "--teacher", f"openai:t@{server.url}", "--limit", "2",
                "-k", "1", "--temperature", "0"]
        env = {**os.environ, "OPENAI_API_KEY": SENTINEL}
        done = subprocess.run([sys.executable, "-m", "selfimprove", *args], capture_output=True, text=True,
                              timeout=60, env=env)
        assert key_was_sent(server)
    assert done.returncode == 2 and "HTTP 400" in done.stderr  # the echoed key was in the server's reply
    assert SENTINEL not in done.stdout + done.stderr
    assert files_containing(tmp_path, SENTINEL) == []
