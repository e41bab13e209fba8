"""Loading files users hand us: whole JSON documents safely, pickled datasets only on opt-in.

`read_json_file(path)` reads one JSON document; every way it can fail (missing, a folder, not
UTF-8, bad JSON, nested too deeply, an integer too long to convert) is a DataError naming the
file (and the line, for syntax errors), never a traceback. It does not check the document's shape.

Pickled datasets (.pkl, .pickle, .joblib) are refused unless the user opts in.

Unpickling runs whatever code the file says to run, so a downloaded `.joblib`/`.pkl` dataset is
a program, not data. `read_pickled_records(path)` raises a DataError naming the file and the way
out (convert it to JSONL/parquet, or set `SELFIMPROVE_ALLOW_PICKLE=1` for a file you trust).
With the opt-in it loads the file (joblib when installed, else pickle) and accepts a list of
dicts, a dict of equal-length columns, or a pandas DataFrame. This is the ONLY module allowed to
unpickle (tests/test_security.py allow-lists it); it never unpickles model output, and the
opt-in is read from the environment at call time, never from a config file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from selfimprove.errors import DataError

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
ALLOW_PICKLE_ENV = "SELFIMPROVE_ALLOW_PICKLE"


def read_json_file(path: str | Path) -> Any:
    """The JSON document in `path`; any failure is a DataError naming the file.

    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "deep.json"
    >>> _ = bad.write_text("[" * 10_000 + "]" * 10_000)
    >>> read_json_file(bad)
    Traceback (most recent call last):
    selfimprove.errors.DataError: ...deep.json: invalid JSON (nested too deeply)
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder, expected a JSON file")
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
    except RecursionError:
        raise DataError(path, "invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4,300 digits)
        raise DataError(path, f"invalid JSON ({exc})") from None


def pickle_allowed() -> bool:
    """Whether the user opted in to unpickling datasets (`SELFIMPROVE_ALLOW_PICKLE=1`)."""
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip() == "1"


def is_pickle_path(path: str | Path) -> bool:
    """
    >>> is_pickle_path("data/train.joblib"), is_pickle_path("train.jsonl")
    (True, False)
    """
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


def refuse_pickle(path: str | Path) -> None:
    """Raise the explanatory DataError unless the user opted in."""
    if not pickle_allowed():
        raise DataError(path, "refusing to load a pickled dataset: unpickling can run arbitrary code. Convert it "
                              f"to .jsonl/.parquet, or set {ALLOW_PICKLE_ENV}=1 if you trust where this file came from")


def read_pickled_records(path: str | Path) -> list[tuple[int | None, dict[str, Any]]]:
    """(None, record) pairs from a trusted pickle/joblib file; refused without the opt-in."""
    refuse_pickle(path)
    data = _unpickle(Path(path))
    rows = _rows(data, path)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(path, f"item {index} is a {type(row).__name__}, expected a mapping")
    return [(None, dict(row)) for row in rows]


def _unpickle(path: Path) -> Any:
    try:
        import joblib  # handles plain pickles too
    except ImportError:
        import pickle

        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - only after the explicit opt-in
    return joblib.load(path)


def _rows(data: Any, path: str | Path) -> list[Any]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return data.to_dict(orient="records")
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) == 1:
            return [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    if isinstance(data, list | tuple):
        return list(data)
    raise DataError(path, f"expected a list of records, a dict of columns or a DataFrame, got {type(data).__name__}")
