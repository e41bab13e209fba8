"""The search environment: an agent that searches a corpus and answers, in any agent format.

One episode = one question. Each model turn is read with the format's parser through
`formats.parse_turn` (a turn cut by its token budget before closing its action is invalid):
- a search: the query (cut to `max_query_chars`) goes to the `SearchTool`, whose hits become the
  observation (one line, cut to `max_observation_chars`); a query already issued in the episode
  (compared lower-cased, whitespace collapsed) is flagged `repeated_query` and searched again;
- an answer: the episode ends (`finished`: its format's own end);
- anything else: "could not parse action: ..." is the observation (`on_parse_error: continue`,
  the default), or the episode ends there without an answer (`end`, as Araft's agent does).
After `max_turns` model turns without an answer the episode ends with `hit_step_limit`; the
last turn's search is not run (nobody would read its result). The episode starts from the
format's first prompt (`fmt.prompt(question)`, or the prompt column of a GRPO row) and the
conversation is the format's (`fmt.extend(prompt, steps)`), so SFT rows rebuilt from a
trajectory show the exact prompts the agent saw. `end_reason` is "answer", "parse_error" or "step_limit".
"""

from __future__ import annotations

from typing import Any, Literal

from selfimprove.agent.environment import EpisodeFacts, ModelTurn, ToolCall, TurnSpec
from selfimprove.agent.formats import AgentFormat, parse_turn
from selfimprove.data.trajectory import Step
from selfimprove.models.generator import Conversation
from selfimprove.tools.base import Hit, Searcher

NO_RESULTS = "No results found."
PARSE_ERROR_OBSERVATION = "could not parse action:"  # followed by why


def normalize_query(query: str) -> str:
    """Lower-cased, whitespace-collapsed query, for repeat detection.

    >>> normalize_query("  Paris   FRANCE ")
    'paris france'
    """
    return " ".join(query.lower().split())


def format_hits(hits: list[Hit], max_chars: int) -> str:
    """Render hits as one observation line, truncated to `max_chars` (with "...").

    >>> format_hits([Hit("1", "Paris", "Paris is\\nbig.", 1.0)], 100)
    '[Paris] Paris is big.'
    >>> format_hits([], 100)
    'No results found.'
    >>> format_hits([Hit("1", "T", "x" * 50, 1.0)], 10)
    '[T] xxx...'
    """
    if not hits:
        return NO_RESULTS
    text = " ".join(" ".join(f"[{h.title}] {h.text}".split()) for h in hits)
    return text if len(text) <= max_chars else text[: max(0, max_chars - 3)] + "..."


class SearchTool:
    """A searcher as a tool: many queries per call, each answered with one observation line."""

    def __init__(self, searcher: Searcher, k: int = 2, max_observation_chars: int = 500):
        self.searcher, self.k, self.max_observation_chars = searcher, k, max_observation_chars

    @property
    def name(self) -> str:
        return getattr(self.searcher, "name", type(self.searcher).__name__)

    def run(self, arguments: list[str]) -> list[str]:
        hits = self.searcher.search(arguments, self.k)
        return [format_hits(h, self.max_observation_chars) for h in hits]


class SearchEnvironment:
    """One search-and-answer episode in an agent format (see the module doc)."""

    def __init__(self, fmt: AgentFormat, prompt: Conversation, tool: SearchTool, max_turns: int = 5,
                 max_query_chars: int = 300, on_parse_error: Literal["continue", "end"] = "continue"):
        self.fmt, self.prompt, self.tool = fmt, list(prompt), tool
        self.max_turns, self.max_query_chars, self.on_parse_error = max_turns, max_query_chars, on_parse_error
        self.steps: list[Step] = []
        self.seen: set[str] = set()
        self.answer: str | None = None
        self.end_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.end_reason is not None

    @property
    def finished(self) -> bool:
        return self.end_reason == "answer"

    def messages(self) -> Conversation:
        return self.fmt.extend(self.prompt, self.steps)

    def next_turn(self) -> TurnSpec:
        return TurnSpec(stop=tuple(self.fmt.stop))

    def step(self, turn: ModelTurn) -> ToolCall | None:
        parsed = parse_turn(self.fmt, turn.text, turn.ran_out)
        step = Step(index=len(self.steps), text=turn.text, thought=parsed.thought, action=parsed.action,
                    argument=parsed.argument, parse_error=parsed.error, prompt_tokens=turn.prompt_tokens,
                    completion_tokens=turn.completion_tokens, finish_reason=turn.finish_reason)
        self.steps.append(step)
        if step.action == "answer":
            self.answer, self.end_reason = step.argument, "answer"
            return None
        if step.action == "search":
            step.argument = step.argument[: self.max_query_chars]
            step.repeated_query = normalize_query(step.argument) in self.seen
            self.seen.add(normalize_query(step.argument))
        elif self.on_parse_error == "end":
            self.end_reason = "parse_error"
            return None
        if len(self.steps) >= self.max_turns:
            self.end_reason = "step_limit"
            return None
        return ToolCall(self.tool, step.argument) if step.action == "search" else None

    def observe(self, result: str | None) -> None:
        step = self.steps[-1]
        step.observation = result if result is not None else f"{PARSE_ERROR_OBSERVATION} {step.parse_error}"

    def facts(self) -> EpisodeFacts:
        searches = [s for s in self.steps if s.action == "search"]
        return EpisodeFacts(num_searches=len(searches), num_parse_errors=sum(s.action == "invalid" for s in self.steps),
                            answered=self.finished, num_turns=len(self.steps),
                            hit_step_limit=self.end_reason == "step_limit", queries=[s.argument for s in searches])

    def fields(self) -> dict[str, Any]:
        """The facts, plus `episode_answer`: the answer action's argument as the format parsed it (None when
        unanswered), so answer rewards read it in every format, not only where it sits in `<answer>` tags."""
        return {**self.facts().to_dict(), "episode_answer": self.answer}
