"""Reading task data files (JSON, JSONL, parquet) into plain dict records, with located errors.

`read_records(path)` returns (line, record) pairs: the JSONL line number, or the list index + 1
for a JSON array (line None for JSON/parquet, where a line means nothing). `require(...)` fetches
a field or raises a DataError naming the file, line and field. It does not validate the meaning
of fields; each task does that in its own loader. `unique_ids(examples, source)` is what every
task loader returns through: duplicate example ids (which would make resumable runs, keyed by
id, silently drop examples) are a DataError naming them. Pickled files (.pkl/.pickle/.joblib) are refused
unless SELFIMPROVE_ALLOW_PICKLE=1 (`selfimprove.data.safe_load`): unpickling runs code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.data.jsonl import iter_jsonl
from selfimprove.data.safe_load import is_pickle_path, read_pickled_records
from selfimprove.errors import DataError

Located = tuple[int | None, dict[str, Any]]


def read_records(path: str | Path) -> list[Located]:
    """Records of a .json (array of objects, {"data": [...]}, one object, or JSON lines), .jsonl or .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    records = _read_by_type(path)
    if not records:
        raise DataError(path, "no records in this file")
    return records


def _read_by_type(path: Path) -> list[Located]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return list(iter_jsonl(path))
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".json":
        return _read_json_array(path)
    if is_pickle_path(path):
        return read_pickled_records(path)  # refused unless SELFIMPROVE_ALLOW_PICKLE=1
    raise DataError(path, f"unsupported file type '{suffix}' (expected .json, .jsonl or .parquet)")


def _read_json_array(path: Path) -> list[Located]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = json.loads(text)
    except UnicodeDecodeError:
        raise DataError(path, "not UTF-8 text") from None
    except RecursionError:
        raise DataError(path, "invalid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            return list(iter_jsonl(path))  # JSON lines under a .json name (BFCL ships these)
        raise DataError(path, f"invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise DataError(path, f"invalid JSON ({exc})") from None
    if isinstance(data, dict):
        data = data["data"] if isinstance(data.get("data"), list) else [data]
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON array of objects, got {type(data).__name__}")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise DataError(path, f"item {index} is a {type(item).__name__}, expected an object")
    return [(None, item) for item in data]


def _read_parquet(path: Path) -> list[Located]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(path, f"cannot read parquet ({exc})") from None
    return [(None, row) for row in table.to_pylist()]


def require(record: dict[str, Any], field: str, path: str | Path, line: int | None, kind: type | tuple = object):
    """`record[field]`, checked to be of `kind`; a DataError naming file/line/field otherwise."""
    if field not in record:
        raise DataError(path, "missing field", line=line, field=field)
    value = record[field]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(path, f"expected {names}, got {type(value).__name__}", line=line, field=field)
    return value


def parse_json_field(record: dict[str, Any], field: str, path: str | Path, line: int | None) -> Any:
    """A field that may hold JSON text (xLAM style) or the already decoded value."""
    value = require(record, field, path, line)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON string ({exc.msg})", line=line, field=field) from None
    except (ValueError, RecursionError) as exc:
        raise DataError(path, f"invalid JSON string ({type(exc).__name__}: {str(exc)[:120]})", line=line,
                        field=field) from None


def unique_ids(examples: list, source: str | Path) -> list:
    """`examples` unchanged when their ids are unique; a DataError naming the duplicates otherwise.

    >>> from types import SimpleNamespace as E
    >>> [e.id for e in unique_ids([E(id="a"), E(id="b")], "x.jsonl")]
    ['a', 'b']
    >>> unique_ids([E(id="a"), E(id="b"), E(id="a"), E(id=1), E(id="1")], "x.jsonl")
    Traceback (most recent call last):
    ...
    selfimprove.errors.DataError: x.jsonl: duplicate example ids: 1, a (4 of 5 examples have a duplicated id)
    """
    counts: dict[str, int] = {}
    for example in examples:
        counts[str(example.id)] = counts.get(str(example.id), 0) + 1
    duplicated = sorted(key for key, count in counts.items() if count > 1)
    if duplicated:
        shown = ", ".join(duplicated[:10]) + (f", ... ({len(duplicated)} ids)" if len(duplicated) > 10 else "")
        involved = sum(counts[key] for key in duplicated)
        raise DataError(source, f"duplicate example ids: {shown} "
                                f"({involved} of {len(examples)} examples have a duplicated id)")
    return examples
