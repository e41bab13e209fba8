"""Hostile files: random bytes, JSON and YAML into every loader give a DataError/ConfigError or success.

Loaders covered: `read_jsonl`, `read_records` (.json/.jsonl/.parquet), each task's `load(path)`,
`load_corpus_jsonl`, `read_trajectories`, the training row reader, `load_config`,
`load_recipe` and `--set` overrides. Anything else they raise (UnicodeDecodeError,
RecursionError, KeyError, TypeError...) is a bug: the user would get a traceback, not a line
naming the file. Inputs are size-capped and every test has a watchdog, so a hang or a blow-up
fails the test (wall-clock speed is not asserted here; that belongs in benchmarks/).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfimprove.config import StrictModel, apply_overrides, load_config, read_yaml
from selfimprove.data.jsonl import read_jsonl
from selfimprove.data.trajectory import read_trajectories
from selfimprove.errors import ConfigError, DataError
from selfimprove.tasks import get_task
from selfimprove.tasks.records import read_records
from selfimprove.tools.corpus import load_corpus_jsonl
from selfimprove.train.trainer_loop import read_rows
from selfimprove.workflows.pipeline.recipe import load_recipe

MAX_BYTES = 20_000
pytestmark = pytest.mark.timeout(300, method="thread")  # a hang guard: each test here takes seconds
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
# Field names the loaders look for, so random records often reach the per-field checks.
FIELDS = ["_id", "id", "example_id", "attempt", "question", "answer", "answers", "context", "supporting_facts",
          "level", "type", "nums", "target", "solution", "function", "tools", "ground_truth", "query",
          "snippets", "tool_output", "reference_answer", "title", "text", "steps", "score", "flags", "timing",
          "prompt", "completion", "chosen", "rejected", "data", "content", "role", "name"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(FIELDS))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=5)),
    max_leaves=25)
records = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
# Hand-written hostile payloads: encodings, nesting bombs, truncation, wrong top-level types.
NASTY = [b"\xff\xfe\x00garbage", b'{"a": 1}\n\xff\n', b"[" * 50_000 + b"]" * 50_000, b'{"a":' + b"[" * 50_000,
         b"\x00" * 100, b'{"question": "q"', b"null", b"42", b'"text"', b"[1, 2]", b'{"data": 3}',
         b"\xef\xbb\xbf" + b'{"id": "1"}\n', b'{"a": NaN}\n', b"\n\n\n", b"", "ünïcödé\u2028\n".encode()]


def loaders() -> dict[str, callable]:
    def task_loader(name: str):
        return lambda path: get_task(name).load(str(path))

    return {**{f"task:{name}": task_loader(name) for name in ("hotpotqa", "countdown", "function_calling", "refiner")},
            "read_records": read_records, "read_jsonl": read_jsonl, "corpus": load_corpus_jsonl,
            "trajectories": read_trajectories, "train_rows": lambda path: read_rows(path, ("prompt", "completion"))}


LOADERS = loaders()


def assert_data_error_or_success(load, path: Path) -> None:
    try:
        load(path)
    except DataError:
        pass


@pytest.mark.parametrize("name", sorted(LOADERS))
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
@pytest.mark.parametrize("payload", NASTY, ids=range(len(NASTY)))
def test_hostile_bytes_give_a_data_error(name, suffix, payload, tmp_path):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(payload)
    assert_data_error_or_success(LOADERS[name], path)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([".jsonl", ".json", ".parquet"]))
def test_random_bytes_give_a_data_error(tmp_path_factory, payload, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"data{suffix}"
    path.write_bytes(payload)
    for load in LOADERS.values():
        assert_data_error_or_success(load, path)


@FUZZ
@given(st.lists(records, max_size=5), st.booleans())
def test_random_records_give_a_data_error_or_load(tmp_path_factory, rows, as_array):
    folder = tmp_path_factory.mktemp("records")
    if as_array:
        path = folder / "data.json"
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        path = folder / "data.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert path.stat().st_size < MAX_BYTES * 10
    for load in LOADERS.values():
        assert_data_error_or_success(load, path)


def test_a_hostile_parquet_file_gives_a_data_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"nums": ["not a list"], "target": [None], "question": [1]}), path)
    for name in ("task:countdown", "task:hotpotqa", "task:refiner", "task:function_calling"):
        assert_data_error_or_success(LOADERS[name], path)


class DemoConfig(StrictModel):
    """A small config model with nested blocks, like the real ones."""

    class Inner(StrictModel):
        rate: float = 0.1
        names: list[str] = []

    inner: Inner = Inner()
    steps: int = 1
    out: str = "x"
    trainer: dict = {}


yaml_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from([*"{}[]:-,&*!|>'\"#%@`\n\t ", "a", "1", "name: ", "stages:", "- ", "kind: ",
                              "&x ", "*x", "!!python/object:os.system", "!!binary", "\xff", "~", "..."]),
             max_size=80).map("".join),
    json_values.map(lambda v: yaml.safe_dump(v)),
    st.dictionaries(st.sampled_from(["name", "stages", "out", "description", "inner", "steps", "trainer"]),
                    json_values, max_size=5).map(lambda v: yaml.safe_dump(v)),
)


def assert_config_error_or_success(load) -> None:
    try:
        load()
    except ConfigError:
        pass


@FUZZ
@given(yaml_text)
def test_random_yaml_gives_a_config_error_or_loads(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    assert_config_error_or_success(lambda: load_config(path, DemoConfig))
    assert_config_error_or_success(lambda: load_recipe(path))


LAUGHS = "\n".join(['a0: &a0 ["x","x","x","x","x","x","x","x","x"]'] +  # 9**9 strings if ever expanded
                   [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)])
LAUGHS_RECIPE = "name: x\nstages:\n  - name: s\n    kind: k\n    params:\n      " + LAUGHS.replace("\n", "\n      ")


@pytest.mark.parametrize("payload", [b"a: \xff\xfe\n",
                                     LAUGHS.encode(), LAUGHS_RECIPE.encode(),
                                     b"[" * 5000, b"a: &a [*a, *a]\n",
                                     b"!!python/object/apply:os.system ['true']\n", b"a: !!python/name:os.system\n",
                                     b"- 1\n- 2\n", b"\x00"])
def test_hostile_yaml_bytes_give_a_config_error(payload, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(payload)
    assert_config_error_or_success(lambda: load_config(path, DemoConfig))
    assert_config_error_or_success(lambda: load_recipe(path))


@pytest.mark.parametrize("payload", [LAUGHS, LAUGHS_RECIPE, "a: &a [*a, *a]\n"])
def test_alias_bombs_and_self_references_are_refused_before_expansion(payload, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(ConfigError, match="refused YAML"):
        load_recipe(path)


@pytest.mark.parametrize("payload", ["[" * 5000, "a:\n  b:\n" + "".join("  " * i + "- \n" for i in range(2, 400)),
                                     "x: " + "{a: " * 3000])
def test_deep_nesting_is_refused_with_the_line_before_recursing(payload, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+: invalid YAML: nested deeper than 100 levels"):
        read_yaml(path)


def test_nesting_up_to_the_limit_still_loads(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("a: " + "[" * 98 + "1" + "]" * 98 + "\n", encoding="utf-8")
    value = read_yaml(path)["a"]
    for _ in range(98):
        value = value[0] if isinstance(value, list) else value
    assert value == 1


def test_shared_anchors_of_reasonable_size_still_load(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("base: &b {rate: 0.5, names: [x, y]}\ninner: *b\n", encoding="utf-8")
    assert read_yaml(path) == {"base": {"rate": 0.5, "names": ["x", "y"]}, "inner": {"rate": 0.5, "names": ["x", "y"]}}


@FUZZ
@given(st.lists(st.text(alphabet=string.ascii_letters + "=.-_ 0123456789\"'", max_size=30), max_size=4))
def test_random_overrides_give_a_config_error_or_apply(overrides):
    assert_config_error_or_success(lambda: apply_overrides({"inner": {"rate": 1}, "steps": 2}, overrides))


@pytest.mark.parametrize("item", ["a=[", "a={", "a=*x", "a=- - :"])
def test_unparseable_override_values_are_config_errors(item):
    with pytest.raises(ConfigError):
        apply_overrides({}, [item])
