"""Training logs: TensorBoard events by default (off with `report_to: none`) and curves.png from the log history."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import pytest

from selfimprove.config import apply_overrides, validate
from selfimprove.train.config import TrainConfig, common_trainer_defaults
from selfimprove.train.curves import plotted_metrics, write_learning_curves

PROMPT = [{"role": "system", "content": "You answer."}, {"role": "user", "content": "Question: Which city?\n"}]
ANSWER = [{"role": "assistant", "content": "Thought: It is Paris.\nAction: [action: Answer, action_input: Paris]"}]


def scalar_tags(run_dir: Path) -> set[str]:
    """Scalar tags in every TensorBoard event file under `run_dir` (TFRecord framing, Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    tags = set()
    for path in run_dir.rglob("events.out.tfevents.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            tags.update(value.tag for value in event.summary.value if value.HasField("simple_value"))
            offset += 12 + length + 4
    return tags


def assert_valid_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.is_file() and path.stat().st_size > 5_000
    pixels = imread(str(path))
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # not blank: axes, lines and labels on white


def sft_config(model_dir: Path, tmp_path: Path, overrides: list[str] | None = None) -> TrainConfig:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": PROMPT, "completion": ANSWER}) + "\n" for _ in range(4)))
    raw = {"model": {"spec": str(model_dir), "lora": {"r": 4, "alpha": 8}}, "data": str(data),
           "output_dir": str(tmp_path / "sft"),
           "trainer": {"max_steps": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                       "gradient_checkpointing": False, "save_strategy": "no"}}
    return validate(TrainConfig, apply_overrides(raw, overrides))


def test_default_sft_run_writes_tensorboard_events_and_curves(tiny_model_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    summary = train_sft(sft_config(tiny_model_dir, tmp_path))
    out = tmp_path / "sft"
    assert summary["tensorboard_logs"] == str(out / "runs")
    assert {"train/loss", "train/learning_rate"} <= scalar_tags(out / "runs")
    assert summary["curves"] == str(out / "curves.png")
    assert_valid_png(out / "curves.png")
    assert summary["curve_metrics"] == ["entropy", "loss", "learning_rate"]  # TRL's SFT logs the entropy too
    assert json.loads((out / "train_summary.json").read_text())["curves"] == summary["curves"]


def test_report_to_none_set_on_the_command_line_writes_no_events(tiny_model_dir, tmp_path):
    from selfimprove.train.sft import train_sft

    summary = train_sft(sft_config(tiny_model_dir, tmp_path, ["trainer.report_to=none"]))
    out = tmp_path / "sft"
    assert not list(out.rglob("events.out.tfevents.*")) and summary["tensorboard_logs"] is None
    assert (out / "curves.png").is_file()  # curves do not depend on the tracker


def test_grpo_run_draws_reward_health_and_loss_curves(tiny_model_dir, tmp_path):
    from selfimprove.train.grpo import GRPORunConfig, train_grpo

    config = GRPORunConfig(
        task="countdown", data="generate:n=4,seed=0,min_nums=3,max_nums=3",
        model={"spec": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8}},
        rewards=[{"name": "soft_format"}, {"name": "countdown_correct"}], output_dir=str(tmp_path / "grpo"),
        trainer={"max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 8,
                 "gradient_checkpointing": False, "save_strategy": "no"})
    summary = train_grpo(config)
    assert_valid_png(Path(summary["curves"]))
    assert summary["curve_metrics"][:3] == ["reward", "rewards/countdown_correct/mean", "rewards/soft_format/mean"]
    assert {"frac_reward_zero_std", "kl", "entropy", "loss", "completions/clipped_ratio"} <= set(summary["curve_metrics"])
    assert "train/reward" in scalar_tags(tmp_path / "grpo" / "runs")


def test_dpo_history_gets_loss_and_margin_panels_and_absent_metrics_none(tmp_path):
    history = [{"step": 1, "loss": 0.69, "rewards/margins": 0.0, "rewards/accuracies": 0.0, "kl": None},
               {"step": 2, "loss": 0.6, "rewards/margins": 0.2, "rewards/accuracies": 1.0, "eval_loss": float("nan")},
               {"step": 2, "train_runtime": 3.0, "train_loss": 0.65}]
    assert plotted_metrics(history) == ["loss", "rewards/margins", "rewards/accuracies"]
    assert write_learning_curves(history, tmp_path) == [tmp_path / "curves.png"]
    assert_valid_png(tmp_path / "curves.png")
    assert write_learning_curves([{"step": 1, "train_runtime": 1.0}], tmp_path / "empty") == []


def test_long_runs_get_a_rolling_mean_line(tmp_path, monkeypatch):
    import selfimprove.train.curves as curves

    drawn = []
    original = curves.rolling_mean
    monkeypatch.setattr(curves, "rolling_mean", lambda values, window: drawn.append(window) or original(values, window))
    history = [{"step": step, "reward": float(step % 3), "loss": 0.1} for step in range(1, 41)]
    assert write_learning_curves(history, tmp_path) == [tmp_path / "curves.png"]
    assert_valid_png(tmp_path / "curves.png")
    assert drawn == [4, 4]  # one line per panel, over a tenth of the 40 steps
    (tmp_path / "short").mkdir()
    assert write_learning_curves(history[:10], tmp_path / "short") and len(drawn) == 2  # too few points: raw only


def test_a_plotting_error_is_logged_not_raised(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="selfimprove.train.curves"):
        assert write_learning_curves([{"step": 1, "loss": 1.0}], tmp_path / "missing" / "dir") == []
    assert "learning curves not written" in caplog.text


def test_user_report_to_is_kept_and_a_missing_writer_falls_back_with_a_notice(monkeypatch, caplog):
    from selfimprove.train import config as config_module

    assert common_trainer_defaults({})["report_to"] == ["tensorboard"]
    assert "report_to" not in common_trainer_defaults({"report_to": "none"})  # the user's value is merged as given
    monkeypatch.setattr(config_module, "tensorboard_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert common_trainer_defaults({})["report_to"] == "none"
    assert "no TensorBoard logs" in caplog.text


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_explicit_report_to_reaches_the_trl_config(kind):
    from selfimprove.train.dpo import DPO
    from selfimprove.train.sft import SFT
    from selfimprove.train.trainer_loop import build_trainer_args

    trainer_kind = {"sft": SFT, "dpo": DPO}[kind]
    _, config_class = trainer_kind.load()
    base = {"data": "x.jsonl", "output_dir": "/tmp/unused-logging-test"}
    assert build_trainer_args(config_class, trainer_kind, TrainConfig(**base)).report_to == ["tensorboard"]
    explicit = TrainConfig(**base, trainer={"report_to": "none"})
    assert build_trainer_args(config_class, trainer_kind, explicit).report_to == []


def test_redraw_curves_from_a_saved_run_and_loud_errors(tmp_path):
    from selfimprove.errors import DataError, UserError
    from selfimprove.train.curves import redraw_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "log_history.json").write_text(json.dumps([{"step": s, "loss": 1.0 / s, "reward": s / 4} for s in (1, 2, 3)]))
    png, metrics = redraw_curves(run, tmp_path / "out")
    assert png == tmp_path / "out" / "curves.png" and metrics == ["reward", "loss"]
    assert_valid_png(png)
    with pytest.raises(UserError, match="log_history.json"):
        redraw_curves(tmp_path / "nowhere")
    (run / "log_history.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        redraw_curves(run)
    (run / "log_history.json").write_text(json.dumps([{"step": 1, "train_runtime": 2.0}]))
    with pytest.raises(UserError, match="no plottable metric"):
        redraw_curves(run)


def test_report_curves_command_redraws_from_a_saved_run(tmp_path):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    (tmp_path / "log_history.json").write_text(json.dumps([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]))
    result = CliRunner().invoke(app, ["report", "curves", str(tmp_path)])
    assert result.exit_code == 0 and (tmp_path / "curves.png").is_file() and "loss" in result.output
    assert CliRunner().invoke(app, ["report", "curves", str(tmp_path / "none")]).exit_code == 2
