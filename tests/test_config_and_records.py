"""Config loading (unknown keys, overrides, file/line errors), the registry, and the crash-safe record store."""

from __future__ import annotations

import json

import pytest

from selfimprove.config import StrictModel, apply_overrides, load_config
from selfimprove.data.jsonl import RecordStore, read_jsonl
from selfimprove.errors import ConfigError, DataError, UserError
from selfimprove.registry import Registry


class Inner(StrictModel):
    lr: float = 1e-4


class Cfg(StrictModel):
    name: str
    inner: Inner = Inner()
    trainer: dict = {}


def test_config_loads_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\ninner:\n  lr: 0.1\ntrainer:\n  num_train_epochs: 1\n")
    cfg = load_config(path, Cfg, ["inner.lr=3e-5", "trainer.beta=0.1"])
    assert cfg.inner.lr == 3e-5 and cfg.trainer == {"num_train_epochs": 1, "beta": 0.1}


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: a\nbogus: 1\n", "bogus: Extra inputs are not permitted"),
        ("name: a\ninner:\n  lr: fast\n", "inner.lr"),
        ("name: [unclosed\n", ":2: invalid YAML"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, Cfg)
    assert str(path) in str(info.value) and message in str(info.value)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_registry_did_you_mean_and_module_paths():
    registry = Registry("reward", {"exact_match": "json:dumps"})
    assert registry.get("json:dumps") is registry.get("exact_match")
    with pytest.raises(UserError, match=r"importing 'json' is not allowed \(standard library\)"):
        registry.get("json:loads")
    with pytest.raises(UserError, match="did you mean 'exact_match'"):
        registry.get("exact_mtch")


def test_record_store_repairs_torn_tail_and_skips_duplicates(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"id": 1}) + "\n" + '{"id": 2, "x": "tor')
    store = RecordStore(path, key=lambda r: r["id"])
    assert store.repaired_bytes > 0 and 1 in store and 2 not in store
    assert store.append({"id": 2}) and not store.append({"id": 1})
    assert [r["id"] for r in read_jsonl(path)] == [1, 2]


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n')
    with pytest.raises(DataError, match=r"bad.jsonl:3: expected a JSON object"):
        read_jsonl(path)
