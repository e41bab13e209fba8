"""The episode runner with scripted models: batching, multi-step, repeats, parse errors, step limit, resume."""

from __future__ import annotations

import json

import pytest

from selfimprove.agent import AgentSettings, run_agent
from selfimprove.agent.search_env import format_hits
from selfimprove.data.jsonl import RecordStore
from selfimprove.data.trajectory import read_trajectories, trajectory_key
from selfimprove.data.trajectory_metrics import trajectory_metrics
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.tasks import get_task
from selfimprove.tasks.base import Example, Score
from selfimprove.tools import Document, Hit
from selfimprove.tools.bm25 import BM25Searcher

CONTEXT = [["Paris", ["Paris is the capital of France."]], ["Berlin", ["Berlin is the capital of Germany."]],
           ["Alps", ["The Alps are mountains."]]]
EXAMPLES = [Example(f"q{i}", question, answer, {"level": "easy", "type": "bridge", "context": CONTEXT})
            for i, (question, answer) in enumerate([("Capital of France?", "Paris"), ("Capital of Germany?", "Berlin"),
                                                    ("Which mountains?", "Alps")])]
CONFIG = AgentSettings(progress=False)


class RecordingSearcher:
    """A BM25 searcher that records every batched call."""

    name = "recording"

    def __init__(self):
        self.inner = BM25Searcher.build([Document(t, t, "".join(s)) for t, s in CONTEXT])
        self.calls: list[list[str]] = []

    def search(self, queries, k):
        self.calls.append(list(queries))
        return self.inner.search(queries, k)


def user_text(conversation):
    """The question and the scratchpad so far (the ReAct scratchpad is the assistant's prefill)."""
    return "\n".join(m["content"] for m in conversation if m["role"] != "system")


def two_searches_then_answer(conversation, _):
    """Search the question's subject twice (different queries), then answer with the first title seen."""
    text = user_text(conversation)
    observations = text.count("Observation:")
    subject = text.split("Question: ")[1].split("?")[0].split()[-1]
    if observations == 0:
        return f"Thought: look up {subject}\nAction: [action: Search, action_input: {subject}] trailing"
    if observations == 1:
        return f"Thought: more\nAction: [action: Search, action_input: {subject} capital]"
    title = text.split("Observation: [")[1].split("]")[0]
    return f"Thought: found it\nAction: [action: Answer, action_input: {title}]"


@pytest.fixture()
def task():
    return get_task("hotpotqa")


def test_multi_step_episodes_batched_one_call_per_turn(task):
    generator, searcher = ScriptedGenerator(two_searches_then_answer), RecordingSearcher()
    trajectories = run_agent(generator, task, EXAMPLES, searcher, "react", CONFIG)
    assert len(generator.calls) == 3 and all(len(call) == 3 for call in generator.calls)
    assert len(searcher.calls) == 2 and all(len(call) == 3 for call in searcher.calls)
    assert [t.final_answer for t in trajectories] == ["Paris", "Berlin", "Alps"]
    assert [t.score["breakdown"]["em"] for t in trajectories] == [1.0, 1.0, 1.0]
    first = trajectories[0]
    assert [s.action for s in first.steps] == ["search", "search", "answer"]
    assert first.steps[0].text == "Thought: look up France\nAction: [action: Search, action_input: France]"
    assert first.steps[0].observation.startswith("[Paris] Paris is the capital")
    assert first.steps[2].observation is None
    assert (first.level, first.type, first.task, first.agent_format) == ("easy", "bridge", "hotpotqa", "react")
    assert first.flags.finished and not first.flags.step_limit
    assert first.generation["max_turns"] == 5 and first.generation["stop"] == ["]"]


def test_episodes_finish_at_different_turns(task):
    def script(conversation, _):
        if "Germany" in user_text(conversation):
            return "Thought: know it\nAction: [action: Answer, action_input: Berlin]"
        return two_searches_then_answer(conversation, _)

    generator = ScriptedGenerator(script)
    trajectories = run_agent(generator, task, EXAMPLES, RecordingSearcher(), "react", CONFIG)
    assert [len(call) for call in generator.calls] == [3, 2, 2]
    assert [len(t.steps) for t in trajectories] == [3, 1, 3]
    assert [t.example_id for t in trajectories] == ["q0", "q1", "q2"]


def test_repeated_queries_are_counted_and_step_limit_scores_zero(task):
    generator = ScriptedGenerator(lambda conv, _: "Thought: again\nAction: [action: Search, action_input: Paris ]")
    trajectories = run_agent(generator, task, EXAMPLES[:1], RecordingSearcher(), "react",
                             AgentSettings(max_turns=4, progress=False))
    t = trajectories[0]
    assert len(t.steps) == 4 and len(generator.calls) == 4
    assert [s.repeated_query for s in t.steps] == [False, True, True, True]
    assert t.flags.repeated_queries == 3 and t.flags.step_limit and not t.flags.finished
    assert t.score["value"] == 0.0 and t.score["breakdown"] == {"em": 0.0, "f1": 0.0, "prec": 0.0, "recall": 0.0}
    assert "step limit" in t.score["error"] and t.final_answer is None


def test_parse_errors_become_observations_and_are_counted(task):
    replies = iter(["I have no idea", "Action: [action: Fly, action_input: x]",
                    "Thought: ok\nAction: [action: Answer, action_input: Paris]"])
    trajectories = run_agent(ScriptedGenerator(lambda conv, _: next(replies)), task, EXAMPLES[:1],
                             RecordingSearcher(), "react", CONFIG)
    t = trajectories[0]
    assert t.flags.parse_errors == 2
    assert t.steps[0].observation.startswith("could not parse action: no '[action")
    assert t.steps[1].observation == "could not parse action: unknown action 'Fly'"
    assert t.steps[0].action == "invalid" and t.score["value"] == 1.0


def test_observation_truncation_and_search_k(task):
    searcher = RecordingSearcher()
    replies = ["Thought: x\nAction: [action: Search, action_input: capital]", "[action: Answer, action_input: a]"]
    config = AgentSettings(progress=False, max_observation_chars=20, search_k=1)
    t = run_agent(ScriptedGenerator(lambda conv, _: replies[user_text(conv).count("Observation:")]), task,
                  EXAMPLES[:1], searcher, "react", config)[0]
    assert len(t.steps[0].observation) == 20 and t.steps[0].observation.endswith("...")
    assert format_hits([Hit("a", "A", "x", 1.0), Hit("b", "B", "y", 0.5)], 100) == "[A] x [B] y"


def test_xml_and_tool_formats_run_end_to_end(task):
    def xml_script(conversation, _):
        prefill = conversation[-1]["content"] if conversation[-1]["role"] == "assistant" else ""
        if "<information>" not in prefill:
            return "<think>search</think>\n<search>France capital</search> ignored"
        return "<think>got it</think>\n<answer>Paris</answer>"

    t = run_agent(ScriptedGenerator(xml_script), task, EXAMPLES[:1], RecordingSearcher(), "xml", CONFIG)[0]
    assert [s.action for s in t.steps] == ["search", "answer"] and t.score["value"] == 1.0
    assert t.steps[0].text.endswith("</search>")

    def tool_script(conversation, _):
        if conversation[-1]["role"] != "tool":
            return '<tool_call>{"name": "search", "arguments": {"query": "France"}}</tool_call>'
        return "<answer>Paris</answer>"

    t = run_agent(ScriptedGenerator(tool_script), task, EXAMPLES[:1], RecordingSearcher(), "tools", CONFIG)[0]
    assert [s.action for s in t.steps] == ["search", "answer"] and t.final_answer == "Paris"


def test_attempts_and_any_task_with_score_answer():
    class ExactTask:
        name = "exact"

        def score_answer(self, example, answer):
            ok = answer == example.answer
            return Score(float(ok), ok, answer, {"exact": float(ok)})

    examples = [Example("a", "Say yes?", "yes", {}), Example("b", "Say no?", "no", {})]
    generator = ScriptedGenerator(lambda conv, _: "[action: Answer, action_input: yes]")
    trajectories = run_agent(generator, ExactTask(), examples, RecordingSearcher(), "react",
                             AgentSettings(attempts=2, progress=False))
    assert [t.key for t in trajectories] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert [t.value for t in trajectories] == [1.0, 1.0, 0.0, 0.0]
    assert trajectories[0].level is None and trajectories[0].task == "exact"
    metrics = trajectory_metrics(trajectories)
    assert metrics["breakdown"] == {"exact": 0.5} and metrics["mean_score"] == 0.5


def test_resume_after_partial_output_writes_each_episode_once(task, tmp_path):
    path = tmp_path / "trajectories.jsonl"
    first = run_agent(ScriptedGenerator(two_searches_then_answer), task, EXAMPLES[:2], RecordingSearcher(), "react",
                      CONFIG, RecordStore(path, key=trajectory_key))
    with path.open("a") as handle:
        handle.write('{"task": "hotpotqa", "example_id": "q2", "att')  # a crash mid-write
    generator = ScriptedGenerator(two_searches_then_answer)
    resumed = run_agent(generator, task, EXAMPLES, RecordingSearcher(), "react", CONFIG,
                        RecordStore(path, key=trajectory_key))
    assert all(len(call) == 1 for call in generator.calls)  # only q2 ran again
    assert [t.example_id for t in resumed] == ["q0", "q1", "q2"]
    assert resumed[:2] == first
    on_disk = read_trajectories(path)
    assert sorted(t.key for t in on_disk) == [("q0", 0), ("q1", 0), ("q2", 0)]
    again = ScriptedGenerator(two_searches_then_answer)
    run_agent(again, task, EXAMPLES, RecordingSearcher(), "react", CONFIG, RecordStore(path, key=trajectory_key))
    assert again.calls == [] and len(path.read_text().splitlines()) == 3


def test_agent_run_cli_with_scripted_model(tmp_path, monkeypatch, shared_data):
    from typer.testing import CliRunner

    import selfimprove.models as models
    from selfimprove.cli import app

    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "load_generator", lambda spec: ScriptedGenerator(two_searches_then_answer))
    out = tmp_path / "run"
    args = ["agent", "run", "--data", str(shared_data / "hotpotqa_train_100.json"), "--out", str(out),
            "--limit", "4", "--max-turns", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "episodes: 4" in result.output and "parse errors: 0" in result.output
    assert len(read_trajectories(out / "trajectories.jsonl")) == 4
    assert json.loads((out / "summary.json").read_text())["episodes"] == 4
    bad = CliRunner().invoke(app, args[:-2] + ["--format", "nope"])
    assert bad.exit_code != 0
