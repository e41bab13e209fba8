"""Agent formats: table-driven parsers (never raise), prompt construction, the TRL tool-calling shape."""

from __future__ import annotations

import json

import pytest

from selfimprove.agent.fewshot import WORKED_EXAMPLES
from selfimprove.agent.formats import FORMATS, ReactFormat, ToolCallFormat, XmlFormat, get_format
from selfimprove.data.trajectory import Step
from selfimprove.errors import UserError

REACT_CASES = [
    ("Thought: look it up\nAction: [action: Search, action_input: Paris France]", "search", "Paris France", "look it up"),
    ("Thought: x\nAction: [action: Search, action_input: Paris", "search", "Paris", "x"),  # stop string removed
    ("Thought: done\nAction: [action: Answer, action_input: 1,000 people]", "answer", "1,000 people", "done"),
    ("[action: answer, action_input: yes]", "answer", "yes", ""),
    ("Thought: a\nAction: [action: Wikipedia, action_input: Alps]", "search", "Alps", "a"),
    ("Thought: a\nAction: [action: Finish, action_input: ]", "answer", "", "a"),
    ("thought:   spaced  \naction:[ action :Search ,action_input:  q  ]", "search", "q", "spaced"),
    ("Thought: two\n[action: Search, action_input: a] [action: Answer, action_input: b]", "search", "a", "two"),
]
REACT_ERRORS = [
    ("", "no '[action"),
    ("I think the answer is Paris.", "no '[action"),
    ("Thought: hmm\nAction: [action: Search, action_input:   ]", "empty search query"),
    ("Thought: hmm\nAction: [action: Dance, action_input: x]", "unknown action 'Dance'"),
    ("Action: [action: Search action_input: x]", "no '[action"),
]


@pytest.mark.parametrize(("text", "action", "argument", "thought"), REACT_CASES)
def test_react_parser(text, action, argument, thought):
    parsed = ReactFormat().parse(text)
    assert (parsed.action, parsed.argument, parsed.thought, parsed.error) == (action, argument, thought, None)


@pytest.mark.parametrize(("text", "error"), REACT_ERRORS)
def test_react_parser_errors(text, error):
    parsed = ReactFormat().parse(text)
    assert parsed.action == "invalid"
    assert error in parsed.error


XML_CASES = [
    ("<think>need it</think>\n<search>Paris France</search>", "search", "Paris France", "need it", None),
    ("<think>ok</think><search> Paris ", "search", "Paris", "ok", None),
    ("<think>so</think>\n<answer> Mexico </answer>", "answer", "Mexico", "so", None),
    ("<answer>yes", "answer", "yes", "", None),
    ("<think>unclosed thinking <search>q</search>", "search", "q", "unclosed thinking <search>q</search>", None),
    ("<search></search>", "invalid", "", "", "empty search query"),
    ("just text", "invalid", "", "", "no <search> or <answer>"),
    ("<answer>a</answer><search>b</search>", "answer", "a", "", None),
]


@pytest.mark.parametrize(("text", "action", "argument", "thought", "error"), XML_CASES)
def test_xml_parser(text, action, argument, thought, error):
    parsed = XmlFormat().parse(text)
    assert parsed.action == action and parsed.argument == argument and parsed.thought == thought
    assert (parsed.error is None) if error is None else (error in parsed.error)


TOOL_CASES = [
    ('Let me look.\n<tool_call>\n{"name": "search", "arguments": {"query": "Paris"}}\n</tool_call>',
     "search", "Paris", "Let me look.", None),
    ('<tool_call>{"name": "search", "arguments": "{\\"query\\": \\"Alps\\"}"}', "search", "Alps", "", None),
    ('<tool_call>{"name": "search", "parameters": {"query": "q"}}</tool_call>', "search", "q", "", None),
    ("Both are in the Alps.\n<answer>yes</answer>", "answer", "yes", "Both are in the Alps.", None),
    ("Mexico", "answer", "Mexico", "", None),
    ('<tool_call>{"name": "search", "arguments": {"query": ', "invalid", "", "", "not valid JSON"),
    ('<tool_call>["search"]</tool_call>', "invalid", "", "", "not a JSON object"),
    ('<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call>', "invalid", "", "", "'query'"),
    ('<tool_call>{"name": "delete_all", "arguments": {"query": "x"}}</tool_call>', "invalid", "", "",
     "unknown action 'delete_all'"),
    ("<tool_call>" + "[" * 5000, "invalid", "", "", "not valid JSON"),
]


@pytest.mark.parametrize(("text", "action", "argument", "thought", "error"), TOOL_CASES)
def test_tool_call_parser(text, action, argument, thought, error):
    parsed = ToolCallFormat().parse(text)
    assert parsed.action == action and parsed.argument == argument and parsed.thought == thought
    assert (parsed.error is None) if error is None else (error in parsed.error)


def steps():
    return [Step(0, "Thought: a\nAction: [action: Search, action_input: Paris]", "a", "search", "Paris",
                 observation="[Paris] Paris is big.")]


def test_react_conversation_has_question_and_scratchpad():
    conv = ReactFormat().conversation("Where?", steps())
    assert [m["role"] for m in conv] == ["system", "user", "assistant"]
    assert conv[1]["content"] == "Question: Where?"
    # the scratchpad is the assistant's message, continued turn after turn (one growing sequence)
    assert conv[2]["content"] == ("Thought: a\nAction: [action: Search, action_input: Paris]\n"
                                  "Observation: [Paris] Paris is big.\n")
    assert conv[0]["content"].count("Question:") == len(WORKED_EXAMPLES)
    assert ReactFormat().conversation("Where?", []) == ReactFormat().prompt("Where?")
    assert ReactFormat().extend(ReactFormat().prompt("Where?"), steps()) == conv


def test_xml_conversation_continues_one_assistant_message():
    step = Step(0, "<think>t</think>\n<search>Paris</search>", "t", "search", "Paris", observation="obs")
    conv = XmlFormat().conversation("Where?", [step])
    assert conv[-1] == {"role": "assistant", "content": step.text + "\n\n<information>obs</information>\n\n"}
    assert len(XmlFormat().conversation("Where?", [])) == 2


def test_tool_conversation_and_trl_shape():
    fmt = ToolCallFormat()
    step = Step(0, 'Look.\n<tool_call>\n{"name": "search", "arguments": {"query": "Paris"}}\n</tool_call>', "Look.",
                "search", "Paris", observation="obs")
    conv = fmt.conversation("Where?", [step])
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "tool"]
    assert conv[-1] == {"role": "tool", "name": "search", "content": "obs"}
    assert '"name": "search"' in conv[0]["content"] and "<tools>" in conv[0]["content"]
    trl = fmt.trl_messages("Where?", [step, Step(1, "<answer>Paris</answer>", "", "answer", "Paris")])
    assert trl[1]["tool_calls"] == [{"type": "function", "function": {"name": "search", "arguments": {"query": "Paris"}}}]
    assert trl[2] == {"role": "tool", "name": "search", "content": "obs"}
    assert trl[3] == {"role": "assistant", "content": "<answer>Paris</answer>"}
    json.dumps(trl)


def test_trl_shape_renders_with_a_tool_calling_chat_template():
    """The TRL message shape goes through a real tool-aware chat template (Qwen3's, shipped with TRL)."""
    import importlib.util
    from pathlib import Path

    from selfimprove.models.tiny import build_tiny_tokenizer

    trl_root = Path(next(iter(importlib.util.find_spec("trl").submodule_search_locations)))
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = (trl_root / "chat_templates" / "qwen3.jinja").read_text()
    step = Step(0, "x", "Look.", "search", "Paris", observation="[Paris] big")
    text = tokenizer.apply_chat_template(ToolCallFormat().trl_messages("Where?", [step]), tokenize=False,
                                         tools=[{"type": "function", "function": {"name": "search", "parameters": {}}}])
    assert '<tool_call>\n{"name": "search", "arguments": {"query": "Paris"}}\n</tool_call>' in text
    assert "<tool_response>\n[Paris] big\n</tool_response>" in text


def test_worked_examples_parse_in_every_format():
    """The few-shot prompts must be parseable by the formats' own parsers."""
    from selfimprove.agent.formats import react_step, tool_call_text, xml_search_turn

    example = WORKED_EXAMPLES[0]
    search = example.searches[0]
    assert ReactFormat().parse(react_step(search.thought, "Search", search.query)).argument == search.query
    assert XmlFormat().parse(xml_search_turn(search.thought, search.query)).argument == search.query
    assert ToolCallFormat().parse(tool_call_text(search.query)).argument == search.query


def test_format_registry():
    assert set(FORMATS.names()) == {"react", "xml", "tools"}
    assert get_format("xml").stop == ("</search>", "</answer>")
    assert get_format("react").stop == ("]",)
    with pytest.raises(UserError, match="did you mean 'react'"):
        get_format("raect")
