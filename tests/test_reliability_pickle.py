"""Pickled datasets (.pkl/.pickle/.joblib) are refused unless SELFIMPROVE_ALLOW_PICKLE=1.

The refusal must come BEFORE the file is unpickled: a hostile pickle whose payload would create
a marker file proves it (the marker must not appear). With the opt-in, a trusted pickle of
records loads through every task loader's usual path (`read_records`).
"""

from __future__ import annotations

import os
import pickle  # noqa: S403 - the test writes pickles to prove they are not loaded
import subprocess
import sys

import pytest

from selfimprove.data.safe_load import ALLOW_PICKLE_ENV, read_pickled_records
from selfimprove.errors import DataError
from selfimprove.tasks import get_task
from selfimprove.tasks.records import read_records


class Payload:
    """Unpickling this runs `touch MARKER`: what a hostile dataset file can do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib", ".PKL"])
def test_pickled_datasets_are_refused_before_loading(tmp_path, monkeypatch, suffix):
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    marker = tmp_path / "pwned"
    path = tmp_path / f"data{suffix}"
    path.write_bytes(pickle.dumps([Payload(marker)]))
    with pytest.raises(DataError, match=f"refusing to load a pickled dataset.*{ALLOW_PICKLE_ENV}=1") as error:
        get_task("countdown").load(str(path))
    assert str(path) in str(error.value)
    assert not marker.exists(), "the file was unpickled before the refusal"


@pytest.mark.parametrize("value", ["0", "yes", "true", ""])
def test_only_the_exact_opt_in_value_allows_it(tmp_path, monkeypatch, value):
    monkeypatch.setenv(ALLOW_PICKLE_ENV, value)
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps([{"nums": [1, 2], "target": 3}]))
    with pytest.raises(DataError, match="refusing"):
        read_records(path)


def test_the_cli_refuses_in_one_line(tmp_path):
    path = tmp_path / "data.joblib"
    path.write_bytes(pickle.dumps([Payload(tmp_path / "pwned")]))
    env = {k: v for k, v in os.environ.items() if k != ALLOW_PICKLE_ENV}
    done = subprocess.run([sys.executable, "-m", "selfimprove", "eval", "--task", "countdown", "--format", "single",
                           "--data", str(path), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 2 and "refusing to load a pickled dataset" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "pwned").exists()


def test_with_the_opt_in_a_trusted_pickle_loads(tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    rows = [{"nums": [1, 2, 3], "target": 6, "id": "a"}, {"nums": [4, 5], "target": 9, "id": "b"}]
    (tmp_path / "rows.pkl").write_bytes(pickle.dumps(rows))
    (tmp_path / "columns.pickle").write_bytes(pickle.dumps({"nums": [[1, 2, 3], [4, 5]], "target": [6, 9],
                                                            "id": ["a", "b"]}))
    for name in ("rows.pkl", "columns.pickle"):
        examples = get_task("countdown").load(str(tmp_path / name))
        assert [(e.id, e.meta["target"]) for e in examples] == [("a", 6), ("b", 9)]


def test_with_the_opt_in_a_pickle_of_the_wrong_shape_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    for index, data in enumerate([42, [1, 2], {"a": [1], "b": [1, 2]}]):
        path = tmp_path / f"bad{index}.pkl"
        path.write_bytes(pickle.dumps(data))
        with pytest.raises(DataError):
            read_pickled_records(path)
