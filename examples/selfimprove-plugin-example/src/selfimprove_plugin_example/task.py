"""The `reverse_word` task: write a word backwards, answer in `<answer>` tags.

Sources: None (the eight bundled words) or a JSONL file with a `word` column per line. The
verifier takes the last `<answer>` block (never executed), compares it case-insensitively with
the reversed word, and scores 1 or 0; no answer scores 0 with `error` set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.errors import DataError
from selfimprove.tasks.base import Example, Message, Score
from selfimprove.tasks.tags import last_tag_block

WORDS = ("stressed", "drawer", "lived", "spool", "parts", "reward", "diaper", "repaid")
PROMPT = "Write the word '{word}' backwards. Put only the result inside <answer> </answer> tags."


class ReverseWordTask:
    """Examples, rendering, extraction, scoring and a fingerprint: the whole task contract."""

    name = "reverse_word"
    agent_format = "single"  # evaluated as one prompt, one answer unless --format says otherwise
    reward_columns = (("word",),)  # the dataset column from_row needs (task_reward checks it first)

    def load(self, source: str | None = None, **options: Any) -> list[Example]:
        words = WORDS if source is None else read_words(Path(source))
        return [Example(id=f"reverse-{i}", question=w, answer=w[::-1], meta={"word": w}) for i, w in enumerate(words)]

    def render(self, example: Example) -> list[Message]:
        return [{"role": "user", "content": PROMPT.format(word=example.question)}]

    def extract(self, completion: str) -> str | None:
        return last_tag_block(completion, "answer")

    def score_answer(self, example: Example, answer: Any) -> Score:
        if answer is None:
            return Score(0.0, False, None, {"correct": 0.0}, error="no <answer> block")
        correct = str(answer).strip().lower() == str(example.answer).lower()
        return Score(float(correct), correct, answer, {"correct": float(correct)})

    def score(self, example: Example, completion: str) -> Score:
        return self.score_answer(example, self.extract(completion))

    def to_row(self, example: Example) -> dict[str, Any]:
        return {"example_id": example.id, "prompt": self.render(example), "word": example.question,
                "answer": example.answer}

    def from_row(self, row: dict[str, Any]) -> Example:
        word = str(row["word"])
        return Example(id=str(row.get("example_id", word)), question=word, answer=word[::-1], meta={"word": word})

    def fingerprint(self, example: Example) -> str:
        """Two examples are the same when they ask for the same word (leak checks use this)."""
        return example.question.strip().lower()


def read_words(path: Path) -> list[str]:
    """The `word` column of a JSONL file; a bad line fails with its file and line number."""
    words = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            words.append(str(json.loads(line)["word"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{number}: expected a JSON object with a 'word' field ({exc})") from None
    return words
