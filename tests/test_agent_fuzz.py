"""Fuzzed model output never crashes the parsers or the loop, and every trajectory still validates."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfimprove.agent import AgentSettings, run_agent
from selfimprove.agent.formats import ReactFormat, ToolCallFormat, XmlFormat
from selfimprove.data.trajectory import Trajectory
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.tasks import get_task
from selfimprove.tasks.base import Example
from selfimprove.tools import Document
from selfimprove.tools.bm25 import BM25Searcher

FRAGMENTS = ["Thought:", "Action:", "[action:", "Search", "Answer", "action_input:", "]", "[", ",", "\n", " ",
             "<think>", "</think>", "<search>", "</search>", "<answer>", "</answer>", "<information>",
             "<tool_call>", "</tool_call>", '{"name": "search", "arguments": {"query": ', '"x"}}', "{", "}",
             "\\", '"', "\x00", "é", "🙂", "Paris", "Finish", "[action: Search, action_input: ", "  "]
model_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.builds(lambda a, b: a * b, st.sampled_from(FRAGMENTS), st.integers(0, 3000)),
)
FORMATS = [ReactFormat(), XmlFormat(), ToolCallFormat()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_text)
def test_parsers_never_raise(text):
    for fmt in FORMATS:
        parsed = fmt.parse(text)
        assert parsed.action in ("search", "answer", "invalid")
        assert (parsed.error is not None) == (parsed.action == "invalid")
        if parsed.action == "search":
            assert parsed.argument.strip()


@pytest.mark.timeout(120, method="thread")  # a hang guard: on 200k characters, quadratic would take hours
def test_parsers_survive_huge_adversarial_strings():
    """Linear-time patterns: 200k characters of near-matches parse (to an invalid action) without blowing up."""
    adversarial = ["[action: Search, action_input: " + " " * 200_000, "Thought:" + " " * 200_000,
                   "<tool_call>" + " " * 200_000, "[action:" * 25_000, "<search>" * 25_000, "[" * 200_000]
    for text in adversarial:
        for fmt in FORMATS:
            assert fmt.parse(text).action in ("search", "answer", "invalid"), (fmt.name, text[:20])


CONTEXT = [["Paris", ["Paris is the capital of France."]], ["Alps", ["The Alps are mountains."]]]
SEARCHER = BM25Searcher.build([Document(t, t, "".join(s)) for t, s in CONTEXT])
TASK = get_task("hotpotqa")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(model_text, min_size=1, max_size=12), st.sampled_from(["react", "xml", "tools"]),
       st.integers(1, 4))
def test_loop_survives_any_model_output(replies, fmt, max_steps):
    rng = random.Random(len(replies))
    generator = ScriptedGenerator(lambda conv, _: rng.choice(replies))
    examples = [Example(f"e{i}", f"Question {i}?", "Paris", {"context": CONTEXT}) for i in range(3)]
    trajectories = run_agent(generator, TASK, examples, SEARCHER, fmt,
                             AgentSettings(max_turns=max_steps, progress=False, max_observation_chars=80))
    assert len(trajectories) == 3
    for t in trajectories:
        assert 1 <= len(t.steps) <= max_steps
        assert t.flags.finished != t.flags.step_limit
        assert t.flags.parse_errors == sum(s.action == "invalid" for s in t.steps)
        assert all(len(s.observation) <= 80 for s in t.steps if s.observation)
        assert 0.0 <= t.value <= 1.0
        assert Trajectory.from_dict(t.to_dict()) == t
