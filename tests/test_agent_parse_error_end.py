"""`on_parse_error: end` (Araft's agent): the first unparseable step ends the episode, unanswered, score 0.

The default (`continue`) answers the step with "could not parse action: ..." and goes on; both
record why each episode ended in `meta["end_reason"]`.
"""

from __future__ import annotations

import pytest

from selfimprove.agent import AgentSettings, run_agent
from selfimprove.data.jsonl import read_jsonl
from selfimprove.data.trajectory_metrics import trajectory_metrics
from selfimprove.errors import ConfigError
from selfimprove.eval.harness import EvalSettings, run_eval, trajectory_path
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.tasks import get_task
from selfimprove.tasks.base import Example
from selfimprove.tools import Document
from selfimprove.tools.bm25 import BM25Searcher

CONTEXT = [["Paris", ["Paris is the capital of France."]], ["Berlin", ["Berlin is the capital of Germany."]]]
EXAMPLES = [Example("fr", "Capital of France?", "Paris", {"level": "easy", "context": CONTEXT}),
            Example("de", "Capital of Germany?", "Berlin", {"level": "easy", "context": CONTEXT})]
SEARCHER = BM25Searcher.build([Document(t, t, "".join(s)) for t, s in CONTEXT])
ANSWER = "Thought: I know it.\nAction: [action: Answer, action_input: {}]"


def garbled_then_answer(conversation, _):
    """France: a turn with no action, then the right answer; Germany: the right answer at once."""
    user = conversation[-1]["content"]
    if "Germany" in user:
        return ANSWER.format("Berlin")
    return ANSWER.format("Paris") if "Observation:" in user else "I am not sure what to do"


def run(on_parse_error: str):
    generator = ScriptedGenerator(garbled_then_answer)
    config = AgentSettings(progress=False, on_parse_error=on_parse_error)
    return generator, run_agent(generator, get_task("hotpotqa"), EXAMPLES, SEARCHER, "react", config)


def test_end_stops_the_episode_at_the_unparseable_step_with_score_zero():
    generator, (france, germany) = run("end")
    assert len(france.steps) == 1 and france.steps[0].parse_error and france.steps[0].observation is None
    assert france.final_answer is None and france.score["value"] == 0.0 and not france.score["correct"]
    assert france.score["breakdown"] == {"em": 0.0, "f1": 0.0, "prec": 0.0, "recall": 0.0}
    assert "unparseable" in france.score["error"]
    assert france.flags.parse_errors == 1 and not france.flags.finished and not france.flags.step_limit
    assert france.meta["end_reason"] == "parse_error" and france.generation["on_parse_error"] == "end"
    assert germany.score["value"] == 1.0 and germany.meta["end_reason"] == "answer"
    assert [len(call) for call in generator.calls] == [2]
    assert trajectory_metrics([france, germany])["answered"] == 1


def test_continue_is_the_default_and_answers_the_step():
    assert AgentSettings().on_parse_error == "continue"
    with pytest.raises((ConfigError, ValueError)):
        AgentSettings(on_parse_error="retry")
    _, (france, _) = run("continue")
    assert france.steps[0].observation.startswith("could not parse action:")
    assert france.score["value"] == 1.0 and france.meta["end_reason"] == "answer"
    assert france.generation["on_parse_error"] == "continue"


def test_step_limit_is_recorded_as_the_end_reason():
    generator = ScriptedGenerator(lambda conversation, _: "still thinking")
    config = AgentSettings(progress=False, max_turns=2)
    trajectory = run_agent(generator, get_task("hotpotqa"), EXAMPLES[:1], SEARCHER, "react", config)[0]
    assert trajectory.meta["end_reason"] == "step_limit" and trajectory.flags.step_limit


def test_eval_passes_on_parse_error_to_the_agent(tmp_path):
    def garbled(conversation, _):
        return "no action here"

    settings = EvalSettings(output_dir=str(tmp_path), limit=2, on_parse_error="end", max_turns=4)
    run_eval(settings, generator_factory=lambda spec: ScriptedGenerator(garbled, name=spec))
    stored = read_jsonl(trajectory_path(tmp_path, settings.models[0], 0))
    assert [len(t["steps"]) for t in stored] == [1, 1]
    assert {t["meta"]["end_reason"] for t in stored} == {"parse_error"}
