"""Time is bounded under any server fault: a total deadline per request, a run budget, cancellation.

The servers (tests/fault_openai_server.py) trickle one byte every 0.3 s forever, accept and never
answer, or half-close after the headers. Bounds are generous (a hang, not a speed target): each
call runs under `bounded` (a thread joined with a limit) and a pytest-timeout watchdog.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from fault_openai_server import FaultServer
from selfimprove.errors import ConfigError, ServerError
from selfimprove.models import SamplingParams
from selfimprove.models.openai_backend import OpenAIGenerator
from selfimprove.rewards.config import load_reward_set
from selfimprove.rewards.judge_rewards import llm_judge_correctness
from test_reliability_faults import bounded, judge_reply

CONV = [{"role": "user", "content": "Capital of France?"}]
FAULTS = ["trickle", "stall", "halfclose"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_request_ends_by_its_total_deadline(fault):
    with FaultServer([fault] * 20) as server:
        generator = OpenAIGenerator("m", server.url, deadline_s=2)  # default: 60 s per attempt, 3 retries
        result = bounded(lambda: generator.generate([CONV], SamplingParams()), 10)
    assert isinstance(result.get("error"), ServerError), result
    assert "request deadline of 2s passed" in str(result["error"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["trickle", "stall"])
def test_the_deadline_can_be_set_in_the_environment(fault, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_OPENAI_DEADLINE", "2")
    with FaultServer([fault] * 20) as server:
        generator = OpenAIGenerator("m", server.url)
        result = bounded(lambda: generator.generate([CONV], SamplingParams()), 10)
    assert isinstance(result.get("error"), ServerError), result


@pytest.mark.timeout(60)
def test_a_trickling_server_is_cut_at_the_attempt_timeout_not_per_read():
    with FaultServer(["trickle"] * 20) as server:  # 1 byte / 0.3 s: a per-read timeout never fires
        generator = OpenAIGenerator("m", server.url, timeout=1.5, max_retries=1, backoff=0.01)
        result = bounded(lambda: generator.generate([CONV], SamplingParams()), 10)
        asked = len(server.requests)
    assert isinstance(result.get("error"), ServerError), result
    assert "gave up after 2 attempts: timed out" in str(result["error"]) and asked == 2


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", ["stall", "halfclose"])
def test_a_spent_run_budget_fails_the_remaining_requests_fast(fault, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_OPENAI_BUDGET", "2")
    with FaultServer([fault] * 1000) as server:
        generator = OpenAIGenerator("m", server.url, on_failure="empty", concurrency=2)
        result = bounded(lambda: generator.generate([CONV] * 12, SamplingParams()), 20)
    assert "error" not in result, result.get("error")
    assert all(c[0].finish_reason == "error" for c in result["value"]) and generator.stats["failures"] == 12


def client_threads_left(before: set[threading.Thread], grace: float = 5.0) -> list[str]:
    """Threads started since `before`, other than the fake server's handlers, still alive after `grace` s."""
    limit = time.monotonic() + grace
    while True:
        alive = [t.name for t in threading.enumerate()
                 if t not in before and t.is_alive() and "process_request_thread" not in t.name]
        if not alive or time.monotonic() > limit:
            return alive
        time.sleep(0.1)


@pytest.mark.timeout(120)
def test_an_abandoned_judge_call_stops_instead_of_retrying_in_the_background():
    with FaultServer(["stall"] * 1000, reply=judge_reply) as server:
        before = set(threading.enumerate())
        reward = llm_judge_correctness(OpenAIGenerator("judge", server.url), timeout_s=1, retries=1, max_workers=2)
        result = bounded(lambda: reward(["<answer>Paris</answer>", "<answer>Lyon</answer>"], answer=["Paris"] * 2,
                                        question=["q"] * 2), 30)
        leftover = client_threads_left(before)
        asked = len(server.requests)
    assert result.get("value") == [None, None], result
    assert reward.stats["timeouts"] == 4 and asked == 4
    assert leftover == [], f"judge work still running after it was given up: {leftover}"


@pytest.mark.timeout(60)
def test_a_judge_run_budget_leaves_the_rest_unasked():
    with FaultServer(["stall"] * 1000, reply=judge_reply) as server:
        reward = llm_judge_correctness(OpenAIGenerator("judge", server.url), timeout_s=30, retries=3, max_workers=2,
                                       budget_s=1.5, grade="completion")
        completions = [f"answer {i}" for i in range(6)]
        result = bounded(lambda: reward(completions, answer=["Paris"] * 6, question=["q"] * 6), 20)
    assert result.get("value") == [None] * 6, result
    assert reward.stats["calls"] == 2 and reward.stats["unasked"] == 4 and reward.stats["failures"] == 6


def write_check_inputs(tmp_path, server, **params) -> tuple[str, str]:
    rows = [{"completion": f"<answer>city {i}</answer>", "label": i % 2 == 0, "answer": "Paris", "question": "q"}
            for i in range(4)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "rewards.yaml"
    entry = {"name": "llm_judge_correctness", "params": {"judge": f"openai:j@{server.url}", **params}}
    config.write_text(json.dumps({"rewards": [entry]}))
    return str(data), str(config)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["config", "cli"])
def test_rewards_check_with_a_hanging_judge_exits_promptly(tmp_path, how):
    with FaultServer(["stall"] * 1000, reply=judge_reply) as server:
        data, config = write_check_inputs(tmp_path, server, **({"timeout_s": 1} if how == "config" else {}))
        limits = ["--timeout", "1", "--retries", "1", "--budget", "20"] if how == "cli" else []
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "selfimprove", "rewards", "check", "-d", data, "-c", config,
                               "--json", *limits], capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr  # flagged: nothing could be scored
    assert json.loads(done.stdout)["llm_judge_correctness"]["unscored"] == 4
    assert seconds < 30, f"`rewards check` took {seconds:.0f}s to exit: abandoned judge calls kept running"


GENERATE = """
import sys
from selfimprove.models import SamplingParams
from selfimprove.models.openai_backend import OpenAIGenerator
OpenAIGenerator("m", sys.argv[1], concurrency=4).generate([[{"role": "user", "content": "x"}]] * 8, SamplingParams())
"""


@pytest.mark.timeout(120)
def test_an_interrupted_run_exits_while_its_requests_hang():
    with FaultServer(["stall"] * 100) as server:
        process = subprocess.Popen([sys.executable, "-c", GENERATE, server.url], stderr=subprocess.PIPE, text=True)
        limit = time.monotonic() + 30
        while len(server.requests) < 4 and time.monotonic() < limit:
            time.sleep(0.1)
        assert len(server.requests) == 4, "the requests did not start"
        process.send_signal(signal.SIGINT)  # Ctrl-C while four requests hang (60 s each, 3 retries)
        started = time.monotonic()
        try:
            process.wait(timeout=30)
        finally:
            process.kill()
        seconds = time.monotonic() - started
    assert "KeyboardInterrupt" in process.stderr.read()
    assert seconds < 30, f"the process took {seconds:.0f}s to exit after Ctrl-C"


def test_cli_limits_reach_judges_behind_labels_and_scales(tmp_path):
    from selfimprove.rewards.judge_client import judges_of, limit_judges

    config = tmp_path / "r.yaml"
    judge = {"name": "llm_judge_correctness", "params": {"judge": "openai:j@http://127.0.0.1:9/v1"}}
    config.write_text(json.dumps({"rewards": [{**judge, "label": "a"},
                                              {"name": "scale", "reward": judge, "factor": 2, "label": "b"}]}))
    funcs, _ = load_reward_set(None, str(config))
    assert limit_judges(funcs, timeout_s=3, retries=0, budget_s=9) == 2
    assert {(j.timeout_s, j.retries, j.budget_s) for j in judges_of(funcs)} == {(3.0, 0, 9.0)}


@pytest.mark.parametrize("env, value", [("SELFIMPROVE_OPENAI_TIMEOUT", "abc"), ("SELFIMPROVE_OPENAI_RETRIES", "-1"),
                                        ("SELFIMPROVE_OPENAI_DEADLINE", "0"), ("SELFIMPROVE_OPENAI_BUDGET", "-5")])
def test_bad_time_settings_in_the_environment_are_refused(env, value, monkeypatch):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=env):
        OpenAIGenerator("m", "http://127.0.0.1:9/v1")


@pytest.mark.parametrize("options", [{"timeout_s": 0}, {"timeout_s": "abc"}, {"retries": -1}, {"retries": 1.5},
                                     {"budget_s": -1}, {"max_workers": 0}])
def test_bad_judge_limits_are_refused(options):
    with pytest.raises(ConfigError, match="judge"):
        llm_judge_correctness(OpenAIGenerator("m", "http://127.0.0.1:9/v1"), **options)
