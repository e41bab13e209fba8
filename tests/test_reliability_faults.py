"""External faults: judge and teacher servers that hang, fail, rate-limit or send garbage.

Everything runs against a real local HTTP server (tests/fault_openai_server.py). Each fault is
retried a bounded number of times with backoff, then the explicit failure policy applies (the
judge: None + counted, or ServerError; the teacher: ServerError, a one-line CLI error) and the
run never hangs: every call here is guarded by a wall-clock bound. A distillation whose teacher
dies mid-run keeps what it wrote, and a rerun against a healthy server completes it exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from distill_entry import EchoSearcher
from fault_openai_server import FaultServer
from selfimprove.agent import AgentSettings
from selfimprove.data.jsonl import read_jsonl
from selfimprove.data.trajectory import trajectory_key
from selfimprove.errors import ServerError
from selfimprove.models import SamplingParams
from selfimprove.models.openai_backend import OpenAIGenerator
from selfimprove.rewards.judge_client import FENCE_BEGIN
from selfimprove.rewards.judge_rewards import llm_judge_correctness
from selfimprove.workflows.distill import DistillConfig, distill

CONV = [{"role": "user", "content": "Capital of France?"}]
FAST = {"backoff": 0.01, "timeout": 0.5, "max_retries": 2}
ANSWER_PARIS = "Thought: I know it.\nAction: [action: Answer, action_input: Paris]"


def bounded(fn, seconds: float):
    """Run fn() in a thread; fail if it does not return within `seconds` (a hang)."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s: the call hangs"
    result["seconds"] = time.monotonic() - started
    return result


@pytest.mark.parametrize("fault", ["hang", "empty", "nochoices", "binary", "html", "badcontent", "drop", "badjson"])
def test_every_fault_is_retried_then_answered(fault):
    with FaultServer([fault, fault], slow_seconds=1.0) as server:
        generator = OpenAIGenerator("m", server.url, **FAST)
        result = bounded(lambda: generator.generate([CONV], SamplingParams(n=2)), 10)
    assert "error" not in result, result.get("error")
    assert [c.text for c in result["value"][0]] == ["Paris", "Paris"]
    assert generator.stats["retries"] == 2


@pytest.mark.parametrize("fault", ["hang", "empty", "binary", "badcontent", "500", "429", "drop"])
def test_a_server_that_never_recovers_fails_within_the_retry_budget(fault):
    with FaultServer([fault] * 20, slow_seconds=1.0) as server:
        generator = OpenAIGenerator("m", server.url, **FAST)
        result = bounded(lambda: generator.generate([CONV], SamplingParams()), 10)
        requests = len(server.requests)
    assert isinstance(result.get("error"), ServerError), result
    assert "gave up after 3 attempts" in str(result["error"]) and requests == 3


def test_a_client_error_is_not_retried_and_does_not_echo_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SENTINEL-echo-0000")
    with FaultServer(["echo400"]) as server:
        generator = OpenAIGenerator("m", server.url, **FAST)
        result = bounded(lambda: generator.generate([CONV], SamplingParams()), 5)
    assert isinstance(result.get("error"), ServerError) and "HTTP 400" in str(result["error"])
    assert generator.stats["requests"] == 1
    assert "SENTINEL" not in str(result["error"]), "the server reflected the key into the error message"


def judge_reply(body: dict) -> str:
    response = body["messages"][-1]["content"].split(FENCE_BEGIN)[-1]
    return "Verdict: yes" if "Paris" in response else "Verdict: no"


@pytest.mark.parametrize("fault", ["500", "429", "badjson", "hang", "empty", "drop"])
def test_llm_judge_survives_transient_faults(fault):
    with FaultServer([fault, fault], reply=judge_reply, slow_seconds=1.0) as server:
        reward = llm_judge_correctness(OpenAIGenerator("judge", server.url, **FAST), retries=1, timeout_s=5.0,
                                       max_workers=1)
        result = bounded(lambda: reward(["<answer>Paris</answer>", "<answer>Lyon</answer>"], answer=["Paris"] * 2,
                                        question=["Capital?"] * 2), 15)
    assert result.get("value") == [1.0, 0.0], result
    assert reward.stats["failures"] == 0


def test_llm_judge_on_a_dead_server_skips_or_fails_without_hanging():
    with FaultServer(["500"] * 100, reply=judge_reply) as server:
        skip = llm_judge_correctness(OpenAIGenerator("judge", server.url, **FAST), retries=1, timeout_s=5.0)
        skipped = bounded(lambda: skip(["<answer>Paris</answer>"] * 3, answer=["Paris"] * 3, question=["q"] * 3), 15)
        fail = llm_judge_correctness(OpenAIGenerator("judge", server.url, **FAST), retries=0, on_failure="fail")
        failed = bounded(lambda: fail(["<answer>Paris</answer>"], answer=["Paris"], question=["q"]), 15)
    assert skipped.get("value") == [None, None, None], skipped  # identical prompts: asked once
    assert skip.stats["failures"] == 3 and skip.stats["errors"] == 2
    assert isinstance(failed.get("error"), ServerError)


def test_llm_judge_times_out_a_hanging_server():
    hang_seconds = 6.0
    with FaultServer(["hang"] * 10, reply=judge_reply, slow_seconds=hang_seconds) as server:
        reward = llm_judge_correctness(OpenAIGenerator("judge", server.url, timeout=30, max_retries=0),
                                       retries=1, timeout_s=0.3)
        result = bounded(lambda: reward(["<answer>Paris</answer>"], answer=["Paris"], question=["q"]), 2 * hang_seconds)
    assert result.get("value") == [None] and reward.stats["timeouts"] == 2
    assert result["seconds"] < hang_seconds, "the judge waited for the hanging server instead of timing out"


def teacher_config(out, server) -> DistillConfig:
    return DistillConfig(teacher=f"openai:teacher@{server.url}", output_dir=str(out), limit=4, metric="f1", threshold=0.0,
                         agent=AgentSettings(attempts=2, temperature=0.7, progress=False))


def test_distill_with_an_openai_teacher_rides_out_faults(tmp_path):
    with FaultServer(["500", "429", "badjson", "empty", "drop"], reply=ANSWER_PARIS) as server:
        result = bounded(lambda: distill(teacher_config(tmp_path, server), searcher=EchoSearcher()), 30)
    assert "error" not in result, result.get("error")
    assert result["value"]["counts"]["all"]["tried"] == 8


def search_then_answer(body: dict) -> str:
    """Questions of even length search once before answering; the others answer at once."""
    text = body["messages"][-1]["content"]
    question = text.split("Question: ")[-1].split("\n", 1)[0]
    if len(question) % 2 == 0 and "Observation:" not in text:
        return "Thought: look it up.\nAction: [action: Search, action_input: the question]"
    return ANSWER_PARIS


def test_distill_whose_teacher_dies_keeps_its_records_and_resumes(tmp_path):
    with FaultServer(["ok"] * 8 + ["500"] * 100, reply=search_then_answer) as server:  # dies after turn 1
        result = bounded(lambda: distill(teacher_config(tmp_path, server), searcher=EchoSearcher()), 30)
        port = server.port
    assert isinstance(result.get("error"), ServerError), result
    written = read_jsonl(tmp_path / "attempts.jsonl")
    assert 0 < len(written) < 8
    with FaultServer(reply=search_then_answer, port=port) as server:  # the same teacher URL: the same run
        bounded(lambda: distill(teacher_config(tmp_path, server), searcher=EchoSearcher()), 30)
        resumed_requests = len(server.requests)
    counts = Counter(trajectory_key(r) for r in read_jsonl(tmp_path / "attempts.jsonl"))
    assert len(counts) == 8 and set(counts.values()) == {1}
    assert resumed_requests == 2 * (8 - len(written)), "the resumed run redid finished attempts"


def test_distill_cli_reports_a_dead_teacher_in_one_line(tmp_path):
    import subprocess
    import sys

    with FaultServer(["500"] * 100, reply=ANSWER_PARIS) as server:
        args = ["distill", "--out", str(tmp_path), "--teacher", f"openai:t@{server.url}", "--limit", "1", "-k", "1"]
        done = subprocess.run([sys.executable, "-m", "selfimprove", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "gave up after" in done.stderr and "Traceback" not in done.stderr
