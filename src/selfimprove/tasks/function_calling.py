"""Function calling: xLAM/APIGen and BFCL data, a tool-call prompt, a BFCL-style verifier.

Sources: a .json/.jsonl file in either format, or "bfcl:CATEGORY" (e.g. "bfcl:simple_python",
"bfcl:parallel") read from the installed `bfcl-eval` package's data (`pip install bfcl-eval
--no-deps`). xLAM records have `query`, `tools`, `answers` (JSON strings or decoded values);
BFCL records have `question` (a list of turns of chat messages; the first turn is used) and
`function`, with gold in a `ground_truth` field or in `possible_answer/<same file name>` beside
the file, matched by `id`. xLAM answers become BFCL-shaped gold with one acceptable value per
argument (so extra or missing arguments fail: exact match, as in the RRR paper). Score: 1.0
when the calls match (see `function_call_checker`), else 0; the breakdown says whether the
output parsed and whether the call count matched. Nothing is ever executed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.errors import DataError, UserError
from selfimprove.tasks.base import Example, Message, Score
from selfimprove.tasks.fingerprint import canonical_json, normalized_text
from selfimprove.tasks.function_call_checker import check_calls
from selfimprove.tasks.function_calls import CallParseError, calls_from_json, parse_calls
from selfimprove.tasks.records import parse_json_field, read_records, require

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

    def load(self, source: str | None = None, limit: int | None = None, **options: Any) -> list[Example]:
        from selfimprove.tasks.records import unique_ids

        if options:
            raise UserError(f"function_calling.load: unknown options {sorted(options)}")
        if source is None:
            source = "bfcl:simple_python"
        path = bfcl_data_path(source.partition(":")[2]) if source.startswith("bfcl:") else Path(source)
        examples = unique_ids(load_file(path), path)
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
        return f"{normalized_text(example.question)} tools={canonical_json(example.meta['tools'])}"

    def to_row(self, example: Example) -> dict[str, Any]:
        return {"example_id": example.id, "prompt": self.render(example), "question": example.question,
                "tools": json.dumps(example.meta["tools"], ensure_ascii=False),
                "gold_calls": json.dumps(example.answer, ensure_ascii=False),
                "messages": json.dumps(example.meta["messages"], ensure_ascii=False),
                "source_format": example.meta.get("format", "")}

    def from_row(self, row: dict[str, Any]) -> Example:
        meta = {"tools": json.loads(row["tools"]), "messages": json.loads(row["messages"]),
                "format": row.get("source_format") or None}
        return Example(str(row["example_id"]), row["question"], json.loads(row["gold_calls"]), meta)


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


def load_file(path: str | Path) -> list[Example]:
    """Examples from an xLAM or BFCL file (format detected per record)."""
    records = read_records(path)
    answers = _possible_answers(Path(path)) if any("function" in r for _, r in records) else {}
    return [_example(record, path, line, index, answers) for index, (line, record) in enumerate(records)]


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
