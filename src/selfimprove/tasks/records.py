"""Reading task and training data into plain dict records, with located errors.

A source is any of: a file path (.json, .jsonl, .parquet, .csv, and .json.gz/.jsonl.gz/.csv.gz);
several of them (a list, a comma-separated string, or a glob such as "data/*.jsonl"); a hub
dataset "hf:ORG/NAME[:CONFIG[:SPLIT]]" loaded with `datasets.load_dataset` (split "train" by
default; "hf:ORG/NAME::test" for the default config; slices such as "train[:100]" work); or a
`datasets.Dataset` / `DatasetDict` / `IterableDataset` object passed from Python (a DatasetDict
gives its only split, else "train" with a logged notice, else a DataError naming the splits).

`read_located(source)` returns (where, line, record) triples: `where` names the file or dataset
the record came from, `line` is the JSONL line, the CSV line (header is line 1; exact unless a
quoted cell spans lines), the 0-based row index of a dataset, or None (JSON arrays, parquet).
`read_records(source)` returns the older (line, record) pairs. `require(...)` fetches a field or
raises a DataError naming the file, line and field. CSV cells that hold a JSON array or object
are decoded; other cells keep the types pyarrow infers per column (as `load_dataset("csv")`).
Nothing here validates the meaning of fields; each task does that in its own loader.
`unique_ids(examples, source)` is what every task loader returns through: duplicate example ids
(which would make resumable runs, keyed by id, silently drop examples) are a DataError naming
them. Pickled files (.pkl/.pickle/.joblib) are refused unless SELFIMPROVE_ALLOW_PICKLE=1
(`selfimprove.data.safe_load`): unpickling runs code. An offline hub source that is not cached
is one UserError line naming the dataset.
"""

from __future__ import annotations

import glob
import gzip
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from selfimprove.data.jsonl import iter_jsonl, writable
from selfimprove.data.safe_load import is_pickle_path, read_pickled_records
from selfimprove.errors import DataError, UserError

Located = tuple[int | None, dict[str, Any]]
HUB_PREFIX = "hf:"
FILE_TYPES = ".json, .jsonl, .parquet, .csv (optionally .gz)"


class Sourced(NamedTuple):
    """One record and where it came from (file or dataset name, line or row)."""

    where: str
    line: int | None
    record: dict[str, Any]


@dataclass(frozen=True)
class DatasetPart:
    """A `datasets` object (or a hub source, loaded on first read) standing for one part of a source."""

    name: str
    dataset: Any = None
    hub: tuple[str, str | None, str] | None = None

    def __str__(self) -> str:
        return self.name


def read_records(source: Any) -> list[Located]:
    """(line, record) pairs of any source (see the module docstring); compatible with older callers."""
    return [(line, record) for _, line, record in read_located(source)]


def read_located(source: Any) -> list[Sourced]:
    """(where, line, record) of every record of every part of `source`, in order."""
    located: list[Sourced] = []
    parts = source_parts(source)
    if not parts:
        raise DataError(source_name(source), "no data source given (an empty list)")
    for part in parts:
        located.extend(_read_part(part))
    return located


def source_name(source: Any) -> str:
    """A short printable name for a source (a dataset object's name, not its repr)."""
    if source is None or isinstance(source, str | Path):
        return str(source)
    if isinstance(source, list | tuple):
        return ",".join(source_name(item) for item in source)
    return str(_dataset_part(source)) if _is_dataset_object(source) else str(source)


def source_parts(source: Any) -> list[Path | DatasetPart]:
    """The files and datasets a source stands for (lists, commas and globs expanded)."""
    if _is_dataset_object(source):
        return [_dataset_part(source)]
    if isinstance(source, list | tuple):
        return [part for item in source for part in source_parts(item)]
    if isinstance(source, Path) or (isinstance(source, str) and _is_file(source)):
        return [Path(source)]
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"data source: expected a path, a list of paths, 'hf:ORG/NAME' or a datasets object, "
                        f"got {type(source).__name__} {source!r:.80}")
    pieces = [piece.strip() for piece in source.split(",") if piece.strip()]
    return [part for piece in pieces for part in _string_parts(piece)]


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long, or holding NUL
        return False


def _string_parts(piece: str) -> list[Path | DatasetPart]:
    if piece.startswith(HUB_PREFIX):
        return [_hub_part(piece)]
    if glob.has_magic(piece) and not _is_file(piece):
        matches = sorted(glob.glob(piece, recursive=True))
        if not matches:
            raise DataError(piece, "no file matches this pattern")
        return [Path(match) for match in matches]
    return [Path(piece)]


def _hub_part(piece: str) -> DatasetPart:
    """"hf:ORG/NAME[:CONFIG[:SPLIT]]" -> a lazily loaded DatasetPart (split "train" by default)."""
    name, _, rest = piece[len(HUB_PREFIX):].partition(":")
    config, _, split = rest.partition(":")
    if not name:
        raise UserError(f"data source '{piece}': expected hf:ORG/NAME[:CONFIG[:SPLIT]]")
    return DatasetPart(piece, hub=(name, config or None, split or "train"))


def _read_part(part: Path | DatasetPart) -> list[Sourced]:
    if isinstance(part, DatasetPart):
        dataset = part.dataset if part.hub is None else _load_hub(part)
        located = [Sourced(part.name, index, dict(row)) for index, row in enumerate(dataset)]
    else:
        if not _is_file(str(part)):
            raise DataError(part, "file not found")
        located = [Sourced(str(part), line, record) for line, record in _read_by_type(part)]
    if not located:
        raise DataError(part, "no records in this " + ("dataset" if isinstance(part, DatasetPart) else "file"))
    return located


def _load_hub(part: DatasetPart) -> Any:
    """`datasets.load_dataset(NAME, CONFIG, split=SPLIT)`; offline / not cached / bad split: one UserError line."""
    name, config, split = part.hub
    try:
        import datasets
    except ImportError:
        raise UserError(f"data source '{part}': needs the 'datasets' package (pip install datasets)") from None
    try:
        return datasets.load_dataset(name, config, split=split)
    except ConnectionError:  # offline (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) or no network, and not cached
        raise UserError(f"data source '{part}': cannot reach the Hugging Face hub and dataset '{name}' is not "
                        "cached; run once online, or pass local files") from None
    except Exception as exc:  # an unknown dataset, config or split; `datasets` raises many unrelated types
        reason = " ".join(str(exc).split())[:300]
        raise UserError(f"data source '{part}': {type(exc).__name__}: {reason}") from None


def _is_dataset_object(source: Any) -> bool:
    datasets = sys.modules.get("datasets")  # a datasets object means the package is already imported
    kinds = ("Dataset", "DatasetDict", "IterableDataset", "IterableDatasetDict")
    return datasets is not None and isinstance(source, tuple(getattr(datasets, kind) for kind in kinds))


def _dataset_part(dataset: Any) -> DatasetPart:
    """A Dataset as a part; a DatasetDict's only split, else its "train" split (logged), else a DataError."""
    kind = type(dataset).__name__
    if isinstance(dataset, dict):  # DatasetDict / IterableDatasetDict
        splits = list(dataset)
        if len(splits) != 1 and "train" not in splits:
            raise DataError(f"<{kind}>", f"several splits ({', '.join(splits)}): pass one, e.g. dataset['{splits[0]}']")
        split = splits[0] if len(splits) == 1 else "train"
        if len(splits) > 1:
            logging.getLogger(__name__).warning("%s with splits %s: using split 'train' (pass dataset['<split>'] "
                                                "for another)", kind, ", ".join(splits))
        return DatasetPart(f"<{kind} split '{split}'>", dataset[split])
    name = getattr(getattr(dataset, "info", None), "dataset_name", None)
    split = getattr(dataset, "split", None)
    label = " ".join(bit for bit in (kind, f"'{name}'" if name else "", f"split '{split}'" if split else "") if bit)
    return DatasetPart(f"<{label}>", dataset)


def _read_by_type(path: Path) -> list[Located]:
    name = path.name.lower()
    if name.endswith(".gz"):
        return _read_gzip(path, name[:-3])
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return list(iter_jsonl(path))
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".json":
        return _read_json_array(path)
    if suffix == ".csv":
        return _read_csv(path)
    if is_pickle_path(path):
        return read_pickled_records(path)  # refused unless SELFIMPROVE_ALLOW_PICKLE=1
    raise DataError(path, f"unsupported file type '{suffix}' (expected {FILE_TYPES})")


def _read_gzip(path: Path, inner: str) -> list[Located]:
    if inner.endswith(".csv"):
        return _read_csv(path)  # pyarrow decompresses by the .gz suffix
    if not inner.endswith((".json", ".jsonl")):
        raise DataError(path, f"unsupported compressed file type (expected {FILE_TYPES})")
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:  # not gzip, or truncated
        raise DataError(path, f"cannot decompress ({exc})") from None
    if inner.endswith(".jsonl"):
        return _json_lines(data, path)
    return _json_document(data, path)


def _json_lines(data: bytes, path: Path) -> list[Located]:
    """JSON lines held in memory, with the same located errors as `iter_jsonl`."""
    located = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise DataError(path, f"invalid JSON ({str(exc)[:120]})", line=number) from None
        if not isinstance(record, dict):
            raise DataError(path, f"expected a JSON object, got {type(record).__name__}", line=number)
        located.append((number, writable(record)))
    return located


def _read_json_array(path: Path) -> list[Located]:
    return _json_document(path.read_bytes(), path, lambda: list(iter_jsonl(path)))


def _json_document(data: bytes, path: Path, as_lines: Any = None) -> list[Located]:
    """A JSON array of objects, {"data": [...]}, one object, or JSON lines under a .json name."""
    try:
        text = data.decode("utf-8-sig")
        document = json.loads(text)
    except UnicodeDecodeError:
        raise DataError(path, "not UTF-8 text") from None
    except RecursionError:
        raise DataError(path, "invalid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):  # JSON lines under a .json name (BFCL)
            return as_lines() if as_lines else _json_lines(data, path)
        raise DataError(path, f"invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise DataError(path, f"invalid JSON ({exc})") from None
    if isinstance(document, dict):
        document = document["data"] if isinstance(document.get("data"), list) else [document]
    if not isinstance(document, list):
        raise DataError(path, f"expected a JSON array of objects, got {type(document).__name__}")
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise DataError(path, f"item {index} is a {type(item).__name__}, expected an object")
    return [(None, item) for item in document]


def _read_parquet(path: Path) -> list[Located]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(path, f"cannot read parquet ({exc})") from None
    return [(None, row) for row in table.to_pylist()]


def _read_csv(path: Path) -> list[Located]:
    """CSV rows (line = row + 2: the header is line 1); JSON array/object cells decoded."""
    import pyarrow.csv as pcsv

    try:
        table = pcsv.read_csv(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(path, f"cannot read CSV ({' '.join(str(exc).split())[:200]})") from None
    return [(index + 2, {key: _csv_cell(value) for key, value in row.items()})
            for index, row in enumerate(table.to_pylist())]


def _csv_cell(value: Any) -> Any:
    """A cell holding a JSON array or object, decoded; anything else unchanged.

    >>> _csv_cell("[1, 2]"), _csv_cell('{"a": 1}'), _csv_cell("[not json"), _csv_cell(7)
    ([1, 2], {'a': 1}, '[not json', 7)
    """
    if not isinstance(value, str) or value[:1] not in ("[", "{"):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


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
        raise DataError(source_name(source), f"duplicate example ids: {shown} "
                                f"({involved} of {len(examples)} examples have a duplicated id)")
    return examples
