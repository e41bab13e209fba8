"""Data as people have it: every source a task or `train` reads, and TRL's SFT/DPO data formats.

Task sources (countdown and hotpotqa, through `tasks.records`): CSV, .jsonl.gz, .json.gz,
.csv.gz, several files (list, commas, glob), `datasets.Dataset` and `DatasetDict` objects, and a
hub source `hf:ORG/NAME[:CONFIG[:SPLIT]]` that fails offline with one line. Training: a two-step
`train sft` on the tiny model for each of TRL's SFT formats and a two-step `train dpo` for each
preference format, and one clear error naming the file, line and missing field otherwise.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from selfimprove.errors import DataError, UserError
from selfimprove.tasks import get_task

COUNTDOWN = [{"id": f"c{i}", "nums": [i + 1, 2, 3], "target": 6 * (i + 1)} for i in range(4)]
HOTPOT_HF = [{"id": f"h{i}", "question": f"Which city {i}?", "answer": "Paris", "type": "bridge", "level": "easy",
              "supporting_facts": {"title": ["Paris"], "sent_id": [0]},
              "context": {"title": ["Paris"], "sentences": [["Paris is a city.", " It is in France."]]}}
             for i in range(3)]


def write_jsonl(path: Path, rows: list[dict], compress: bool = False) -> Path:
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}
                         for row in rows)
    return path


def ids(examples) -> list[str]:
    return [example.id for example in examples]


# --- countdown: files of every kind --------------------------------------------------------------------------

def test_countdown_reads_csv_with_json_list_cells(tmp_path):
    examples = get_task("countdown").load(str(write_csv(tmp_path / "c.csv", COUNTDOWN)))
    assert ids(examples) == ["c0", "c1", "c2", "c3"]
    assert examples[1].meta["nums"] == [2, 2, 3] and examples[1].meta["target"] == 12


def test_countdown_reads_gzipped_jsonl_json_and_csv(tmp_path):
    task = get_task("countdown")
    jsonl = write_jsonl(tmp_path / "c.jsonl.gz", COUNTDOWN, compress=True)
    array = tmp_path / "c.json.gz"
    array.write_bytes(gzip.compress(json.dumps(COUNTDOWN).encode()))
    table = write_csv(tmp_path / "plain.csv", COUNTDOWN)
    packed = tmp_path / "c.csv.gz"
    packed.write_bytes(gzip.compress(table.read_bytes()))
    for path in (jsonl, array, packed):
        assert ids(task.load(str(path))) == ["c0", "c1", "c2", "c3"], path.name


def test_a_bad_row_in_a_gzipped_file_names_the_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl.gz", [COUNTDOWN[0], {"id": "x", "nums": [1, 2]}], compress=True)
    with pytest.raises(DataError, match=r"bad.jsonl.gz:2: field 'target': missing field"):
        get_task("countdown").load(str(path))


def test_countdown_reads_several_files_as_a_list_commas_or_a_glob(tmp_path):
    first = write_jsonl(tmp_path / "part-1.jsonl", COUNTDOWN[:2])
    second = write_csv(tmp_path / "part-2.csv", COUNTDOWN[2:])
    task = get_task("countdown")
    for source in ([str(first), str(second)], f"{first},{second}", str(tmp_path / "part-*")):
        assert ids(task.load(source)) == ["c0", "c1", "c2", "c3"], source


def test_several_files_number_unnamed_rows_across_files_and_errors_name_the_right_file(tmp_path):
    unnamed = [{k: v for k, v in row.items() if k != "id"} for row in COUNTDOWN]
    first = write_jsonl(tmp_path / "a.jsonl", unnamed[:2])
    second = write_jsonl(tmp_path / "b.jsonl", [unnamed[2], {"nums": [1]}])
    task = get_task("countdown")
    with pytest.raises(DataError, match=r"b.jsonl:2: field 'target'"):
        task.load(f"{first},{second}")
    assert ids(task.load(f"{first},{write_jsonl(tmp_path / 'c.jsonl', unnamed[2:])}")) == ["0", "1", "2", "3"]


def test_a_glob_that_matches_nothing_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"nothing-\*.jsonl: no file matches this pattern"):
        get_task("countdown").load(str(tmp_path / "nothing-*.jsonl"))


# --- datasets objects -----------------------------------------------------------------------------------------

def test_countdown_and_hotpotqa_load_a_datasets_dataset():
    from datasets import Dataset

    countdown = get_task("countdown").load(Dataset.from_list(COUNTDOWN))
    assert ids(countdown) == ["c0", "c1", "c2", "c3"] and countdown[3].meta["nums"] == [4, 2, 3]
    hotpot = get_task("hotpotqa").load(Dataset.from_list(HOTPOT_HF), limit=2)
    assert ids(hotpot) == ["h0", "h1"]
    assert hotpot[0].meta["context"] == [["Paris", ["Paris is a city.", " It is in France."]]]
    assert hotpot[0].meta["supporting_facts"] == [["Paris", 0]]


def test_function_calling_and_refiner_load_datasets_objects_too():
    from datasets import Dataset

    xlam = Dataset.from_list([{"id": 7, "query": "Add 2 and 3.", "tools": json.dumps([{"name": "add", "parameters": {
        "a": {"type": "int"}, "b": {"type": "int"}}}]), "answers": json.dumps([{"name": "add", "arguments": {
            "a": 2, "b": 3}}])}])
    calls = get_task("function_calling").load(xlam)
    assert ids(calls) == ["7"] and calls[0].answer == [{"add": {"a": [2], "b": [3]}}]
    refiner = get_task("refiner").load(Dataset.from_list([{"id": "r", "question": "Q?",
                                                           "tool_output": "<snippet id=s1>A.</snippet>"}]))
    assert ids(refiner) == ["r"] and refiner[0].meta["snippet_ids"] == ["s1"]


def test_a_datasetdict_gives_its_train_split_and_says_so(caplog):
    from datasets import Dataset, DatasetDict

    both = DatasetDict({"train": Dataset.from_list(COUNTDOWN[:3]), "test": Dataset.from_list(COUNTDOWN[3:])})
    with caplog.at_level("WARNING"):
        assert ids(get_task("countdown").load(both)) == ["c0", "c1", "c2"]
    assert "using split 'train'" in caplog.text
    assert ids(get_task("countdown").load(both["test"])) == ["c3"]
    hotpot = DatasetDict({"validation": Dataset.from_list(HOTPOT_HF)})
    assert ids(get_task("hotpotqa").load(hotpot)) == ["h0", "h1", "h2"]


def test_a_datasetdict_without_train_must_name_a_split():
    from datasets import Dataset, DatasetDict

    splits = DatasetDict({"validation": Dataset.from_list(COUNTDOWN), "test": Dataset.from_list(COUNTDOWN)})
    with pytest.raises(DataError, match=r"several splits \(validation, test\): pass one, e.g. dataset\['validation'\]"):
        get_task("countdown").load(splits)


def test_a_bad_dataset_row_names_the_dataset_row_and_field():
    from datasets import Dataset

    rows = [*HOTPOT_HF[:2], {**HOTPOT_HF[2], "question": None}]
    with pytest.raises(DataError, match=r"<Dataset>:2: field 'question': expected str, got NoneType"):
        get_task("hotpotqa").load(Dataset.from_list(rows))


# --- the hub, offline ----------------------------------------------------------------------------------------

def test_a_hub_source_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as caught:
        get_task("countdown").load("hf:no-such-org/no-such-countdown:default:test")
    message = str(caught.value)
    assert "\n" not in message and "no-such-org/no-such-countdown" in message
    assert "cannot reach the Hugging Face hub" in message and "not cached" in message


def test_the_hub_source_keeps_config_split_and_slice(monkeypatch):
    import datasets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or datasets.Dataset.from_list(COUNTDOWN))
    assert len(get_task("countdown").load("hf:org/count:main:test[:2]")) == 4
    assert len(get_task("countdown").load("hf:org/count")) == 4
    assert len(get_task("countdown").load("hf:org/count::validation")) == 4
    assert calls == [(("org/count", "main"), {"split": "test[:2]"}), (("org/count", None), {"split": "train"}),
                     (("org/count", None), {"split": "validation"})]


# --- train sft / train dpo in each of TRL's formats -------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You answer."}
USER = {"role": "user", "content": "Which city is the capital of France?"}
GOOD = {"role": "assistant", "content": "<answer>Paris</answer>"}
BAD = {"role": "assistant", "content": "<answer>Lyon</answer>"}
SFT_ROWS = {
    "conversational prompt-completion": {"prompt": [SYSTEM, USER], "completion": [GOOD]},
    "prompt-completion": {"prompt": "Capital of France?", "completion": " Paris."},
    "conversational language modeling": {"messages": [SYSTEM, USER, GOOD]},
    "sharegpt conversations": {"conversations": [{"from": "user", "value": USER["content"]},
                                                 {"from": "assistant", "value": GOOD["content"]}]},
    "language modeling": {"text": "The capital of France is Paris."},
}
DPO_ROWS = {
    "conversational preference": {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]},
    "preference": {"prompt": "Capital of France?", "chosen": " Paris.", "rejected": " Lyon."},
    "conversational implicit-prompt preference": {"chosen": [USER, GOOD], "rejected": [USER, BAD]},
    "implicit-prompt preference": {"chosen": "Capital of France? Paris.", "rejected": "Capital of France? Lyon."},
}


def train_config(model_dir: Path, data, out: Path):
    from selfimprove.train.config import TrainConfig

    trainer = {"max_steps": 2, "save_strategy": "no", "learning_rate": 1e-2, "per_device_train_batch_size": 2,
               "gradient_accumulation_steps": 1, "gradient_checkpointing": False, "report_to": "none"}
    return TrainConfig(model={"spec": str(model_dir)}, data=data, output_dir=str(out), trainer=trainer)


def assert_trained(summary: dict, out: Path) -> None:
    """Two steps, a finite loss logged at each, and LoRA B matrices (zero at the start) changed."""
    from safetensors.torch import load_file

    assert summary["global_step"] == 2 and summary["logged_steps"] == 2
    assert 0 < summary["first_loss"] < float("inf") and 0 < summary["last_loss"] < float("inf")
    lora_b = [t for name, t in load_file(str(out / "adapter" / "adapter_model.safetensors")).items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)


@pytest.mark.parametrize("name", list(SFT_ROWS))
def test_train_sft_accepts_each_trl_format(name, tiny_model_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    data = write_jsonl(tmp_path / "sft.jsonl", [SFT_ROWS[name]] * 4)
    summary = train_sft(train_config(tiny_model_dir, str(data), tmp_path / "out"))
    assert_trained(summary, tmp_path / "out")
    expected = "conversational language modeling" if name == "sharegpt conversations" else name
    assert summary["data_format"] == expected


@pytest.mark.parametrize("name", list(DPO_ROWS))
def test_train_dpo_accepts_each_trl_preference_format(name, tiny_model_dir, tmp_path):
    from selfimprove.train.dpo import train_dpo

    data = write_jsonl(tmp_path / "dpo.jsonl", [DPO_ROWS[name]] * 4)
    summary = train_dpo(train_config(tiny_model_dir, str(data), tmp_path / "out"))
    assert_trained(summary, tmp_path / "out")
    assert summary["data_format"] == name


def test_train_sft_reads_several_files_of_another_kind(tiny_model_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    first = write_jsonl(tmp_path / "a.jsonl.gz", [SFT_ROWS["conversational language modeling"]] * 2, compress=True)
    second = write_jsonl(tmp_path / "b.jsonl", [SFT_ROWS["conversational language modeling"]] * 2)
    summary = train_sft(train_config(tiny_model_dir, [str(first), str(second)], tmp_path / "out"))
    assert summary["rows"] == 4 and summary["global_step"] == 2


@pytest.mark.parametrize(("rows", "where"), [
    ([SFT_ROWS["prompt-completion"], {"prompt": "Capital?"}], r"sft.jsonl:2: field 'completion': missing field"),
    ([SFT_ROWS["conversational language modeling"], {"messages": "Paris"}],
     r"sft.jsonl:2: field 'messages': expected a list of chat messages"),
    ([{"prompt": "Capital?", "answer": "Paris"}], r"sft.jsonl:1: field 'completion': missing field.*messages.*text"),
])
def test_sft_rows_outside_every_format_name_the_file_line_and_field(rows, where, tiny_model_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    with pytest.raises(DataError, match=where):
        train_sft(train_config(tiny_model_dir, str(data), tmp_path / "out"))


def test_dpo_row_without_rejected_names_the_field(tiny_model_dir, tmp_path):
    from selfimprove.train.dpo import train_dpo

    data = write_jsonl(tmp_path / "dpo.jsonl", [DPO_ROWS["preference"], {"prompt": "Q", "chosen": "A"}])
    with pytest.raises(DataError, match=r"dpo.jsonl:2: field 'rejected': missing field"):
        train_dpo(train_config(tiny_model_dir, str(data), tmp_path / "out"))


# --- as a user meets it: the CLI --------------------------------------------------------------------------------

def test_eval_cli_reads_a_csv_and_a_gzipped_jsonl_in_one_run(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    table = write_csv(tmp_path / "a.csv", COUNTDOWN[:2])
    packed = write_jsonl(tmp_path / "b.jsonl.gz", COUNTDOWN[2:3], compress=True)
    result = CliRunner().invoke(app, ["eval", "--task", "countdown", "--model", str(tiny_model_dir), "--data",
                                      f"{table},{packed}", "--max-tokens", "4", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "ev" / "records.jsonl").read_text().splitlines()]
    assert sorted({r["example_id"] for r in records}) == ["c0", "c1", "c2"]


def test_eval_cli_with_an_uncached_hub_source_offline_is_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    result = CliRunner().invoke(app, ["eval", "--task", "countdown", "--model", "unused-model", "--data",
                                      "hf:nobody/countdown-offline", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: data source 'hf:nobody/countdown-offline': cannot reach the Hugging Face hub and "
                     "dataset 'nobody/countdown-offline' is not cached; run once online, or pass local files"]
