"""The trajectory schema: round trip through JSONL, strict validation with file:line:field errors."""

from __future__ import annotations

import json

import pytest

from selfimprove.data.trajectory import (
    SCHEMA_VERSION,
    Flags,
    Step,
    Timing,
    Trajectory,
    read_trajectories,
    write_trajectories,
)
from selfimprove.errors import DataError


def sample() -> Trajectory:
    steps = [Step(0, "Thought: a\nAction: [action: Search, action_input: Paris]", "a", "search", "Paris",
                  "[Paris] big", 120, 14, "stop", None, False),
             Step(1, "junk", "", "invalid", "", "could not parse action: x", 150, 3, "length", "x", False),
             Step(2, "[action: Answer, action_input: Paris]", "", "answer", "Paris", None, 170, 9)]
    return Trajectory(task="hotpotqa", example_id="q1", attempt=2, question="Capital?", gold="Paris", steps=steps,
                      final_answer="Paris", score={"value": 1.0, "correct": True, "parsed": "Paris",
                                                   "breakdown": {"em": 1.0, "f1": 1.0}, "error": None},
                      flags=Flags(1, 0, False, True), level="hard", type="bridge", model="smollm2-135m",
                      agent_format="react", searcher="bm25", generation={"temperature": 0.0, "stop": ["]"]},
                      timing=Timing("2026-01-01T00:00:00Z", 1.5, 1.2, 0.01), meta={"note": "x"})


def test_round_trip_through_jsonl(tmp_path):
    path = tmp_path / "t.jsonl"
    original = [sample(), Trajectory("countdown", "c", 0, "24?", {"target": 24, "nums": [1, 2]})]
    assert write_trajectories(path, original) == 2
    assert read_trajectories(path) == original
    assert Trajectory.from_dict(json.loads(json.dumps(sample().to_dict()))) == sample()
    assert sample().to_dict()["schema_version"] == SCHEMA_VERSION
    assert sample().key == ("q1", 2) and sample().value == 1.0


def mutate(change):
    record = sample().to_dict()
    change(record)
    return record


BAD_RECORDS = [
    (lambda r: r.pop("example_id"), "field 'example_id': missing"),
    (lambda r: r.update(attempt="2"), "field 'attempt': expected int, got str"),
    (lambda r: r.update(attempt=True), "field 'attempt': expected int, got bool"),
    (lambda r: r.update(schema_version=SCHEMA_VERSION + 1), "field 'schema_version': unsupported version"),
    (lambda r: r.update(extra=1), "field 'extra': unknown field"),
    (lambda r: r.update(steps={}), "field 'steps': expected a list"),
    (lambda r: r["steps"][1].update(action="dance"), "field 'steps[1].action': expected one of"),
    (lambda r: r["steps"][0].pop("text"), "field 'steps[0].text': missing"),
    (lambda r: r["steps"][2].update(observation=3), "field 'steps[2].observation': expected str or null"),
    (lambda r: r["steps"][0].update(surprise=1), "field 'steps[0].surprise': unknown field"),
    (lambda r: r["flags"].update(step_limit="no"), "field 'flags.step_limit': expected bool"),
    (lambda r: r.update(flags=[]), "field 'flags': expected an object"),
    (lambda r: r["timing"].update(seconds="fast"), "field 'timing.seconds': expected int or float"),
    (lambda r: r.update(score=1.0), "field 'score': expected dict"),
    (lambda r: r.update(final_answer=["a"]), "field 'final_answer': expected str or null"),
]


@pytest.mark.parametrize(("change", "message"), BAD_RECORDS)
def test_strict_validation_names_file_line_and_field(tmp_path, change, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(sample().to_dict()) + "\n" + json.dumps(mutate(change)) + "\n")
    with pytest.raises(DataError) as info:
        read_trajectories(path)
    assert f"bad.jsonl:2: {message}" in str(info.value)


def test_not_an_object(tmp_path):
    with pytest.raises(DataError, match="expected an object"):
        Trajectory.from_dict([1, 2], tmp_path / "x.jsonl", 7)
