"""Refiner: citation parsing (claims, ids, unknown ids, format errors), citation metrics, task score."""

from __future__ import annotations

import json

import pytest

from selfimprove.errors import DataError
from selfimprove.tasks import get_task
from selfimprove.tasks.refiner.citations import (
    citation_format,
    citation_metrics,
    parse_cited_answer,
    scored_claims,
    snippet_ids,
)

KNOWN = {"a1", "b2", "c3"}


@pytest.mark.parametrize(
    "text, claims, unknown, valid",
    [("<answer><snippet id=a1>X is Y.</snippet></answer>", [("X is Y.", ["a1"])], [], True),
     ("<answer><snippet id=a1, b2>X</snippet> and <snippet id=\"c3\">Z</snippet>.</answer>",
      [("X", ["a1", "b2"]), ("Z", ["c3"])], [], True),
     ("<answer><snippet id=a1,zz>X</snippet></answer>", [("X", ["a1", "zz"])], ["zz"], False),
     ("<answer>No citations at all.</answer>", [], [], False),
     ("<answer><snippet id=>X</snippet></answer>", [("X", [])], [], False),
     ("<answer><snippet id=a1>  </snippet></answer>", [("", ["a1"])], [], False),
     ("<answer><snippet id=a1>X</answer>", [], [], False),
     ("<answer><snippet id=a1>X</snippet></snippet></answer>", [("X", ["a1"])], [], False),
     ("<answer><snippet id=a1>X</snippet>", [], [], False),
     ("draft <answer>old</answer> final <answer><snippet id=b2>new</snippet></answer>", [("new", ["b2"])], [], True)],
)
def test_parse_cited_answer(text, claims, unknown, valid):
    parsed = parse_cited_answer(text, KNOWN)
    assert [(c.text, c.ids) for c in parsed.claims] == claims
    assert parsed.unknown_ids == unknown
    assert parsed.valid is valid
    assert bool(parsed.errors) is not valid


def test_unknown_ids_only_checked_when_known_ids_given():
    parsed = parse_cited_answer("<snippet id=q>claim</snippet>")
    assert parsed.valid and parsed.unknown_ids == []


def test_snippet_ids_of_tool_output():
    assert snippet_ids("<snippet id=a1>x</snippet>\n<snippet id='b-2'>y</snippet><snippet id=a1>z</snippet>") == ["a1", "b-2"]


# DR Tulu (citation_utils.score_in_context_citations): F1 per claim = 2PR/(P+R), 0 when both 0; mean over claims.
@pytest.mark.parametrize(
    "judged, expected",
    [([(1.0, 1.0)], (1.0, 1.0, 1.0)),
     ([(0.5, 1.0)], (1.0, 0.5, 2 / 3)),
     ([(1.0, 1.0), (0.0, 1.0)], (1.0, 0.5, 0.5)),  # a cited supported claim + an uncited one that needed a citation
     ([(0.0, 0.0)], (0.0, 0.0, 0.0)),
     ([], (0.0, 0.0, 0.0))],
)
def test_citation_metrics(judged, expected):
    metrics = citation_metrics(judged)
    got = (metrics["citation_precision"], metrics["citation_recall"], metrics["citation_f1"])
    assert got == pytest.approx(expected)


def test_scored_claims_are_cited_spans_and_uncited_stretches():
    parsed = parse_cited_answer("<answer>Intro. <snippet id=a1, b2>X is Y</snippet> <snippet id=c3>Z</snippet>"
                                " Intro. <snippet id=zz>X is Y</snippet></answer>", KNOWN)
    # "Intro." twice is one claim (DR Tulu keys claims by text); the later span of "X is Y" wins
    assert [(c.text, c.ids) for c in scored_claims(parsed)] == [("Intro.", []), ("X is Y", ["zz"]), ("Z", ["c3"])]
    # cited ids {zz, c3}: one of two exists
    assert citation_format(scored_claims(parsed), KNOWN) == 0.5
    assert citation_format(scored_claims(parse_cited_answer("<answer>none</answer>")), KNOWN) == 0.0


def test_task_scores_format_validity_and_round_trips(tmp_path):
    record = {"id": "r1", "question": "Who?", "snippets": [{"id": "s1", "text": "Ada wrote it."}],
              "positive_rubrics": [{"description": "names Ada", "weight": 1}]}
    path = tmp_path / "refiner.jsonl"
    path.write_text(json.dumps(record) + "\n")
    task = get_task("refiner")
    example = task.load(str(path))[0]
    assert example.meta["snippet_ids"] == ["s1"]
    good = task.score(example, "<think>hm</think><answer><snippet id=s1>Ada wrote it</snippet>.</answer>")
    assert good.value == 1.0 and good.correct and good.parsed == [{"text": "Ada wrote it", "ids": ["s1"]}]
    assert good.breakdown["uncited_claims"] == 1.0 and good.breakdown["citation_format"] == 1.0  # the "."
    bad = task.score(example, "<answer><snippet id=s2>Ada wrote it</snippet></answer>")
    assert bad.value == 0.0 and bad.breakdown["unknown_ids"] == 1.0 and "s2" in bad.error
    assert bad.breakdown["citation_format"] == 0.0
    assert task.score(example, "Ada wrote it.").value == 0.0
    row = task.to_row(example)
    json.dumps(row)
    assert task.from_row(row) == example
    assert "<snippet id=s1>" in row["prompt"][-1]["content"]


def test_demo_reference_answers_are_valid():
    task = get_task("refiner")
    assert all(task.score(e, e.answer).correct for e in task.load())


@pytest.mark.parametrize(
    "record, field",
    [({"tool_output": "x"}, "question"), ({"question": "q"}, "tool_output"),
     ({"question": "q", "snippets": [{"id": "a"}]}, "snippets")],
)
def test_malformed_records(tmp_path, record, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError) as info:
        get_task("refiner").load(str(path))
    assert (info.value.line, info.value.field) == (1, field)
