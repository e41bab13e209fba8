"""Comparing parsed calls with gold calls the way BFCL's AST checker does (Python semantics).

Gold is BFCL's `possible_answer` shape: a list of `{function_name: {param: [acceptable values]}}`
where "" among the values marks the parameter optional. Schemas (BFCL `function` entries) add
type checks: the value's Python type must match the declared type (string/integer/float/boolean/
array/tuple/dict/any) exactly, so a bool is not an integer and a tuple literal is not an `array`
(only a `tuple` parameter takes one, as a list); an int is accepted for a float at the top level
but not inside an array (an array's items must have its `items` type, one level deep, as BFCL
checks them); and, as in BFCL, a value whose type matches the gold values' type is compared
directly. Tuples nested inside values never equal the (JSON) gold lists. Strings are compared after BFCL's
`standardize_string` (drop spaces and ,./-_*^, lower-case, ' -> "), also inside lists and dicts.
Calls are matched order-insensitively (greedy, like BFCL's no-order parallel checker); the count
must match. It re-implements the behaviour of bfcl_eval's ast_checker.py (Apache-2.0) for
Python only; Java/JavaScript type conversions are not reproduced (such values are compared as
given). It never runs a call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from selfimprove.tasks.function_calling.calls import Call

PYTHON_TYPES: dict[str, type] = {"string": str, "integer": int, "float": float, "boolean": bool,
                                 "array": list, "tuple": list, "dict": dict, "object": dict, "number": float,
                                 "any": str}
GoldCall = dict[str, dict[str, list[Any]]]


@dataclass
class CallCheck:
    """The verdict: valid when every gold call matched one predicted call."""

    valid: bool
    errors: list[str] = field(default_factory=list)


def standardize_string(text: str) -> str:
    """BFCL's string normalisation.

    >>> standardize_string("April 1, 2024")
    'april12024'
    """
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def check_calls(predicted: list[Call], gold: list[GoldCall], functions: list[dict] | None = None) -> CallCheck:
    """Order-insensitive BFCL-style check of all calls.

    >>> gold = [{"f": {"x": [1.0], "unit": ["cm", ""]}}]
    >>> check_calls([Call("f", {"x": 1})], gold).valid
    True
    >>> check_calls([Call("f", {"x": 2})], gold).errors
    ["f: invalid value for 'x': 2"]
    """
    if len(predicted) != len(gold):
        return CallCheck(False, [f"wrong number of calls: {len(predicted)} instead of {len(gold)}"])
    schemas = {schema.get("name"): schema for schema in functions or [] if isinstance(schema, dict)}
    unmatched = list(range(len(predicted)))
    for expected in gold:
        name = next(iter(expected))
        errors = [check_call(predicted[i], expected, schemas.get(name)) for i in unmatched]
        match = next((i for i, error in zip(unmatched, errors, strict=False) if error is None), None)
        if match is None:
            return CallCheck(False, [error for error in errors if error])
        unmatched.remove(match)
    return CallCheck(True)


def check_call(call: Call, gold: GoldCall, schema: dict | None = None) -> str | None:
    """None when `call` matches one gold entry {name: {param: [values]}}, else why not."""
    name, possible = next(iter(gold.items()))
    if call.name != name:
        return f"wrong function name {call.name!r} (expected {name!r})"
    parameters = (schema or {}).get("parameters") or {}
    properties = parameters.get("properties") if isinstance(parameters.get("properties"), dict) else None
    for required in parameters.get("required") or []:
        if required not in call.arguments:
            return f"{name}: missing required parameter {required!r}"
    for param, value in call.arguments.items():
        if param not in possible or (properties is not None and param not in properties):
            return f"{name}: unexpected parameter {param!r}"
        declared = (properties or {}).get(param) or {}
        if not value_matches(value, possible[param], declared):
            return f"{name}: invalid value for {param!r}: {value!r}"
    missing = [param for param, values in possible.items() if param not in call.arguments and "" not in values]
    return f"{name}: missing parameter {missing[0]!r}" if missing else None


def value_matches(value: Any, possible: list[Any], declared: dict[str, Any]) -> bool:
    """Whether one argument value is acceptable (BFCL's type_checker + value checkers).

    >>> array = {"type": "array", "items": {"type": "integer"}}
    >>> value_matches([1, 2], [[1, 2]], array), value_matches((1, 2), [[1, 2]], array)
    (True, False)
    >>> value_matches((1, 2), [[1, 2]], {"type": "tuple", "items": {"type": "integer"}})
    True
    """
    expected = PYTHON_TYPES.get(str(declared.get("type")))
    if declared.get("type") == "tuple" and type(value) is tuple:
        value = list(value)
    if expected is float and type(value) is int:
        value = float(value)
    gold_type = next((type(option) for option in possible if option != ""), None)
    if expected is not None and type(value) is not expected:
        return gold_type is not None and type(value) is gold_type and value in possible
    if expected is not None and gold_type is not None and gold_type is not expected:
        return value in possible
    if expected is list and not items_typed(value, possible, declared.get("items")):
        return False
    return _value_in(value, possible)


def items_typed(value: list[Any], possible: list[Any], items: Any) -> bool:
    """BFCL's one-level item check: every item has the declared `items` type (or the type of that
    gold list's first item) for some gold list; a non-list option ("" for optional) lets it pass.

    >>> items_typed([1, 2], [[1.0, 2.0]], {"type": "float"}), items_typed([1.5], [[1.5]], {"type": "float"})
    (False, True)
    """
    item_type = PYTHON_TYPES.get(str(items.get("type"))) if isinstance(items, dict) else None
    if item_type is None:
        return True
    for option in possible:
        if type(option) is not list:
            return True
        option_type = next((type(item) for item in option if item != ""), None)
        if all(type(item) is item_type or type(item) is option_type for item in value):
            return True
    return False


def _value_in(value: Any, possible: list[Any]) -> bool:
    standardized = _standardize(value)
    return any(_same(standardized, _standardize(option)) for option in possible if option != "" or value == "")


def _standardize(value: Any) -> Any:
    if isinstance(value, str):
        return standardize_string(value)
    if isinstance(value, list):
        return [_standardize(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_standardize(item) for item in value)
    if isinstance(value, dict):
        return {key: _standardize(item) for key, item in value.items()}
    return value


def _same(value: Any, option: Any) -> bool:
    """Equality that keeps bools apart from numbers but lets 1 == 1.0, and tuples apart from lists;
    dict options may be partial."""
    if isinstance(value, bool) or isinstance(option, bool):
        return type(value) is type(option) and value == option
    if isinstance(value, list) and isinstance(option, list):
        return len(value) == len(option) and all(_same(a, b) for a, b in zip(value, option, strict=False))
    if isinstance(value, dict) and isinstance(option, dict):
        return _dict_matches(value, option)
    return value == option


def _dict_matches(value: dict, option: dict) -> bool:
    """A dict option lists acceptable values per key (BFCL dict_checker) or is a plain dict."""
    if all(isinstance(v, list) for v in option.values()) and option:
        if any(key not in option for key in value):
            return False
        if any(key not in value and "" not in values for key, values in option.items()):
            return False
        return all(_value_in(item, option[key]) for key, item in value.items())
    return value.keys() == option.keys() and all(_same(value[k], option[k]) for k in value)


def gold_to_calls(gold: list[GoldCall], functions: list[dict] | None = None) -> list[Call]:
    """One concrete call per gold entry: the first acceptable non-"" value of each parameter
    (parameters whose only option is "" are left out, as are optional ones missing from the schema,
    a known BFCL data slip); nested BFCL dict options are resolved the same way.

    >>> gold_to_calls([{"f": {"x": [2, 2.0], "unit": [""], "d": [{"k": ["", "v"]}]}}])
    [Call(name='f', arguments={'x': 2, 'd': {'k': 'v'}})]
    """
    schemas = {schema.get("name"): schema for schema in functions or [] if isinstance(schema, dict)}
    calls = []
    for entry in gold:
        name, params = next(iter(entry.items()))
        known = ((schemas.get(name) or {}).get("parameters") or {}).get("properties")
        arguments = {param: _first_value(values) for param, values in params.items()
                     if any(value != "" for value in values) and (known is None or param in known or "" not in values)}
        calls.append(Call(name, arguments))
    return calls


def _first_value(values: list[Any]) -> Any:
    return _concrete(next(value for value in values if value != ""))


def _concrete(option: Any) -> Any:
    if isinstance(option, dict) and option and all(isinstance(v, list) for v in option.values()):
        return {key: _first_value(values) for key, values in option.items() if any(v != "" for v in values)}
    if isinstance(option, list):
        return [_concrete(item) for item in option]
    return option
