"""The gold-path teacher: an oracle that walks HotpotQA's supporting facts, for warm starts.

A 135M model cannot yet write one valid ReAct step, so self-distillation from it keeps nothing.
`GoldPathTeacher(examples, format)` is a Generator that plays the episode a good agent would:
one search per supporting-fact title (in order, each once), then the gold answer. Its steps go
through the real agent loop, search tool and verifier like any teacher's, so the trajectories
it leaves are ordinary distillation output (and `distill --teacher gold-path` keeps only those
the verifier accepts). Thoughts are short templates, not reasoning: the data teaches the format
and the search-then-answer habit; self-distillation from the warmed student comes after.
Only text formats (`react`, `xml`) are supported; the episode is found by its question text.
"""

from __future__ import annotations

from selfimprove.agent.formats import react_step, xml_search_turn
from selfimprove.errors import UserError
from selfimprove.models.generator import Completion, Conversation, SamplingParams, cut_at_stop
from selfimprove.tasks.base import Example

GOLD_PATH = "gold-path"
QUESTION_PREFIX = "Question: "


def supporting_titles(example: Example) -> list[str]:
    """Titles of the supporting facts, in order, each once.

    >>> supporting_titles(Example("1", "q", "a", meta={"supporting_facts": [["B", 0], ["A", 2], ["B", 1]]}))
    ['B', 'A']
    """
    titles: list[str] = []
    for fact in example.meta.get("supporting_facts") or []:
        if isinstance(fact, (list, tuple)) and fact and str(fact[0]) not in titles:
            titles.append(str(fact[0]))
    return titles


def render_step(fmt: str, action: str, thought: str, argument: str) -> str:
    """One step in the agent format's own syntax (action is "Search" or "Answer")."""
    if fmt == "react":
        return react_step(thought, action, argument)
    if action == "Search":
        return xml_search_turn(thought, argument)
    return f"<think>{thought}</think>\n<answer>{argument}</answer>"


def gold_plan(example: Example, fmt: str) -> list[str]:
    """The gold path of an example as step texts: a search per supporting title, then the answer."""
    titles = supporting_titles(example)
    steps = [render_step(fmt, "Search", "I need to find " + title + "." if i == 0 else
                         "Next I need to find " + title + ".", title) for i, title in enumerate(titles)]
    steps.append(render_step(fmt, "Answer", "The passages I found answer the question.", example.answer))
    return steps


class GoldPathTeacher:
    """A Generator replaying each example's gold path (see the module docstring)."""

    def __init__(self, examples: list[Example], fmt: str, name: str = GOLD_PATH):
        if fmt not in ("react", "xml"):
            raise UserError(f"teacher {GOLD_PATH} writes the react or xml formats, not '{fmt}'")
        self.name = name
        ordered = sorted(examples, key=lambda e: -len(e.question))  # longest question first: no prefix clash
        self.plans = {example.question: gold_plan(example, fmt) for example in ordered}

    def generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        return [[self._complete(conversation, params)] * params.n for conversation in conversations]

    def _complete(self, conversation: Conversation, params: SamplingParams) -> Completion:
        episode = "\n".join(str(m.get("content") or "") for m in conversation if m.get("role") != "system")
        plan = self._plan_for(episode)
        done = sum(1 for step in plan if step.rstrip("]") in episode)
        text, stop = cut_at_stop(plan[min(done, len(plan) - 1)], params.stop)
        return Completion(text=text, finish_reason="stop", stop=stop, num_tokens=len(text.split()))

    def _plan_for(self, episode: str) -> list[str]:
        start = episode.find(QUESTION_PREFIX)
        rest = episode[start + len(QUESTION_PREFIX):] if start >= 0 else episode
        for question, plan in self.plans.items():
            if rest.startswith(question):
                return plan
        raise UserError(f"teacher {GOLD_PATH}: the episode's question is not among its examples")
