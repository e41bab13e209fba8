"""The real embedded model (smollm2-135m) runs the agent over the bundled HotpotQA demo (slow)."""

from __future__ import annotations

import pytest

from selfimprove.agent import AgentSettings, run_agent
from selfimprove.agent.searchers import searcher_for_run
from selfimprove.data.jsonl import RecordStore
from selfimprove.data.trajectory import read_trajectories, trajectory_key
from selfimprove.tasks import get_task

pytestmark = pytest.mark.slow


def test_embedded_model_writes_valid_trajectories(tmp_path):
    from selfimprove.models import load_generator

    task = get_task("hotpotqa")
    examples = task.load(None)
    searcher = searcher_for_run("bm25", examples)
    store = RecordStore(tmp_path / "trajectories.jsonl", key=trajectory_key)
    config = AgentSettings(max_turns=2, max_tokens=32, progress=False)
    trajectories = run_agent(load_generator("smollm2-135m"), task, examples[:3], searcher, "react", config, store)
    on_disk = read_trajectories(tmp_path / "trajectories.jsonl")
    assert sorted(t.key for t in on_disk) == sorted(t.key for t in trajectories) and len(on_disk) == 3
    for t in trajectories:
        assert 1 <= len(t.steps) <= 2 and t.model == "smollm2-135m"
        assert all(s.prompt_tokens > 0 and s.completion_tokens > 0 for s in t.steps)
        assert t.flags.finished != t.flags.step_limit
        assert set(t.score["breakdown"]) == {"em", "f1", "prec", "recall"}
