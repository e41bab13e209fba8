"""The trajectory schema: one record per agent episode, shared by every stage.

The agent loop writes `Trajectory` records (one JSON object per line); distillation, the SFT/DPO
converters, GRPO failure sets and evaluation read them. Field by field documentation lives in
docs/agent.md. Guarantees: `to_dict()` is JSON-able and `from_dict(to_dict(t)) == t`; loading is
strict (unknown or missing fields, wrong types and a newer `schema_version` raise `DataError`
naming file:line:field). Each step keeps the model's raw text, so any stage can rebuild the
exact prompt of step i with the agent format (`agent.formats.get_format(t.agent_format)
.conversation(t.question, t.steps[:i])`). It does not store token ids or logprobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from selfimprove.data.jsonl import iter_jsonl, write_jsonl
from selfimprove.errors import DataError

SCHEMA_VERSION = 1
ACTIONS = ("search", "answer", "invalid")


@dataclass
class Step:
    """One model turn and what the environment answered."""

    index: int
    text: str
    thought: str = ""
    action: str = "invalid"
    argument: str = ""
    observation: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    parse_error: str | None = None
    repeated_query: bool = False


@dataclass
class Flags:
    """Counters and outcomes a filter or reward can use without re-parsing the steps."""

    parse_errors: int = 0
    repeated_queries: int = 0
    step_limit: bool = False
    finished: bool = False


@dataclass
class Timing:
    """Wall-clock facts. In a batched run, `generate_seconds`/`search_seconds` are this episode's
    share (each batched call's time divided by the episodes in it)."""

    started: str = ""
    seconds: float = 0.0
    generate_seconds: float = 0.0
    search_seconds: float = 0.0


@dataclass
class Trajectory:
    """One episode of one example (attempt `attempt`)."""

    task: str
    example_id: str
    attempt: int
    question: str
    gold: Any
    steps: list[Step] = field(default_factory=list)
    final_answer: str | None = None
    score: dict[str, Any] = field(default_factory=dict)
    flags: Flags = field(default_factory=Flags)
    level: str | None = None
    type: str | None = None
    model: str = ""
    agent_format: str = ""
    searcher: str = ""
    generation: dict[str, Any] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, int]:
        """The resume key: (example id, attempt)."""
        return (self.example_id, self.attempt)

    @property
    def value(self) -> float:
        """The main score (0.0 when unscored)."""
        return float(self.score.get("value", 0.0) or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = "<trajectory>", line: int | None = None) -> Trajectory:
        """Validate and build; errors name path:line and the (dotted) field."""
        return _TrajectoryReader(str(path), line).read(data)


def trajectory_key(record: dict[str, Any]) -> tuple[str, int]:
    """The resume key of a trajectory record (for `RecordStore(key=...)`)."""
    return (record["example_id"], record["attempt"])


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """Read a trajectories JSONL file, validating every record."""
    return list(iter_trajectories(path))


def iter_trajectories(path: str | Path) -> Iterator[Trajectory]:
    for line, record in iter_jsonl(path):
        yield Trajectory.from_dict(record, path, line)


def write_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> int:
    """Write trajectories atomically as JSONL; returns how many."""
    return write_jsonl(path, (t.to_dict() for t in trajectories))


_STEP_TYPES: dict[str, tuple[type, ...]] = {
    "index": (int,), "text": (str,), "thought": (str,), "action": (str,), "argument": (str,),
    "observation": (str, type(None)), "prompt_tokens": (int,), "completion_tokens": (int,),
    "finish_reason": (str,), "parse_error": (str, type(None)), "repeated_query": (bool,),
}
_FLAG_TYPES = {"parse_errors": (int,), "repeated_queries": (int,), "step_limit": (bool,), "finished": (bool,)}
_TIMING_TYPES = {"started": (str,), "seconds": (int, float), "generate_seconds": (int, float),
                 "search_seconds": (int, float)}
_TOP_TYPES: dict[str, tuple[type, ...]] = {
    "task": (str,), "example_id": (str,), "attempt": (int,), "question": (str,),
    "final_answer": (str, type(None)), "score": (dict,), "level": (str, type(None)), "type": (str, type(None)),
    "model": (str,), "agent_format": (str,), "searcher": (str,), "generation": (dict,), "meta": (dict,),
    "schema_version": (int,),
}
_REQUIRED = ("schema_version", "task", "example_id", "attempt", "question", "gold", "steps")


class _TrajectoryReader:
    """Strict validation of one record, with file:line:field errors."""

    def __init__(self, path: str, line: int | None):
        self.path, self.line = path, line

    def fail(self, field_name: str, message: str) -> DataError:
        return DataError(self.path, message, line=self.line, field=field_name)

    def read(self, data: Any) -> Trajectory:
        if not isinstance(data, dict):
            raise self.fail("<record>", f"expected an object, got {type(data).__name__}")
        self.check_keys(data, Trajectory, "")
        for name in _REQUIRED:
            if name not in data:
                raise self.fail(name, "missing")
        self.check_version(data["schema_version"])
        values = self.check_types(data, _TOP_TYPES, "")
        if not isinstance(data["steps"], list):
            raise self.fail("steps", "expected a list")
        values["gold"] = data["gold"]
        values["steps"] = [self.read_step(step, i) for i, step in enumerate(data["steps"])]
        values["flags"] = Flags(**self.read_part(data.get("flags", {}), Flags, _FLAG_TYPES, "flags"))
        values["timing"] = Timing(**self.read_part(data.get("timing", {}), Timing, _TIMING_TYPES, "timing"))
        return Trajectory(**values)

    def check_version(self, version: Any) -> None:
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise self.fail("schema_version", f"unsupported version {version!r} (this code reads 1..{SCHEMA_VERSION})")

    def check_keys(self, data: dict[str, Any], cls: type, prefix: str) -> None:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise self.fail(prefix + unknown[0], "unknown field")

    def check_types(self, data: dict[str, Any], types: dict[str, tuple[type, ...]], prefix: str) -> dict[str, Any]:
        values = {}
        for name, allowed in types.items():
            if name not in data:
                continue
            value = data[name]
            if not _is_instance(value, allowed):
                wanted = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
                raise self.fail(prefix + name, f"expected {wanted}, got {type(value).__name__}")
            values[name] = value
        return values

    def read_part(self, data: Any, cls: type, types: dict[str, tuple[type, ...]], prefix: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(prefix, f"expected an object, got {type(data).__name__}")
        self.check_keys(data, cls, prefix + ".")
        return self.check_types(data, types, prefix + ".")

    def read_step(self, data: Any, position: int) -> Step:
        prefix = f"steps[{position}]"
        values = self.read_part(data, Step, _STEP_TYPES, prefix)
        for name in ("index", "text"):
            if name not in values:
                raise self.fail(f"{prefix}.{name}", "missing")
        if values.get("action", "invalid") not in ACTIONS:
            raise self.fail(f"{prefix}.action", f"expected one of {', '.join(ACTIONS)}, got {values['action']!r}")
        return Step(**values)


def _is_instance(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)
