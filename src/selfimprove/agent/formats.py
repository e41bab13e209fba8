"""Agent formats: how an episode is shown to the model, and how a model turn is read back.

A format has a `name`, `stop` strings, `prompt(question)` (the first prompt),
`extend(prompt, steps)` (the chat prompt for the next turn: the first prompt followed by the steps
so far, so every stage can recreate the exact prompt of any step; `conversation(question, steps)`
is both at once) and `parse(text)`, which NEVER raises: whatever the model wrote becomes a `ParsedStep`
whose `action` is "search", "answer" or "invalid" (with `error` saying why).

- `react` (Araft): `Thought: ...\\nAction: [action: Search, action_input: q]` or
  `[action: Answer, action_input: a]`; stop at `]`; the user message holds the question and the
  scratchpad (the turns so far, each followed by `Observation: ...`) is the assistant's message,
  continued turn after turn (prefill), so an episode is one growing sequence as in training.
  A 3-shot system prompt.
- `xml` (Search-R1 / DeepSearch): `<think>..</think>`, `<search>q</search>` answered by
  `<information>..</information>`, `<answer>a</answer>`; stop at `</search>` and `</answer>`;
  the episode is ONE assistant message continued turn after turn (prefill).
- `tools` (native tool calls, Hermes/Qwen style): a `search` tool schema in the system prompt,
  calls written as `<tool_call>{"name": "search", "arguments": {"query": ...}}</tool_call>`, tool
  results as role "tool" messages; a turn without a tool call is the final answer (inside
  `<answer>` tags if present). `trl_messages()` gives the TRL tool-calling message shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from selfimprove.agent.fewshot import WORKED_EXAMPLES, WorkedExample
from selfimprove.data.trajectory import Step
from selfimprove.models.generator import Conversation
from selfimprove.registry import Registry


@dataclass(frozen=True)
class ParsedStep:
    """What a model turn asked for. action: "search" | "answer" | "invalid" (then `error` is set)."""

    action: str
    argument: str = ""
    thought: str = ""
    error: str | None = None


def invalid(error: str, thought: str = "") -> ParsedStep:
    return ParsedStep("invalid", "", thought, error)


class AgentFormat(Protocol):
    name: str
    stop: tuple[str, ...]

    def prompt(self, question: str) -> Conversation: ...

    def extend(self, prompt: Conversation, steps: list[Step]) -> Conversation: ...

    def conversation(self, question: str, steps: list[Step]) -> Conversation: ...

    def parse(self, text: str) -> ParsedStep: ...


def prefill(prompt: Conversation, text: str) -> Conversation:
    """The prompt with `text` as the assistant's message to continue (the prompt alone when `text` is empty)."""
    return [*prompt, {"role": "assistant", "content": text}] if text else list(prompt)


SEARCH_NAMES = {"search", "wikipedia", "lookup", "retrieve"}
ANSWER_NAMES = {"answer", "finish", "final_answer"}


def parse_turn(fmt: AgentFormat, text: str, ran_out: bool) -> ParsedStep:
    """`fmt.parse(text)`, except that a turn that ran out of tokens (`ran_out`: max_tokens reached,
    no EOS) before writing any of the format's stop strings is invalid: every format closes its
    action with a stop string (`]`, `</search>`/`</answer>`, `</tool_call>`), so an unclosed action
    is one the token budget cut, not one the model finished. Both episode drivers (the agent runner
    and GRPO's rollout environment) use this one rule, so evaluation and rewards agree on it.

    >>> parse_turn(get_format("xml"), "<answer>Paris is the capital of", ran_out=True).action
    'invalid'
    >>> parse_turn(get_format("xml"), "<answer>Paris</answer>", ran_out=True).argument
    'Paris'
    """
    parsed = fmt.parse(text)
    if ran_out and fmt.stop and not any(stop in text for stop in fmt.stop):
        return invalid("the turn ran out of tokens before closing its action", parsed.thought)
    return parsed


def classify(action_name: str, argument: str, thought: str = "") -> ParsedStep:
    """Map an action name + argument to a ParsedStep (unknown names and empty queries are invalid)."""
    name = action_name.strip().lower()
    argument = argument.strip()
    if name in ANSWER_NAMES:
        return ParsedStep("answer", argument, thought)
    if name not in SEARCH_NAMES:
        return invalid(f"unknown action '{action_name.strip()[:40]}'", thought)
    if not argument:
        return invalid("empty search query", thought)
    return ParsedStep("search", argument, thought)


# ---------------------------------------------------------------- ReAct (Araft)

# Patterns are written without overlapping lazy/greedy runs, so huge inputs parse in linear time.
_REACT_ACTION = re.compile(r"\[\s*action\s*:([^,\[\]\n]*),\s*action_input\s*:", re.IGNORECASE)
_REACT_THOUGHT_START = re.compile(r"Thought\s*:", re.IGNORECASE)
_REACT_THOUGHT_END = re.compile(r"Action\s*:|\[\s*action\s*:", re.IGNORECASE)

REACT_INSTRUCTIONS = (
    "Answer the question by interleaving Thought and Action steps. A Thought reasons about what you "
    "know and what is missing. An Action is one of:\n"
    "[action: Search, action_input: <query>] searches the corpus and returns an Observation.\n"
    "[action: Answer, action_input: <answer>] gives the final short answer and ends the task.\n"
    "Write exactly one Thought and one Action per turn. Here are examples."
)


def react_step(thought: str, action: str, argument: str) -> str:
    return f"Thought: {thought}\nAction: [action: {action}, action_input: {argument}]"


def react_example(example: WorkedExample) -> str:
    lines = [f"Question: {example.question}"]
    for search in example.searches:
        lines += [react_step(search.thought, "Search", search.query), f"Observation: {search.observation}"]
    lines.append(react_step(example.final_thought, "Answer", example.answer))
    return "\n".join(lines)


def react_observation(observation: str) -> str:
    """What follows a ReAct turn in the scratchpad: its observation on a line of its own."""
    return f"\nObservation: {observation}\n"


def react_thought(text: str) -> str:
    """The text after "Thought:" up to the action (empty when there is no "Thought:")."""
    start = _REACT_THOUGHT_START.search(text)
    if start is None:
        return ""
    end = _REACT_THOUGHT_END.search(text, start.end())
    return text[start.end() : end.start() if end else len(text)].strip()


class ReactFormat:
    """Araft's ReAct text format."""

    name = "react"
    stop = ("]",)

    def __init__(self, examples: tuple[WorkedExample, ...] = WORKED_EXAMPLES):
        shots = "\n\n".join(react_example(e) for e in examples)
        self.system_prompt = f"{REACT_INSTRUCTIONS}\n\n{shots}"

    def prompt(self, question: str) -> Conversation:
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": f"Question: {question}"}]

    def extend(self, prompt: Conversation, steps: list[Step]) -> Conversation:
        return prefill(prompt, "".join(s.text + ("" if s.observation is None else react_observation(s.observation))
                                       for s in steps))

    def conversation(self, question: str, steps: list[Step]) -> Conversation:
        return self.extend(self.prompt(question), steps)

    def parse(self, text: str) -> ParsedStep:
        text = text or ""
        thought = react_thought(text)
        match = _REACT_ACTION.search(text)
        if match is None:
            return invalid("no '[action: ..., action_input: ...]' found", thought)
        end = text.find("]", match.end())
        return classify(match.group(1), text[match.end() : end if end >= 0 else len(text)], thought)


# ---------------------------------------------------------------- XML tags (Search-R1)

_XML_TAG = re.compile(r"<(search|answer)>(.*?)(?:</\1>|$)", re.IGNORECASE | re.DOTALL)
_XML_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.IGNORECASE | re.DOTALL)

XML_INSTRUCTIONS = (
    "Answer the given question. Reason inside <think> and </think> every time you get new information. "
    "If you lack some knowledge, call the search engine with <search> query </search>; it returns the top "
    "results between <information> and </information>. You can search several times. When no further "
    "knowledge is needed, give the short final answer inside <answer> and </answer>. Here are examples."
)


def xml_search_turn(thought: str, query: str) -> str:
    return f"<think>{thought}</think>\n<search>{query}</search>"


def xml_information(observation: str) -> str:
    return f"\n\n<information>{observation}</information>\n\n"


def xml_example(example: WorkedExample) -> str:
    parts = [f"Question: {example.question}\n"]
    for search in example.searches:
        parts += [xml_search_turn(search.thought, search.query), xml_information(search.observation)]
    parts.append(f"<think>{example.final_thought}</think>\n<answer>{example.answer}</answer>")
    return "".join(parts)


class XmlFormat:
    """Search-R1 / DeepSearch tag format; the episode is one continued assistant message."""

    name = "xml"
    stop = ("</search>", "</answer>")

    def __init__(self, examples: tuple[WorkedExample, ...] = WORKED_EXAMPLES):
        shots = "\n\n".join(xml_example(e) for e in examples)
        self.system_prompt = f"{XML_INSTRUCTIONS}\n\n{shots}"

    def prompt(self, question: str) -> Conversation:
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": f"Question: {question}"}]

    def extend(self, prompt: Conversation, steps: list[Step]) -> Conversation:
        return prefill(prompt, "".join(s.text + ("" if s.observation is None else xml_information(s.observation))
                                       for s in steps))

    def conversation(self, question: str, steps: list[Step]) -> Conversation:
        return self.extend(self.prompt(question), steps)

    def parse(self, text: str) -> ParsedStep:
        text = text or ""
        think = _XML_THINK.search(text)
        thought = think.group(1).strip() if think else ""
        match = _XML_TAG.search(text)
        if match is None:
            return invalid("no <search> or <answer> tag found", thought)
        return classify(match.group(1), match.group(2), thought)


# ---------------------------------------------------------------- native tool calls

SEARCH_TOOL_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the corpus and return the best matching passages.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to search for."}},
            "required": ["query"],
        },
    },
}
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)

TOOLS_INSTRUCTIONS = (
    "You answer questions with the help of a search tool. You may call this function:\n<tools>\n{tools}\n</tools>\n"
    "To call it, write <tool_call>{{\"name\": \"search\", \"arguments\": {{\"query\": \"...\"}}}}</tool_call> "
    "and wait for the result. When you know the answer, reply without a tool call, with the short answer "
    "inside <answer> and </answer>."
)


def tool_call_text(query: str) -> str:
    payload = json.dumps({"name": "search", "arguments": {"query": query}}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"


def tools_example(example: WorkedExample) -> str:
    lines = [f"User: {example.question}"]
    for search in example.searches:
        lines += [f"Assistant: {search.thought}\n{tool_call_text(search.query)}", f"Tool: {search.observation}"]
    lines.append(f"Assistant: {example.final_thought}\n<answer>{example.answer}</answer>")
    return "\n".join(lines)


def parse_tool_call(payload: str) -> tuple[str, str] | str:
    """(name, query) from a tool-call JSON payload, or an error message (never an exception).

    >>> parse_tool_call('{"name": "search", "arguments": {"query": "q", "n": ' + "9" * 5000 + '}}')
    'tool call is not valid JSON'
    """
    try:
        call = json.loads(payload)
    except (ValueError, RecursionError, MemoryError):  # bad JSON, deep nesting, ints past 4300 digits
        return "tool call is not valid JSON"
    if not isinstance(call, dict):
        return "tool call is not a JSON object"
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError, MemoryError):
            return "tool call arguments are not valid JSON"
    if not isinstance(arguments, dict) or not isinstance(arguments.get("query"), str):
        return "tool call needs a string argument 'query'"
    return str(call.get("name", "")), arguments["query"]


class ToolCallFormat:
    """Native tool calls (Hermes/Qwen `<tool_call>` JSON), multi-turn with role "tool" results."""

    name = "tools"
    stop = ("</tool_call>",)

    def __init__(self, examples: tuple[WorkedExample, ...] = WORKED_EXAMPLES):
        shots = "\n\n".join(tools_example(e) for e in examples)
        tools = json.dumps(SEARCH_TOOL_SCHEMA, ensure_ascii=False)
        self.system_prompt = f"{TOOLS_INSTRUCTIONS.format(tools=tools)}\n\nExamples:\n\n{shots}"

    def prompt(self, question: str) -> Conversation:
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": question}]

    def extend(self, prompt: Conversation, steps: list[Step]) -> Conversation:
        messages = list(prompt)
        for step in steps:
            messages.append({"role": "assistant", "content": step.text})
            if step.observation is not None:
                messages.append({"role": "tool", "name": "search", "content": step.observation})
        return messages

    def conversation(self, question: str, steps: list[Step]) -> Conversation:
        return self.extend(self.prompt(question), steps)

    def parse(self, text: str) -> ParsedStep:
        text = text or ""
        call = _TOOL_CALL.search(text)
        thought = (text[: call.start()] if call else text).strip()
        if call is None:
            answer = _ANSWER_TAG.search(text)
            thought = text[: answer.start()].strip() if answer else ""
            argument = answer.group(1) if answer else text
            return ParsedStep("answer", argument.strip(), thought)
        parsed = parse_tool_call(call.group(1))
        if isinstance(parsed, str):
            return invalid(parsed, thought)
        return classify(*parsed, thought)

    def trl_messages(self, question: str, steps: list[Step]) -> list[dict[str, Any]]:
        """The episode in TRL's tool-calling shape: assistant `tool_calls` + role "tool" results."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        for step in steps:
            if step.action == "search":
                call = {"type": "function", "function": {"name": "search", "arguments": {"query": step.argument}}}
                messages.append({"role": "assistant", "content": step.thought, "tool_calls": [call]})
                messages.append({"role": "tool", "name": "search", "content": step.observation or ""})
            else:
                messages.append({"role": "assistant", "content": step.text})
                if step.observation is not None:
                    messages.append({"role": "user", "content": step.observation})
        return messages


FORMATS = Registry(
    "agent format",
    {"react": "selfimprove.agent.formats:ReactFormat", "xml": "selfimprove.agent.formats:XmlFormat",
     "tools": "selfimprove.agent.formats:ToolCallFormat"},
    # plugins: an agent format is the search environment's protocol (docs/extending.md)
    group=("selfimprove.environments", "selfimprove.formats"),
)


def get_format(name: str) -> AgentFormat:
    """An agent format instance by name (or "package.module:Class")."""
    target = FORMATS.get(name)
    return target() if isinstance(target, type) else target
