"""The citation refiner (DR Tulu style): write a concise answer whose claims cite tool snippets.

Records (.json/.jsonl): `question`, and `tool_output` (text with `<snippet id=ID>...</snippet>`
blocks) or `snippets` (a list of {id, text}); optional `id`, `reasoning`, `answer` (a
reference), `positive_rubrics`/`negative_rubrics` (kept in meta for rubric rewards). None loads
a small bundled demo. Score: value = 1.0 when the answer is well formed (an `<answer>` whose
claims are `<snippet id=A,B>claim</snippet>`, every id present in the tool output, no stray
tags), else 0; the breakdown counts claims, uncited claims (DR Tulu's: uncited stretches of text),
citations and unknown ids, and gives DR Tulu's citation format (share of cited ids that exist).
Truth and support of the claims are NOT judged here: that is the rubric judge's and the citation
reward's (`selfimprove.rewards.citation`) job.
"""

from __future__ import annotations

import json
from typing import Any

from selfimprove.errors import DataError, UserError
from selfimprove.tasks.base import SINGLE_TURN_FORMAT, Example, Message, Score
from selfimprove.tasks.fingerprint import normalized_text
from selfimprove.tasks.records import read_located, require
from selfimprove.tasks.refiner.citations import (
    citation_format,
    parse_cited_answer,
    scored_claims,
    snippet_ids,
)

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
    {"id": "refiner-demo-2", "question": "What is the capital of Australia?",
     "tool_output": "<snippet id=c1>Canberra is the capital city of Australia.</snippet>",
     "answer": "<answer><snippet id=c1>Canberra is the capital of Australia</snippet>.</answer>"},
    {"id": "refiner-demo-3", "question": "Who painted the Mona Lisa, and where is it displayed?",
     "tool_output": "<snippet id=m1>The Mona Lisa is a portrait painted by Leonardo da Vinci.</snippet>\n<snippet id=m2>The painting has been on display at the Louvre in Paris since 1797.</snippet>",
     "answer": "<answer><snippet id=m1>Leonardo da Vinci painted it</snippet> and <snippet id=m2>it hangs in the Louvre in Paris</snippet>.</answer>"},
    {"id": "refiner-demo-4", "question": "What is the boiling point of water at sea level in Celsius?",
     "tool_output": "<snippet id=w3>At standard atmospheric pressure, water boils at 100 degrees Celsius.</snippet>",
     "answer": "<answer><snippet id=w3>Water boils at 100 degrees Celsius at sea level</snippet>.</answer>"},
    {"id": "refiner-demo-5", "question": "Which planet is the largest in the Solar System?",
     "tool_output": "<snippet id=j1>Jupiter is the largest planet in the Solar System.</snippet>\n<snippet id=j2>Jupiter is a gas giant with a mass more than twice that of all other planets combined.</snippet>",
     "answer": "<answer><snippet id=j1,j2>Jupiter is the largest planet</snippet>.</answer>"},
    {"id": "refiner-demo-6", "question": "When did Apollo 11 land on the Moon, and who first walked on it?",
     "tool_output": "<snippet id=a7>Apollo 11 landed on the Moon on 20 July 1969.</snippet>\n<snippet id=a8>Neil Armstrong was the first person to step onto the lunar surface.</snippet>",
     "answer": "<answer><snippet id=a7>Apollo 11 landed on 20 July 1969</snippet> and <snippet id=a8>Neil Armstrong walked on the Moon first</snippet>.</answer>"},
    {"id": "refiner-demo-7", "question": "What language has the most native speakers?",
     "tool_output": "<snippet id=l2>Mandarin Chinese has the largest number of native speakers of any language.</snippet>",
     "answer": "<answer><snippet id=l2>Mandarin Chinese has the most native speakers</snippet>.</answer>"},
    {"id": "refiner-demo-8", "question": "Who developed the theory of general relativity, and when was it published?",
     "tool_output": "<snippet id=e1>Albert Einstein developed the general theory of relativity.</snippet>\n<snippet id=e2>Einstein published the theory of general relativity in 1915.</snippet>",
     "answer": "<answer><snippet id=e1>Albert Einstein developed it</snippet> and <snippet id=e2>published it in 1915</snippet>.</answer>"},
    {"id": "refiner-demo-9", "question": "How many bones are in the adult human body?",
     "tool_output": "<snippet id=b9>An adult human skeleton typically has 206 bones.</snippet>",
     "answer": "<answer><snippet id=b9>An adult human has 206 bones</snippet>.</answer>"},
    {"id": "refiner-demo-10", "question": "What is the longest river in South America?",
     "tool_output": "<snippet id=r4>The Amazon is the longest river in South America, flowing about 6,400 km.</snippet>",
     "answer": "<answer><snippet id=r4>The Amazon is the longest river in South America</snippet>.</answer>"},
    {"id": "refiner-demo-11", "question": "Who was the first woman to win a Nobel Prize, and in which field?",
     "tool_output": "<snippet id=n5>Marie Curie was the first woman to win a Nobel Prize.</snippet>\n<snippet id=n6>In 1903 Curie shared the Nobel Prize in Physics.</snippet>",
     "answer": "<answer><snippet id=n5>Marie Curie was the first woman to win a Nobel Prize</snippet>, <snippet id=n6>in Physics in 1903</snippet>.</answer>"},
]
META_FIELDS = ("reasoning", "positive_rubrics", "negative_rubrics")


class RefinerTask:
    """Citation-grounded answer writing, scored on citation format validity."""

    name = "refiner"
    agent_format = SINGLE_TURN_FORMAT
    reward_columns = (("tool_output", "snippets"),)

    def load(self, source: Any = None, limit: int | None = None, **options: Any) -> list[Example]:
        from selfimprove.tasks.records import unique_ids

        if options:
            raise UserError(f"refiner.load: unknown options {sorted(options)}")
        located = [("<demo>", None, record) for record in DEMO] if source is None else read_located(source)
        examples = [example_from_record(record, path, line, index)
                    for index, (path, line, record) in enumerate(located)]
        unique_ids(examples, source or "<demo>")
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
            return Score(0.0, False, None, {"format_valid": 0.0, "claims": 0.0, "uncited_claims": 0.0,
                                            "citation_format": 0.0}, "no <answer> block")
        parsed = parse_cited_answer(answer, example.meta["snippet_ids"])
        scored = scored_claims(parsed)
        breakdown = {"format_valid": float(parsed.valid), "claims": float(len(parsed.claims)),
                     "uncited_claims": float(sum(not c.ids for c in scored)),
                     "citations": float(sum(len(c.ids) for c in parsed.claims)),
                     "unknown_ids": float(len(parsed.unknown_ids)),
                     "citation_format": citation_format(scored, example.meta["snippet_ids"])}
        claims = [{"text": c.text, "ids": c.ids} for c in parsed.claims]
        return Score(float(parsed.valid), parsed.valid, claims, breakdown, "; ".join(parsed.errors) or None)

    def score(self, example: Example, completion: str) -> Score:
        return self.score_answer(example, self.extract(completion))

    def fingerprint(self, example: Example) -> str:
        """The normalised question."""
        return normalized_text(example.question)

    def to_row(self, example: Example) -> dict[str, Any]:
        meta = example.meta
        return {"example_id": example.id, "prompt": self.render(example), "question": example.question,
                "tool_output": meta["tool_output"], "snippet_ids": list(meta["snippet_ids"]),
                "reference_answer": example.answer or "",
                "extra": json.dumps({key: meta.get(key) for key in META_FIELDS}, ensure_ascii=False)}

    def from_row(self, row: dict[str, Any]) -> Example:
        """Rebuild an example from dataset columns: `tool_output` (text with `<snippet id=...>` blocks)
        or `snippets` (a list of {id, text}, or its JSON text) is required; `snippet_ids` (read from
        the snippets when absent), `example_id`/`id`, `question`, `reference_answer`/`answer` and
        `extra` are optional. A missing column is a KeyError; an unusable value a ValueError
        (or DataError) naming the column.

        >>> RefinerTask().from_row({"snippets": '[{"id": "a1", "text": "Paris is in France."}]'}).meta["snippet_ids"]
        ['a1']
        """
        tool_output, ids = _row_snippets(row)
        if row.get("snippet_ids") is not None:
            if not isinstance(row["snippet_ids"], list | tuple):
                raise ValueError(f"column 'snippet_ids': expected a list, got {type(row['snippet_ids']).__name__}")
            ids = [str(i) for i in row["snippet_ids"]]
        extra = json.loads(row.get("extra") or "{}")
        meta = {"tool_output": tool_output, "snippet_ids": ids, **(extra if isinstance(extra, dict) else {})}
        question = row.get("question") if isinstance(row.get("question"), str) else ""
        example_id = row.get("example_id", row.get("id"))
        example_id = f"refiner:{normalized_text(question or tool_output)[:60]}" if example_id is None else example_id
        reference = row.get("reference_answer", row.get("answer"))
        return Example(str(example_id), question, reference if isinstance(reference, str) and reference else None, meta)


def _row_snippets(row: dict[str, Any]) -> tuple[str, list[str]]:
    """(tool_output text, snippet ids) from the `tool_output` or `snippets` column; KeyError when neither."""
    if "tool_output" not in row and "snippets" in row:
        snippets = json.loads(row["snippets"]) if isinstance(row["snippets"], str) else row["snippets"]
        return _snippets_as_text(snippets, "dataset row", None)
    tool_output = row["tool_output"]
    if not isinstance(tool_output, str):
        raise ValueError(f"column 'tool_output': expected text, got {type(tool_output).__name__}")
    return tool_output, snippet_ids(tool_output)


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
