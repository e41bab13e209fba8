"""Config files: YAML -> pydantic models, unknown keys rejected, `--set a.b=c` overrides.

`load_config(path, Model, overrides)` reads a YAML mapping, applies overrides (values parsed as
YAML scalars, so `--set trainer.learning_rate=1e-4` gives a float), and validates it against a
pydantic model whose unknown keys are errors. Errors name the file and the dotted field. A
`trainer:` block is kept as a plain dict for the caller to hand to TRL's own config class.
One spelling per knob: a config model refuses an old spelling (`OLD_SPELLINGS`, plus a model's own
`renamed`) with one error naming the new one ("'max_steps' is now 'max_turns'").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from selfimprove.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

MAX_EXPANDED_NODES = 100_000
MAX_NESTING_DEPTH = 100
# old spelling -> the one spelling; refused by every config model that has the new field and not the old
OLD_SPELLINGS = {"out": "output_dir", "search": "searcher", "max_steps": "max_turns", "max_samples": "limit",
                 "index": "index_dir"}


class _ExpansionError(Exception):
    """Raised while loading when aliases would expand past MAX_EXPANDED_NODES, or refer to themselves."""


class _BoundedSafeLoader(yaml.SafeLoader):
    """A SafeLoader that refuses alias bombs ("billion laughs"), self-referential aliases and deep nesting."""

    _depth = 0

    def compose_node(self, parent, index):
        # Refused while composing, before Python's recursion limit is reached deep inside PyYAML
        # (which takes seconds to unwind on a file of a few thousand brackets).
        if self._depth >= MAX_NESTING_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_NESTING_DEPTH} levels",
                                              self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node):
        _expanded_size(node, {}, set())
        return super().construct_document(node)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes `node` becomes once every alias is expanded (memoised per shared node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _ExpansionError("an alias refers to a node that contains it")
    open_nodes.add(key)
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = []
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(key)
    if size > MAX_EXPANDED_NODES:
        raise _ExpansionError(f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes")
    sizes[key] = size
    return size


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, not silently ignored; old spellings name the new one.

    `renamed` maps a model's own old keys to where they went (e.g. `{"search": "agent.searcher"}`).
    """

    model_config = ConfigDict(extra="forbid")
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_old_spellings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in old_spellings(cls).items():
                if old in data:
                    raise PydanticCustomError("renamed", "'{old}' is now '{new}'", {"old": old, "new": new})
        return data


def old_spellings(model: type[BaseModel]) -> dict[str, str]:
    """The old keys `model` refuses, each with its new name.

    >>> class Demo(StrictModel):
    ...     output_dir: str = "."
    ...     index: int = 0
    >>> old_spellings(Demo)
    {'out': 'output_dir'}
    """
    fields = model.model_fields
    common = {old: new for old, new in OLD_SPELLINGS.items() if new in fields and old not in fields}
    return {**common, **getattr(model, "renamed", {})}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file (and the line, for syntax errors)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a YAML config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_BoundedSafeLoader)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    except _ExpansionError as exc:
        raise ConfigError(f"{path}: refused YAML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except ValueError as exc:  # a value PyYAML cannot convert, e.g. an integer of 5,000 digits
        raise ConfigError(f"{path}: invalid YAML value: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply `a.b=c` overrides in place; `c` is parsed as a YAML scalar.

    >>> apply_overrides({"trainer": {"lr": 1}}, ["trainer.lr=2e-4", "seed=3"])
    {'trainer': {'lr': 0.0002}, 'seed': 3}
    """
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a mapping")
            node = child
        node[leaf] = _parse_scalar(raw)
    return data


def _parse_scalar(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError, ValueError):
        raise ConfigError(f"--set {raw!r}: not a valid YAML value") from None
    if isinstance(value, str) and looks_like_float(value):
        return float(value)
    return value


def looks_like_float(text: str) -> bool:
    """Whether `text` parses as a number (`1e-5`, `-3`, `inf`): a value, not an option or a word."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate(model: type[M], data: dict[str, Any], source: str = "<config>") -> M:
    """Validate `data` against `model`; the error names the source and every bad dotted field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def check_field_types(config_class: type, values: dict[str, Any], source: str = "trainer") -> None:
    """Refuse values whose type cannot fit a dataclass field with a number or bool default (TRL's configs).

    TRL/transformers configs compare and convert these fields in `__post_init__`, where a string
    like "abc" ends in a TypeError deep inside; this names the field instead.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo:
    ...     learning_rate: float = 1.0
    ...     bf16: bool = False
    >>> check_field_types(Demo, {"learning_rate": 2e-4, "bf16": True})
    >>> check_field_types(Demo, {"learning_rate": "abc"})
    Traceback (most recent call last):
    selfimprove.errors.ConfigError: trainer.learning_rate: expected a number, got 'abc'
    """
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{source}.{key}: expected true or false, got {str(value)[:80]!r}")
        if (isinstance(default, int | float) and not isinstance(default, bool)
                and (isinstance(value, bool) or not isinstance(value, int | float))):
            raise ConfigError(f"{source}.{key}: expected a number, got {str(value)[:80]!r}")


def load_config(path: str | Path, model: type[M], overrides: list[str] | None = None) -> M:
    """Read, override and validate a YAML config file."""
    return validate(model, apply_overrides(read_yaml(path), overrides), source=str(path))
