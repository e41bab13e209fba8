"""The CLI as a TRL user meets it: --version, env, --config, `--key value` trainer flags, chat templates, push.

Offline and fast: trainer flags are checked on the config the train command hands on (the train
function is replaced), the chat template runs one SFT step of the tiny model, and push never
reaches the network (HF_HUB_OFFLINE, a closed local port, or a recording stand-in for `HfApi`).
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from selfimprove.cli import app

REPO = Path(__file__).resolve().parents[1]
GRPO_CONFIG = REPO / "configs" / "grpo" / "countdown-cpu.yaml"
RRR_CONFIG = REPO / "configs" / "rrr" / "countdown-cpu.yaml"
PROMPT = [{"role": "user", "content": "Question: Which city?"}]


def invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def one_error_line(result) -> str:
    """The single `error:` line of a refused command (exit 2, no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (result.exit_code, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_version_prints_the_package_version():
    result = invoke(["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"selfimprove {version('selfimprove')}"


def test_env_prints_library_versions_device_caches_and_the_embedded_model_state(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "cache"))
    result = invoke(["env", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for name in ("torch", "transformers", "trl", "peft"):
        assert report[name] == version(name)
    assert report["vllm"]  # a version, or "not installed"
    assert report["python"].split()[0].count(".") == 2 and report["device"]
    assert report["selfimprove cache"] == str(tmp_path / "cache")
    assert report["embedded checkpoint"].startswith("not prepared") and report["embedded model"] == "smollm2-135m"
    assert "trl" in invoke(["env"]).stdout


@pytest.fixture()
def captured_grpo(monkeypatch) -> dict:
    """Replace the GRPO trainer: the train command's config lands here instead of training."""
    from selfimprove.train import grpo

    seen: dict = {}
    monkeypatch.setattr(grpo, "train_grpo", lambda config, **kw: seen.setdefault("config", config) and {})
    return seen


@pytest.mark.parametrize("args", [[str(GRPO_CONFIG), "--max_steps", "1", "--learning_rate", "1e-5"],
                                  ["--config", str(GRPO_CONFIG), "--max-steps=1", "--learning_rate", "1e-5"],
                                  ["--max_steps", "1", str(GRPO_CONFIG), "--set", "trainer.learning_rate=1e-5"]])
def test_trainer_flags_reach_the_trl_config(args, captured_grpo, tmp_path):
    from selfimprove.train.grpo import grpo_arguments

    result = invoke(["train", "grpo", *args])
    assert result.exit_code == 0, result.output
    config = captured_grpo["config"].model_copy(update={"output_dir": str(tmp_path)})
    arguments = grpo_arguments(config)
    assert arguments.max_steps == 1 and arguments.learning_rate == 1e-5


def test_grpo_accepts_chat_template_path_and_keeps_it_out_of_grpo_config(captured_grpo, tmp_path):
    from selfimprove.train.grpo import grpo_arguments

    result = invoke(["train", "grpo", str(GRPO_CONFIG), "--chat_template_path", "t.jinja"])
    assert result.exit_code == 0, result.output
    config = captured_grpo["config"]
    assert config.trainer["chat_template_path"] == "t.jinja"  # read when the model loads (TRL: SFTConfig only)
    shipped_steps = yaml.safe_load(GRPO_CONFIG.read_text())["trainer"]["max_steps"]
    assert grpo_arguments(config.model_copy(update={"output_dir": str(tmp_path)})).max_steps == shipped_steps


def test_a_bool_trainer_flag_without_a_value_is_true(captured_grpo):
    result = invoke(["train", "grpo", str(GRPO_CONFIG), "--use_vllm", "--max_steps", "2"])
    assert result.exit_code == 0, result.output
    assert captured_grpo["config"].trainer["use_vllm"] is True and captured_grpo["config"].trainer["max_steps"] == 2


def test_a_mistyped_trainer_flag_gets_a_did_you_mean(captured_grpo):
    line = one_error_line(invoke(["train", "grpo", str(GRPO_CONFIG), "--learnin_rate", "1e-5"]))
    assert "--learnin_rate" in line and "GRPOConfig" in line and "did you mean --learning_rate?" in line
    line = one_error_line(invoke(["train", "grpo", str(GRPO_CONFIG), "--resum"]))
    assert "did you mean --resume?" in line
    assert "config" not in captured_grpo


def test_config_option_and_positional_work_on_every_config_command(monkeypatch, tmp_path):
    from selfimprove.train import sft
    from selfimprove.workflows.rrr import experiment

    seen = []
    monkeypatch.setattr(experiment, "run_experiment", lambda config: seen.append(config) or
                        {"vanilla": 0, "rrr_trained": 0, "stage_seconds": {}})
    monkeypatch.setattr(sft, "train_sft", lambda config, **kw: seen.append(config) or {})
    sft_yaml = tmp_path / "sft.yaml"
    sft_yaml.write_text("data: rows.jsonl\noutput_dir: out\n")
    for args in (["rrr", "experiment", "--config", str(RRR_CONFIG), "--max_steps", "3"],
                 ["rrr", "experiment", str(RRR_CONFIG)], ["train", "sft", str(sft_yaml), "--max_steps", "3"],
                 ["train", "sft", "--config", str(sft_yaml)]):
        result = invoke(args)
        assert result.exit_code == 0, (args, result.output)
    assert [config.trainer.get("max_steps") for config in seen] == [3, 2, 3, None]  # 2: the file's own
    assert "once" in one_error_line(invoke(["train", "sft", str(sft_yaml), "--config", str(sft_yaml)]))


@pytest.fixture(scope="module")
def no_template_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with its chat template removed; returns the model dir (its template is beside it)."""
    root = tmp_path_factory.mktemp("no-template")
    model = Path(shutil.copytree(tiny_model_dir, root / "model"))
    (model / "chat_template.jinja").rename(root / "chatml.jinja")
    assert "chat_template" not in (model / "tokenizer_config.json").read_text()
    return model


def sft_yaml(tmp_path: Path, model: Path) -> Path:
    rows = tmp_path / "rows.jsonl"
    row = {"prompt": PROMPT, "completion": [{"role": "assistant", "content": "Paris"}]}
    rows.write_text("".join(json.dumps(row) + "\n" for _ in range(2)))
    path = tmp_path / "sft.yaml"
    path.write_text(f"model: {{spec: {model}}}\ndata: {rows}\noutput_dir: {tmp_path / 'out'}\n"
                    "trainer: {per_device_train_batch_size: 2, gradient_checkpointing: false, save_strategy: 'no', "
                    "report_to: none}\n")
    return path


def test_train_without_a_chat_template_says_what_is_missing(no_template_model, tmp_path):
    line = one_error_line(invoke(["train", "sft", str(sft_yaml(tmp_path, no_template_model)), "--max_steps", "1"]))
    assert str(no_template_model) in line and "no chat template" in line and "chat_template_path" in line
    assert not (tmp_path / "out" / "adapter").exists()


def test_chat_template_path_loads_a_jinja_file_or_a_tokenizer_dir(no_template_model, tiny_model_dir):
    from selfimprove.train.config import ModelSettings
    from selfimprove.train.model_loading import load_base_for_training

    settings = ModelSettings(spec=str(no_template_model))
    jinja = no_template_model.parent / "chatml.jinja"
    for source in (str(jinja), str(tiny_model_dir)):
        _, tokenizer = load_base_for_training(settings, chat_template_path=source)
        assert tokenizer.chat_template == jinja.read_text()
        assert "<|im_start|>assistant" in tokenizer.apply_chat_template(PROMPT, tokenize=False,
                                                                        add_generation_prompt=True)


def test_train_with_chat_template_path_runs_one_step(no_template_model, tmp_path):
    template = no_template_model.parent / "chatml.jinja"
    result = invoke(["train", "sft", str(sft_yaml(tmp_path, no_template_model)), "--max_steps", "1",
                     "--chat_template_path", str(template)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "train_summary.json").read_text())["global_step"] == 1
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()


def test_generate_without_a_chat_template_is_one_line(no_template_model):
    line = one_error_line(invoke(["generate", "-m", str(no_template_model), "-p", "hi"]))
    assert str(no_template_model) in line and "chat_template.jinja" in line


def fake_run(root: Path) -> Path:
    """A training output dir with an adapter and a merged model (file names as training writes them)."""
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/tokenizer.json",
                 "merged/config.json", "merged/model.safetensors", "merged/tokenizer.json", "train_summary.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")
    return root


def test_push_offline_fails_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = one_error_line(invoke(["push", str(fake_run(tmp_path)), "--repo", "me/tiny"]))
    assert "HF_HUB_OFFLINE" in line


def test_push_to_an_unreachable_hub_fails_with_one_line(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    line = one_error_line(invoke(["push", str(fake_run(tmp_path)), "--repo", "me/tiny"]))
    assert "cannot push to me/tiny on http://127.0.0.1:9" in line


@pytest.mark.parametrize("env, says", [
    ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
    ({"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_fake"}, "http://127.0.0.1:9")])
def test_push_from_the_shell_fails_with_one_line_when_the_hub_is_out_of_reach(env, says, tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "selfimprove", "push", str(fake_run(tmp_path)), "--repo", "me/tiny"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert says in lines[0]


class RecordingApi:
    """Stands in for `huggingface_hub.HfApi`: records what would be created and uploaded."""

    calls: list = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://hub.invalid/{repo_id}"

    def upload_folder(self, **kwargs):
        files = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        self.calls.append(("upload_folder", kwargs["repo_id"], files))
        return "https://hub.invalid/commit/1"


@pytest.mark.parametrize("extra, uploaded, private", [
    ([], ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json"], None),
    (["--merged", "--private"], ["config.json", "model.safetensors", "tokenizer.json"], True)])
def test_push_uploads_the_adapter_or_the_merged_model(extra, uploaded, private, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setattr(RecordingApi, "calls", [])
    result = invoke(["push", str(fake_run(tmp_path)), "--repo", "me/tiny", *extra])
    assert result.exit_code == 0, result.output
    (_, repo, options), upload = RecordingApi.calls
    assert repo == "me/tiny" and options["private"] is private and options["exist_ok"] is True
    assert upload == ("upload_folder", "me/tiny", uploaded)


def test_push_without_a_merged_model_says_how_to_get_one(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert "--merge" in one_error_line(invoke(["push", str(tmp_path), "--repo", "me/tiny", "--merged"]))


def test_run_takes_the_recipe_as_config_too():
    result = invoke(["run", "--config", "araft", "--variant", "cpu", "--check"])
    assert result.exit_code == 0 and "no train/eval overlap" in result.output
    assert invoke(["run", "araft", "--config", "araft", "--check"]).exit_code == 2
    assert invoke(["run"]).exit_code == 2


def test_the_same_sampling_defaults_across_commands():
    """Greedy for one sample per example, 0.7 for several, seed 0: eval, distill, agent run and generate agree."""
    import inspect

    from selfimprove.commands.agent import run as agent_run
    from selfimprove.commands.models import generate
    from selfimprove.eval.harness import EvalSettings
    from selfimprove.models.generator import default_temperature

    assert EvalSettings(output_dir="x").temperature == 0.0 == default_temperature(1)
    assert EvalSettings(output_dir="x", repeats=3).temperature == 0.7 == default_temperature(3)
    assert EvalSettings(output_dir="x", repeats=3, temperature=0.2).temperature == 0.2
    for command in (agent_run, generate):
        params = inspect.signature(command).parameters
        assert params["temperature"].default.default == 0.0 and params["seed"].default.default == 0
