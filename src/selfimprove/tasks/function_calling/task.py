"""Function calling: xLAM/APIGen and BFCL data, a tool-call prompt, a BFCL-style verifier.

Sources: a .json/.jsonl file in either format, or "bfcl:CATEGORY" (e.g. "bfcl:simple_python",
"bfcl:parallel") read from the installed `bfcl-eval` package's data (`pip install bfcl-eval
--no-deps`). xLAM records have `query`, `tools`, `answers` (JSON strings or decoded values);
BFCL records have `question` (a list of turns of chat messages; the first turn is used) and
`function`, with gold in a `ground_truth` field or in `possible_answer/<same file name>` beside
the file, matched by `id`. xLAM answers become BFCL-shaped gold with one acceptable value per
argument (so extra or missing arguments fail: exact match, as in the RRR paper). Score: 1.0
when the calls match (see `function_calling.checker`), else 0; the breakdown says whether the
output parsed and whether the call count matched. Nothing is ever executed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from selfimprove.errors import DataError, UserError
from selfimprove.tasks.base import SINGLE_TURN_FORMAT, Example, Message, Score
from selfimprove.tasks.fingerprint import canonical_json, normalized_text
from selfimprove.tasks.function_calling.calls import CallParseError, calls_from_json, parse_calls
from selfimprove.tasks.function_calling.checker import check_calls
from selfimprove.tasks.records import parse_json_field, read_located, read_records, require

SYSTEM_PROMPT = (
    "You can call these functions:\n{tools}\n\nTo call functions, reply with one "
    '<tool_call>{{"name": NAME, "arguments": {{...}}}}</tool_call> block per call and nothing else.'
)
XLAM_TYPES = {"str": "string", "int": "integer", "float": "float", "bool": "boolean", "list": "array",
              "dict": "dict", "tuple": "tuple"}


class FunctionCallingTask:
    """Function calling scored by comparing parsed calls with gold calls (never running them).

    >>> from selfimprove.tasks.base import Example
    >>> example = Example("e", "2+2?", [{"add": {"a": [2], "b": [2]}}], {"tools": [], "messages": []})
    >>> task = FunctionCallingTask()
    >>> task.score(example, "add(b=2, a=2)").value, task.score(example, "add(a=2, b=3)").value
    (1.0, 0.0)
    """

    name = "function_calling"
    agent_format = SINGLE_TURN_FORMAT
    # xLAM's `tools`/`answers`, BFCL's `function`/`ground_truth`
    reward_columns = (("tools", "function"), ("gold_calls", "ground_truth", "answers"))

    def load(self, source: Any = None, limit: int | None = None, **options: Any) -> list[Example]:
        from selfimprove.tasks.records import unique_ids

        if options:
            raise UserError(f"function_calling.load: unknown options {sorted(options)}")
        if source is None:
            source = "bfcl:simple_python"
        if isinstance(source, str) and source.startswith("bfcl:"):
            source = bfcl_data_path(source.partition(":")[2])
        examples = unique_ids(load_file(source), source)
        return examples[:limit] if limit is not None else examples

    def render(self, example: Example) -> list[Message]:
        tools = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in example.meta["tools"])
        return [{"role": "system", "content": SYSTEM_PROMPT.format(tools=tools)}, *example.meta["messages"]]

    def extract(self, completion: str) -> Any:
        try:
            return parse_calls(completion)
        except CallParseError:
            return None

    def score_answer(self, example: Example, answer: Any) -> Score:
        if answer is None:
            return Score(0.0, False, None, {"parsed": 0.0, "count_match": 0.0}, "no parseable function calls")
        try:
            calls = answer if _is_call_list(answer) else calls_from_json(answer)
        except CallParseError as exc:
            return Score(0.0, False, None, {"parsed": 0.0, "count_match": 0.0}, str(exc))
        verdict = check_calls(calls, example.answer, example.meta["tools"])
        breakdown = {"parsed": 1.0, "count_match": float(len(calls) == len(example.answer))}
        parsed = [{"name": call.name, "arguments": call.arguments} for call in calls]
        return Score(float(verdict.valid), verdict.valid, parsed, breakdown, "; ".join(verdict.errors) or None)

    def score(self, example: Example, completion: str) -> Score:
        return self.score_answer(example, self.extract(completion))

    def fingerprint(self, example: Example) -> str:
        """The normalised query and the tools offered (canonical JSON)."""
        tools = sorted(canonical_json(tool) for tool in example.meta["tools"])  # the same tools in any order
        return f"{normalized_text(example.question)} tools={canonical_json(tools)}"

    def to_row(self, example: Example) -> dict[str, Any]:
        return {"example_id": example.id, "prompt": self.render(example), "question": example.question,
                "tools": json.dumps(example.meta["tools"], ensure_ascii=False),
                "gold_calls": json.dumps(example.answer, ensure_ascii=False),
                "messages": json.dumps(example.meta["messages"], ensure_ascii=False),
                "source_format": example.meta.get("format", "")}

    def from_row(self, row: dict[str, Any]) -> Example:
        """Rebuild an example from dataset columns, each a JSON string or the decoded value.

        Required: the tools, `tools` (these rows, xLAM; OpenAI `{"type": "function", ...}` entries
        are unwrapped) or `function` (BFCL), and the gold calls, `gold_calls` or `ground_truth`
        (BFCL shape `[{name: {arg: [allowed values]}}]`) or `answers` (xLAM `[{name, arguments}]`).
        Optional: `example_id`/`id`, `question`/`query` (a BFCL list of turns too), `messages`,
        `source_format`. A missing column is a KeyError; an unusable value a ValueError naming it.

        >>> row = {"tools": '[{"name": "add", "parameters": {"a": {"type": "int"}}}]',
        ...        "answers": '[{"name": "add", "arguments": {"a": 2}}]'}
        >>> FunctionCallingTask().score(FunctionCallingTask().from_row(row), "add(a=2)").correct
        True
        """
        tools = [_row_tool(tool) for tool in _row_list(row, ("tools", "function"))[1]]
        gold = _row_gold(*_row_list(row, ("gold_calls", "ground_truth", "answers")))
        question, messages = _row_question(row)
        meta = {"tools": tools, "messages": messages, "format": row.get("source_format") or None}
        example_id = row.get("example_id", row.get("id"))
        if example_id is None:
            example_id = "function_calling:" + hashlib.sha1(canonical_json([question, gold]).encode()).hexdigest()[:12]
        return Example(str(example_id), question, gold, meta)


def _row_list(row: dict[str, Any], names: tuple[str, ...]) -> tuple[str, list[dict]]:
    """(column, list of objects) from the first of `names` the row has (JSON text is decoded);
    KeyError(names[0]) when it has none, ValueError naming the column for any other value."""
    name = next((n for n in names if n in row), None)
    if name is None:
        raise KeyError(names[0])
    value = row[name]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ValueError(f"column '{name}': not valid JSON") from None
    value = [value] if isinstance(value, dict) else value
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"column '{name}': expected a list of objects, got {type(value).__name__}")
    return name, value


def _row_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool schema in the BFCL shape the checker reads (OpenAI wrappers unwrapped, xLAM converted)."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    parameters = tool.get("parameters")
    if isinstance(parameters, dict) and parameters and not isinstance(parameters.get("type"), str):
        return xlam_tool_schema(tool)  # xLAM: {param: {type: "str, optional", ...}}
    return tool


def _row_gold(name: str, items: list[dict]) -> list[dict[str, dict[str, list]]]:
    """The gold calls as `[{name: {arg: [allowed values]}}]`, from gold_calls/ground_truth or xLAM answers."""
    if name == "answers":
        try:
            return [{call.name: {key: [value] for key, value in call.arguments.items()}} for call in calls_from_json(items)]
        except CallParseError as exc:
            raise ValueError(f"column 'answers': {exc}") from None
    if not all(len(item) == 1 and isinstance(next(iter(item.values())), dict) for item in items):
        raise ValueError(f"column '{name}': expected [{{name: {{argument: [allowed values]}}}}, ...]")
    return [{str(fn): {str(arg): v if isinstance(v, list) else [v] for arg, v in args.items()}}
            for item in items for fn, args in item.items()]


def _row_question(row: dict[str, Any]) -> tuple[str, list[Message]]:
    """(question text, chat messages) from `question`/`query` (text, or BFCL turns) and `messages`."""
    raw = row.get("question", row.get("query"))
    turns = _json_list(raw)
    if turns is None:
        question = raw if isinstance(raw, str) else ""
        messages = [{"role": "user", "content": question}] if question else []
    else:
        messages = turns[0] if turns and isinstance(turns[0], list) else turns
        messages = [m for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
        users = [m["content"] for m in messages if m.get("role") == "user"] or [m["content"] for m in messages]
        question = users[-1] if users else ""
    if row.get("messages") is not None:
        messages = _row_list(row, ("messages",))[1]
    return question, messages


def _json_list(value: Any) -> list | None:
    """`value` when it is a list, the list a JSON string holds, else None (plain text)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, list) else None


def _is_call_list(answer: Any) -> bool:
    return isinstance(answer, list) and all(hasattr(item, "arguments") for item in answer)


def bfcl_data_path(category: str) -> Path:
    """`bfcl_eval/data/BFCL_v4_<category>.json` from the installed package (not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("bfcl: the 'bfcl-eval' package is not installed (pip install bfcl-eval --no-deps)")
    data_dir = Path(list(spec.submodule_search_locations)[0]) / "data"
    matches = sorted(p for p in data_dir.glob(f"BFCL_v*_{category}.json") if p.stem.split("_", 2)[2] == category)
    if not matches:
        known = sorted(p.stem.split("_", 2)[2] for p in data_dir.glob("BFCL_v*_*.json"))
        raise UserError(f"bfcl: unknown category '{category}' (known: {', '.join(known)})")
    return matches[-1]


def load_file(source: Any) -> list[Example]:
    """Examples from xLAM or BFCL records of any data source (`tasks.records`; format detected per record)."""
    records = read_located(source)
    answers: dict[str, Any] = {}
    for where in dict.fromkeys(where for where, _, record in records if "function" in record):
        answers.update(_possible_answers(Path(where)))
    return [_example(record, path, line, index, answers) for index, (path, line, record) in enumerate(records)]


def _example(record: dict, path: str | Path, line: int | None, index: int, answers: dict) -> Example:
    if "query" in record or "answers" in record:
        return xlam_example(record, path, line, index)
    if "question" in record and "function" in record:
        return bfcl_example(record, path, line, answers)
    raise DataError(path, "neither xLAM (query/tools/answers) nor BFCL (question/function)", line=line)


def xlam_example(record: dict, path: str | Path, line: int | None, index: int) -> Example:
    query = require(record, "query", path, line, str)
    tools = _list_of_objects(parse_json_field(record, "tools", path, line), path, line, "tools")
    answers = _list_of_objects(parse_json_field(record, "answers", path, line), path, line, "answers")
    try:
        gold = [{call.name: {key: [value] for key, value in call.arguments.items()}} for call in calls_from_json(answers)]
    except CallParseError as exc:
        raise DataError(path, str(exc), line=line, field="answers") from None
    meta = {"tools": [xlam_tool_schema(tool) for tool in tools], "format": "xlam",
            "messages": [{"role": "user", "content": query}]}
    return Example(str(record.get("id", index)), query, gold, meta)


def xlam_tool_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """An xLAM tool ({name, description, parameters: {p: {type: "str, optional", ...}}}) -> BFCL-style schema."""
    properties, required = {}, []
    for param, spec in (tool.get("parameters") or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        raw_type = str(spec.get("type", ""))
        base = raw_type.split(",")[0].split("[")[0].strip().lower()
        properties[param] = {**spec, "type": XLAM_TYPES.get(base, "unknown"), "xlam_type": raw_type}
        if "optional" not in raw_type and "default" not in spec:
            required.append(param)
    return {"name": tool.get("name"), "description": tool.get("description", ""),
            "parameters": {"type": "dict", "properties": properties, "required": required}}


def bfcl_example(record: dict, path: str | Path, line: int | None, answers: dict) -> Example:
    qid = require(record, "id", path, line, str)
    turns = require(record, "question", path, line, list)
    messages = turns[0] if turns and isinstance(turns[0], list) else turns
    if not messages or not all(isinstance(m, dict) and "content" in m for m in messages):
        raise DataError(path, "expected a list of turns of {role, content} messages", line=line, field="question")
    functions = _list_of_objects(require(record, "function", path, line, (list, dict)), path, line, "function")
    gold = record.get("ground_truth", answers.get(qid))
    if not isinstance(gold, list):
        raise DataError(path, f"no possible answer for '{qid}' (ground_truth field or possible_answer/ file)",
                        line=line, field="ground_truth")
    question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), messages[-1]["content"])
    meta = {"tools": functions, "messages": messages, "format": "bfcl"}
    return Example(qid, question, gold, meta)


def _possible_answers(path: Path) -> dict[str, Any]:
    answer_path = path.parent / "possible_answer" / path.name
    if not answer_path.is_file():
        return {}
    return {record.get("id"): record.get("ground_truth") for _, record in read_records(answer_path)}


def _list_of_objects(value: Any, path: str | Path, line: int | None, field: str) -> list[dict]:
    value = [value] if isinstance(value, dict) else value
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise DataError(path, "expected a list of objects", line=line, field=field)
    return value
