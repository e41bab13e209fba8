"""The `lines` agent format: a one-line-per-action protocol for the search environment.

The `selfimprove.environments` entry point group carries agent formats of the search environment
(`selfimprove.agent.search_env`, docs/extending.md): a format writes the first prompt (`prompt`),
the conversation after some steps (`extend`: the model's turns verbatim, so the token-level driver
shows the model the same text), names the stop strings, and reads each model turn back as a
search, an answer or an invalid step, never raising. The search environment runs the search with
the run's searcher (`--searcher`) and the format shows the hits on the next turn. The model writes
`SEARCH: <query>` or `ANSWER: <answer>`.
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

    def prompt(self, question: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": f"Question: {question}"}]

    def extend(self, prompt: list[dict[str, str]], steps: list[Step]) -> list[dict[str, str]]:
        messages = list(prompt)
        for step in steps:  # the model's turns verbatim, so a training sequence shows the same text
            messages.append({"role": "assistant", "content": step.text})
            if step.observation is not None:
                messages.append({"role": "user", "content": f"Results:\n{step.observation}"})
        return messages

    def conversation(self, question: str, steps: list[Step]) -> list[dict[str, str]]:
        return self.extend(self.prompt(question), steps)

    def parse(self, text: str) -> ParsedStep:
        for line in (text or "").splitlines():
            action, colon, argument = line.partition(":")
            if colon and action.strip().upper() in ("SEARCH", "ANSWER"):
                return classify(action, argument)
        return invalid("no 'SEARCH: ...' or 'ANSWER: ...' line found")
