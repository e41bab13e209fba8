"""The `lines` environment: a one-line-per-action protocol for the search agent.

Today an environment plugin is an agent format (docs/extending.md): it writes the first prompt,
names the stop strings, and reads each model turn back as a search, an answer or an invalid
step, never raising. The agent loop runs the search with the run's searcher (`--search`) and
shows the hits on the next turn. The model writes `SEARCH: <query>` or `ANSWER: <answer>`.
"""

from __future__ import annotations

from selfimprove.agent.formats import ParsedStep, classify, invalid
from selfimprove.data.trajectory import Step

INSTRUCTIONS = (
    "Answer the question. To search the corpus, write one line `SEARCH: <query>` and wait for the results. "
    "When you know the answer, write one line `ANSWER: <short answer>`."
)


class LinesFormat:
    """`SEARCH: q` / `ANSWER: a`, one action per turn; results come back as a user message."""

    name = "lines"
    stop = ("\n",)

    def conversation(self, question: str, steps: list[Step]) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": f"Question: {question}"}]
        for step in steps:
            messages.append({"role": "assistant", "content": step.text.strip()})
            messages.append({"role": "user", "content": f"Results:\n{step.observation or ''}"})
        return messages

    def parse(self, text: str) -> ParsedStep:
        for line in (text or "").splitlines():
            action, colon, argument = line.partition(":")
            if colon and action.strip().upper() in ("SEARCH", "ANSWER"):
                return classify(action, argument)
        return invalid("no 'SEARCH: ...' or 'ANSWER: ...' line found")
