"""HotpotQA as a single-turn task: loaders for both layouts and the hub, prompt, extraction, F1 score.

Sources: None (the bundled 30-question demo), a local .json/.jsonl file in the original layout
(`context: [[title, [sentences]]]`, `supporting_facts: [[title, idx]]`) or the Hugging Face
layout (`context: {title, sentences}`, `supporting_facts: {title, sent_id}`), or
"hub:distractor|fullwiki:SPLIT" (imports `datasets` lazily; needs network or a local cache).
Examples always carry the ORIGINAL layout in `meta` (level, type, supporting_facts, context).
Score: value = official F1; breakdown em/f1/prec/recall; correct = (EM == 1). The prompt puts
the distractor paragraphs in the user message when `with_context` (default) is set.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from selfimprove.errors import DataError, UserError
from selfimprove.tasks.base import Example, Message, Score
from selfimprove.tasks.fingerprint import normalized_text
from selfimprove.tasks.hotpotqa.metrics import answer_metrics
from selfimprove.tasks.records import read_located, require
from selfimprove.tasks.tags import last_tag_block

SYSTEM_PROMPT = (
    "You answer multi-hop questions. Think step by step, then give only the short final answer "
    "(an entity, a date, a number, or yes/no) inside <answer>...</answer>."
)
HUB_DATASET = "hotpotqa/hotpot_qa"


def demo_path() -> Path:
    """The bundled demo file (30 train questions: 10 easy, 10 medium, 10 hard)."""
    return Path(str(resources.files("selfimprove") / "assets" / "hotpotqa" / "demo.json"))


class HotpotQATask:
    """HotpotQA question answering scored with the official answer metrics.

    >>> task = HotpotQATask()
    >>> example = task.from_row({"example_id": "q", "question": "Who?", "answer": "Ada Lovelace"})
    >>> score = task.score(example, "<answer>Lovelace</answer>")
    >>> score.value, score.correct, score.breakdown["prec"]
    (0.6666666666666666, False, 1.0)
    """

    name = "hotpotqa"
    agent_format = "react"  # a search agent by default (`--format single` answers from the prompt)
    reward_columns = (("answer",),)

    def __init__(self, with_context: bool = True, max_context_paragraphs: int = 10):
        self.with_context = with_context
        self.max_context_paragraphs = max_context_paragraphs

    def load(self, source: Any = None, limit: int | None = None, **options: Any) -> list[Example]:
        from selfimprove.tasks.records import unique_ids

        if options:
            raise UserError(f"hotpotqa.load: unknown options {sorted(options)}")
        if source is None:
            examples = load_file(demo_path())
        elif isinstance(source, str) and source.startswith("hub:"):
            examples = load_hub(source, limit=limit)
        else:
            examples = load_file(source)
        unique_ids(examples, source or demo_path())
        return examples[:limit] if limit is not None else examples

    def render(self, example: Example) -> list[Message]:
        parts = []
        if self.with_context:
            for title, sentences in example.meta.get("context", [])[: self.max_context_paragraphs]:
                parts.append(f"## {title}\n{''.join(sentences).strip()}")
        parts.append(f"Question: {example.question}")
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(parts)}]

    def extract(self, completion: str) -> str | None:
        return last_tag_block(completion, "answer")

    def score_answer(self, example: Example, answer: Any) -> Score:
        if not isinstance(answer, str):
            return Score(0.0, False, None, dict.fromkeys(("em", "f1", "prec", "recall"), 0.0), "no <answer> found")
        metrics = {key: float(value) for key, value in answer_metrics(answer, str(example.answer)).items()}
        return Score(metrics["f1"], metrics["em"] == 1.0, answer, metrics)

    def score(self, example: Example, completion: str) -> Score:
        return self.score_answer(example, self.extract(completion))

    def reference_completion(self, example: Example) -> str | None:
        """The gold answer in the task's answer format (None without one).

        >>> HotpotQATask().reference_completion(Example("q", "Who?", "Ada Lovelace"))
        '<answer>Ada Lovelace</answer>'
        """
        return f"<answer>{example.answer}</answer>" if str(example.answer or "").strip() else None

    def fingerprint(self, example: Example) -> str:
        """The normalised question (leak checks and de-duplication)."""
        return normalized_text(example.question)

    def to_row(self, example: Example) -> dict[str, Any]:
        meta = example.meta
        return {"example_id": example.id, "prompt": self.render(example), "question": example.question,
                "answer": example.answer, "level": meta.get("level") or "", "type": meta.get("type") or "",
                "supporting_facts": json.dumps(meta.get("supporting_facts", [])),
                "context": json.dumps(meta.get("context", []), ensure_ascii=False)}

    def from_row(self, row: dict[str, Any]) -> Example:
        """Rebuild an example from dataset columns: only `answer` is required (text or a number);
        `example_id`/`id`, `question`, `level`, `type`, `supporting_facts` and `context` (JSON text
        or either layout, as in `hotpotqa/hotpot_qa` on the hub) are optional. A missing `answer`
        is a KeyError; an unusable value a ValueError (or DataError) naming the column.

        >>> HotpotQATask().from_row({"answer": "Paris"}).answer
        'Paris'
        """
        answer = row["answer"]
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            raise ValueError(f"column 'answer': expected text, got {type(answer).__name__}")
        record = {key: _decoded(row.get(key)) for key in ("supporting_facts", "context")}
        meta = {"level": row.get("level") or None, "type": row.get("type") or None,
                "supporting_facts": _supporting_facts(record, "dataset row", None),
                "context": _context(record, "dataset row", None)}
        question = row.get("question") if isinstance(row.get("question"), str) else ""
        example_id = row.get("example_id", row.get("id"))
        example_id = f"hotpotqa:{normalized_text(question or str(answer))[:60]}" if example_id is None else example_id
        return Example(str(example_id), question, str(answer), meta)


def load_file(source: Any) -> list[Example]:
    """Examples from any data source (`tasks.records`: files, globs, hf:, datasets objects) in either layout."""
    return [example_from_record(record, path, line) for path, line, record in read_located(source)]


def load_hub(source: str, limit: int | None = None) -> list[Example]:
    """"hub:CONFIG:SPLIT" -> examples of `hotpotqa/hotpot_qa` (CONFIG distractor or fullwiki, SPLIT validation by
    default): a shorthand for the source "hf:hotpotqa/hotpot_qa:CONFIG:SPLIT", which `tasks.records` loads."""
    _, _, rest = source.partition(":")
    config, _, split = rest.partition(":")
    if config not in ("distractor", "fullwiki"):
        raise UserError(f"hotpotqa source '{source}': expected hub:distractor:SPLIT or hub:fullwiki:SPLIT")
    split = split or "validation"
    return load_file(f"hf:{HUB_DATASET}:{config}:{split}[:{limit}]" if limit else f"hf:{HUB_DATASET}:{config}:{split}")


def example_from_record(record: dict[str, Any], path: str | Path, line: int | None) -> Example:
    """One record in either layout -> an Example with the original layout in meta."""
    qid = record.get("_id", record.get("id"))
    if not isinstance(qid, str | int):
        raise DataError(path, "missing or invalid id", line=line, field="_id")
    meta = {"level": record.get("level"), "type": record.get("type"),
            "supporting_facts": _supporting_facts(record, path, line),
            "context": _context(record, path, line)}
    question = require(record, "question", path, line, str)
    return Example(str(qid), question, require(record, "answer", path, line, str), meta)


def _decoded(value: Any) -> Any:
    """A `from_row` column that may hold JSON text: decoded; empty or None -> []."""
    if isinstance(value, str):
        return json.loads(value) if value.strip() else []
    return [] if value is None else value


def _supporting_facts(record: dict[str, Any], path: str | Path, line: int | None) -> list[list]:
    facts = _pairs(record, "supporting_facts", "sent_id", path, line)
    if not all(isinstance(fact[1], int) for fact in facts):
        raise DataError(path, "expected [[title, sentence_index], ...]", line=line, field="supporting_facts")
    return [[str(title), int(idx)] for title, idx in facts]


def _context(record: dict[str, Any], path: str | Path, line: int | None) -> list[list]:
    context = _pairs(record, "context", "sentences", path, line)
    if not all(isinstance(paragraph[1], list | tuple) for paragraph in context):
        raise DataError(path, "expected [[title, [sentences]], ...]", line=line, field="context")
    return [[str(title), [str(s) for s in sents]] for title, sents in context]


def _pairs(record: dict[str, Any], field: str, second: str, path: str | Path, line: int | None) -> list:
    """A field as [[title, x], ...], from the original layout or HF's {title: [...], second: [...]}."""
    value = record.get(field, [])
    if isinstance(value, dict):
        titles, seconds = value.get("title"), value.get(second)
        if not isinstance(titles, list) or not isinstance(seconds, list) or len(titles) != len(seconds):
            raise DataError(path, f"expected {{title: [...], {second}: [...]}} of equal length", line=line, field=field)
        value = [[title, item] for title, item in zip(titles, seconds, strict=True)]
    if not isinstance(value, list) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
        raise DataError(path, "expected a list of [title, value] pairs", line=line, field=field)
    return value


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """An official prediction file {"answer": {id: text}, "sp": {id: [[title, idx]]}} (either key may be absent)."""
    from selfimprove.data.safe_load import read_json_file

    data = read_json_file(path)
    if not isinstance(data, dict):
        raise DataError(path, 'expected an object {"answer": {...}, "sp": {...}}')
    for key in ("answer", "sp"):
        if not isinstance(data.setdefault(key, {}), dict):
            raise DataError(path, "expected an object mapping question ids", field=key)
    for qid, answer in data["answer"].items():
        if not isinstance(answer, str):
            raise DataError(path, f"answer of '{qid}' must be a string, got {type(answer).__name__}", field="answer")
    for qid, facts in data["sp"].items():
        if not isinstance(facts, list) or not all(isinstance(f, list) and len(f) == 2 and isinstance(f[0], str)
                                                  and isinstance(f[1], int) for f in facts):
            raise DataError(path, f"sp of '{qid}' must be [[title, sentence_index], ...]", field="sp")
    return data


def evaluate_files(prediction_path: str | Path, gold_path: str | Path) -> dict[str, Any]:
    """The official metrics (+ per-level/type breakdowns) of a prediction file against a gold file."""
    from selfimprove.tasks.hotpotqa.metrics import evaluate

    return evaluate(read_predictions(prediction_path), load_file(gold_path))
