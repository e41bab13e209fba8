"""JSONL files: strict reading with file:line errors, and crash-safe append-only record stores.

`read_jsonl` fails on a malformed line with the file and line number. `RecordStore` is what
long, resumable stages write to: one JSON object per line, keyed; each append is flushed and
fsynced; on open, a torn last line (a crash mid-write) is cut off and reported, so a resumed run
skips the keys already present and writes every record exactly once. It does not guard against
two processes appending to the same file at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from selfimprove.errors import DataError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; malformed lines raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    with path.open("rb") as handle:  # bytes: a line that is not UTF-8 is a located DataError too
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:  # bad JSON, not UTF-8, or nested too deeply
                raise DataError(path, f"invalid JSON ({_json_problem(exc)})", line=number) from None
            if not isinstance(record, dict):
                raise DataError(path, f"expected a JSON object, got {type(record).__name__}", line=number)
            yield number, record


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return "nested too deeply" if isinstance(exc, RecursionError) else getattr(exc, "msg", str(exc))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a whole JSONL file of objects."""
    return [record for _, record in iter_jsonl(path)]


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically (temp file + rename); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return count


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line left by a crash; returns the number of bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(keep)
    return len(data) - keep


class RecordStore:
    """An append-only, keyed, crash-safe JSONL file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
    >>> store = RecordStore(p, key=lambda r: r["id"])
    >>> store.append({"id": "a", "x": 1}); store.append({"id": "a", "x": 2})
    True
    False
    >>> RecordStore(p, key=lambda r: r["id"]).keys
    {'a'}
    """

    def __init__(self, path: str | Path, key: Callable[[dict[str, Any]], Any]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = key
        self.repaired_bytes = repair_torn_tail(self.path)
        self.keys: set[Any] = set()
        if self.path.exists():
            for _, record in iter_jsonl(self.path):
                self.keys.add(_hashable(key(record)))

    def __contains__(self, key: Any) -> bool:
        return _hashable(key) in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def append(self, record: dict[str, Any]) -> bool:
        """Append `record` unless its key is present; returns whether it was written."""
        key = _hashable(self._key(record))
        if key in self.keys:
            return False
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.keys.add(key)
        return True

    def records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path) if self.path.exists() else []


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key
