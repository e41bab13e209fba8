"""The citation refiner (DR Tulu style): write a concise answer whose claims cite tool snippets.

Records (.json/.jsonl): `question`, and `tool_output` (text with `<snippet id=ID>...</snippet>`
blocks) or `snippets` (a list of {id, text}); optional `id`, `reasoning`, `answer` (a
reference), `positive_rubrics`/`negative_rubrics` (kept in meta for rubric rewards). None loads
a small bundled demo. Score: value = 1.0 when the answer is well formed (an `<answer>` whose
claims are `<snippet id=A,B>claim</snippet>`, every id present in the tool output, no stray
tags), else 0; the breakdown counts claims, citations and unknown ids. Truth and support of the
claims are NOT judged here: that is the rubric judge's and `citations.citation_metrics`' job.
"""

from __future__ import annotations

import json
from typing import Any

from selfimprove.errors import DataError, UserError
from selfimprove.tasks.base import Example, Message, Score
from selfimprove.tasks.citations import parse_cited_answer, snippet_ids
from selfimprove.tasks.records import read_records, require

SYSTEM_PROMPT = (
    "You write the final answer of a research agent. Using only the search results below, answer the "
    "question concisely inside one <answer>...</answer> block. Wrap every factual claim as "
    "<snippet id=ID1,ID2>claim</snippet>, citing only ids that appear in the search results."
)
DEMO = [
    {"id": "refiner-demo-0", "question": "When was the Eiffel Tower completed, and how tall is it?",
     "tool_output": "<snippet id=a1>The Eiffel Tower was completed in March 1889 for the World's Fair.</snippet>\n"
                    "<snippet id=b2>The tower is 330 metres tall including antennas.</snippet>",
     "answer": "<answer><snippet id=a1>It was completed in 1889</snippet> and "
               "<snippet id=b2>is 330 metres tall</snippet>.</answer>"},
    {"id": "refiner-demo-1", "question": "Who wrote the novel Dune?",
     "tool_output": "<snippet id=x7>Dune is a 1965 science fiction novel by Frank Herbert.</snippet>",
     "answer": "<answer><snippet id=x7>Dune was written by Frank Herbert</snippet>.</answer>"},
]
META_FIELDS = ("reasoning", "positive_rubrics", "negative_rubrics")


class RefinerTask:
    """Citation-grounded answer writing, scored on citation format validity."""

    name = "refiner"

    def load(self, source: str | None = None, limit: int | None = None, **options: Any) -> list[Example]:
        if options:
            raise UserError(f"refiner.load: unknown options {sorted(options)}")
        located = [(None, record) for record in DEMO] if source is None else read_records(source)
        examples = [example_from_record(record, source or "<demo>", line, index)
                    for index, (line, record) in enumerate(located)]
        return examples[:limit] if limit is not None else examples

    def render(self, example: Example) -> list[Message]:
        user = f"Question: {example.question}\n\nSearch results:\n{example.meta['tool_output']}"
        if example.meta.get("reasoning"):
            user += f"\n\nAgent reasoning:\n{example.meta['reasoning']}"
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def extract(self, completion: str) -> str | None:
        return completion if isinstance(completion, str) and "<answer>" in completion.lower() else None

    def score_answer(self, example: Example, answer: Any) -> Score:
        if not isinstance(answer, str):
            return Score(0.0, False, None, {"format_valid": 0.0, "claims": 0.0}, "no <answer> block")
        parsed = parse_cited_answer(answer, example.meta["snippet_ids"])
        breakdown = {"format_valid": float(parsed.valid), "claims": float(len(parsed.claims)),
                     "citations": float(sum(len(c.ids) for c in parsed.claims)),
                     "unknown_ids": float(len(parsed.unknown_ids))}
        claims = [{"text": c.text, "ids": c.ids} for c in parsed.claims]
        return Score(float(parsed.valid), parsed.valid, claims, breakdown, "; ".join(parsed.errors) or None)

    def score(self, example: Example, completion: str) -> Score:
        return self.score_answer(example, self.extract(completion))

    def to_row(self, example: Example) -> dict[str, Any]:
        meta = example.meta
        return {"example_id": example.id, "prompt": self.render(example), "question": example.question,
                "tool_output": meta["tool_output"], "snippet_ids": list(meta["snippet_ids"]),
                "reference_answer": example.answer or "",
                "extra": json.dumps({key: meta.get(key) for key in META_FIELDS}, ensure_ascii=False)}

    def from_row(self, row: dict[str, Any]) -> Example:
        meta = {"tool_output": row["tool_output"], "snippet_ids": list(row["snippet_ids"]),
                **json.loads(row.get("extra") or "{}")}
        return Example(str(row["example_id"]), row["question"], row.get("reference_answer") or None, meta)


def example_from_record(record: dict[str, Any], path: str, line: int | None, index: int) -> Example:
    question = require(record, "question", path, line, str)
    if "snippets" in record:
        tool_output, ids = _snippets_as_text(record["snippets"], path, line)
    else:
        tool_output = require(record, "tool_output", path, line, str)
        ids = snippet_ids(tool_output)
    meta = {"tool_output": tool_output, "snippet_ids": ids, **{key: record.get(key) for key in META_FIELDS}}
    return Example(str(record.get("id", index)), question, record.get("answer"), meta)


def _snippets_as_text(snippets: Any, path: str, line: int | None) -> tuple[str, list[str]]:
    if not isinstance(snippets, list) or not all(isinstance(s, dict) and "id" in s and "text" in s for s in snippets):
        raise DataError(path, "expected a list of {id, text}", line=line, field="snippets")
    text = "\n".join(f"<snippet id={s['id']}>{s['text']}</snippet>" for s in snippets)
    return text, [str(s["id"]) for s in snippets]
