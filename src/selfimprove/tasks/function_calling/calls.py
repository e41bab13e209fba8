"""Parsing function calls out of model output, WITHOUT running or evaluating anything.

Accepted forms (tried in this order): one or more `<tool_call>...</tool_call>` blocks holding
JSON; a JSON object or list of objects `{"name": ..., "arguments": {...}}` (also "parameters",
arguments given as a JSON string, or fenced in ```json); python-like calls `f(a=1, b="x")` or a
list of them, read with `ast.parse(mode="eval")` where only literal nodes are accepted
(constants, lists, tuples, dicts, negative numbers) and only keyword arguments; a tuple literal
stays a Python tuple (as BFCL's decoder keeps it), so the checker can tell it from a list. Input size
(`MAX_CALL_CHARS`), nesting depth (`MAX_DEPTH`) and integer size (`MAX_INT_DIGITS`: a bigger one
cannot become a float, and past 4300 digits not even a str) are bounded; anything else, whatever
the text, raises `CallParseError` (never another exception), which callers turn into a 0 score.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from selfimprove.tasks.tags import tag_blocks

MAX_CALL_CHARS = 20_000
MAX_DEPTH = 20
MAX_INT_DIGITS = 300
_INT_LIMIT = 10**MAX_INT_DIGITS
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


class CallParseError(ValueError):
    """The text does not contain calls in any accepted form."""


@dataclass
class Call:
    """One function call: a name and its keyword arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


def parse_calls(text: str) -> list[Call]:
    """All calls in `text`.

    >>> parse_calls('<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>')
    [Call(name='f', arguments={'x': 1})]
    >>> parse_calls('[math.hypot(x=4, y=-5.0), g(s="a")]')
    [Call(name='math.hypot', arguments={'x': 4, 'y': -5.0}), Call(name='g', arguments={'s': 'a'})]
    >>> parse_calls("__import__('os').system('ls')")
    Traceback (most recent call last):
    ...
    selfimprove.tasks.function_calling.calls.CallParseError: only keyword arguments are accepted
    """
    if not isinstance(text, str):
        raise CallParseError("completion is not text")
    if len(text) > MAX_CALL_CHARS:
        raise CallParseError(f"calls longer than {MAX_CALL_CHARS} characters")
    blocks = tag_blocks(text, "tool_call", ignore_case=False)
    if blocks:
        return [call for block in blocks for call in _calls_from_json_text(block)]
    stripped = _strip_fence(text.strip())
    if stripped[:1] in ("{", "[") and _looks_like_json(stripped):
        return _calls_from_json_text(stripped)
    return _calls_from_python(stripped)


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text


def _looks_like_json(text: str) -> bool:
    return text.startswith("{") or bool(re.match(r"\[\s*(\{|\])", text))


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise CallParseError(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(digits)


def loads_model_json(text: str, what: str = "tool call") -> Any:
    """`json.loads` for model output: any failure (bad JSON, nesting, huge ints) is a CallParseError.

    >>> loads_model_json('{"x": ' + "9" * 5000 + "}")
    Traceback (most recent call last):
    ...
    selfimprove.tasks.function_calling.calls.CallParseError: integer with more than 300 digits
    """
    try:
        return json.loads(text, parse_int=_bounded_int)
    except CallParseError:
        raise
    except (ValueError, RecursionError, MemoryError):  # JSONDecodeError is a ValueError
        raise CallParseError(f"invalid JSON in {what}") from None


def _calls_from_json_text(text: str) -> list[Call]:
    return calls_from_json(loads_model_json(_strip_fence(text.strip())))


def calls_from_json(data: Any) -> list[Call]:
    """Calls from decoded JSON: an object or a list of {name, arguments|parameters}."""
    items = data if isinstance(data, list) else [data]
    return [_call_from_object(item) for item in items]


def _call_from_object(item: Any) -> Call:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise CallParseError('each call must be an object with a string "name"')
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        arguments = loads_model_json(arguments, f"arguments of '{item['name']}'")
    if not isinstance(arguments, dict):
        raise CallParseError(f"arguments of '{item['name']}' must be an object")
    _check_value(arguments)
    return Call(item["name"], arguments)


def _check_value(value: Any, depth: int = 0) -> None:
    """Decoded JSON arguments obey the same bounds as python-like ones (depth, integer size)."""
    if depth > MAX_DEPTH:
        raise CallParseError(f"argument nested deeper than {MAX_DEPTH}")
    if isinstance(value, int) and abs(value) >= _INT_LIMIT:
        raise CallParseError(f"integer with more than {MAX_INT_DIGITS} digits")
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ():
        _check_value(item, depth + 1)


def _calls_from_python(text: str) -> list[Call]:
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CallParseError("not JSON, <tool_call> blocks, or python-like calls") from None
    body = tree.body
    nodes = body.elts if isinstance(body, ast.List | ast.Tuple) else [body]
    return [_call_from_node(node) for node in nodes]


def _call_from_node(node: ast.AST) -> Call:
    if not isinstance(node, ast.Call):
        raise CallParseError("expected a function call")
    if node.args or any(keyword.arg is None for keyword in node.keywords):
        raise CallParseError("only keyword arguments are accepted")
    arguments = {keyword.arg: literal_value(keyword.value) for keyword in node.keywords}
    return Call(_dotted_name(node.func), arguments)


def _dotted_name(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute) and len(parts) < MAX_DEPTH:
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise CallParseError("a function name must be a plain or dotted name")
    return ".".join([node.id, *reversed(parts)])


def literal_value(node: ast.AST, depth: int = 0) -> Any:
    """The value of a literal node; anything that is not a literal raises CallParseError.

    >>> literal_value(ast.parse("[1, (2, 'a')]", mode="eval").body)
    [1, (2, 'a')]
    """
    if depth > MAX_DEPTH:
        raise CallParseError(f"argument nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and abs(node.value) >= _INT_LIMIT:
        raise CallParseError(f"integer with more than {MAX_INT_DIGITS} digits")
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = literal_value(node.operand, depth + 1)
        if isinstance(operand, int | float) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [literal_value(item, depth + 1) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(literal_value(item, depth + 1) for item in node.elts)
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        keys = [literal_value(key, depth + 1) for key in node.keys]
        if all(isinstance(key, str | int | float | bool) for key in keys):
            return dict(zip(keys, (literal_value(v, depth + 1) for v in node.values), strict=False))
    raise CallParseError(f"argument is not a literal ({type(node).__name__})")
