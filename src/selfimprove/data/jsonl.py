"""JSONL files: strict reading with file:line errors, and crash-safe append-only record stores.

`read_jsonl` fails on a malformed line with the file and line number. `RecordStore` is what
long, resumable stages write to: one JSON object per line, keyed; each append is flushed and
fsynced; on open, a torn last line (a crash mid-write) is cut off and reported, so a resumed run
skips the keys already present and writes every record exactly once. The store itself takes no
lock: commands hold an exclusive lock on their output directory (`selfimprove.run_dir.exclusive`).

Whatever a model or server returned is writable: every writer here goes through `json_line`,
which replaces what UTF-8 cannot encode (lone surrogates such as "\\ud83d", bytes kept by
`surrogateescape`) with U+FFFD, and integers too long to print (> 4000 digits) with a short
placeholder string; `writable` does the same for any value, `writable_text` for one string.
Readers apply it too (a JSON file may spell a lone surrogate as an escape), so what is read back
can be written again. The exact code points of a lone surrogate are not kept.
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
            yield number, writable(record) if _may_hold_surrogates(line) else record


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return "nested too deeply" if isinstance(exc, RecursionError) else getattr(exc, "msg", str(exc))


_MAX_INT_BITS = 13_000  # about 3 900 decimal digits: str(int) is refused past 4 300


def writable_text(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) replaced by U+FFFD.

    >>> writable_text("ok \\ud83d end"), writable_text("\\ud83d\\ude00")
    ('ok \ufffd end', '😀')
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a surrogate pair is rejoined; a lone one becomes U+FFFD
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def writable(value: Any) -> Any:
    """`value` with every string (keys too) made writable and every unprintable integer replaced."""
    if isinstance(value, str):
        return writable_text(value)
    if isinstance(value, bool) or not isinstance(value, int | dict | list | tuple):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= _MAX_INT_BITS else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, dict):
        return {writable(k) if isinstance(k, str) else k: writable(v) for k, v in value.items()}
    return [writable(item) for item in value]


def json_line(record: Any) -> bytes:
    """One JSONL line as UTF-8 bytes; never fails on text or numbers a model returned.

    >>> json_line({"text": "\\ud83d", "n": 10 ** 5000})
    b'{"text": "\\xef\\xbf\\xbd", "n": "<integer of 16610 bits>"}\\n'
    """
    try:
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    except (UnicodeEncodeError, ValueError):  # a lone surrogate; an int past Python's 4 300-digit limit
        return (json.dumps(writable(record), ensure_ascii=False) + "\n").encode("utf-8")


def _may_hold_surrogates(line: bytes) -> bool:
    return b"\\ud" in line or b"\\uD" in line or b"\xed" in line


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a whole JSONL file of objects."""
    return [record for _, record in iter_jsonl(path)]


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically (temp file + rename); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    try:
        with tmp.open("wb") as handle:
            for record in records:
                handle.write(json_line(record))
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves no partial file behind
        raise
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
        """Append `record` unless its key is present; returns whether it was written.

        The key is the one the line will have when read back (text made writable, see `json_line`).
        """
        line = json_line(record)
        key = _hashable(self._key(json.loads(line) if _may_hold_surrogates(line) else record))
        if key in self.keys:
            return False
        with self.path.open("ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.keys.add(key)
        return True

    def records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path) if self.path.exists() else []


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key
