"""Scale-out: 2-process DDP (CPU, gloo) SFT and GRPO through the CLI, launcher helpers, shipped
accelerate configs, and vLLM rollout settings (validated without a GPU)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfimprove.errors import BackendUnavailable, ConfigError
from selfimprove.launch import launch_command, launch_environment, maybe_relaunch, relaunch, strip_option
from selfimprove.train.vllm_settings import check_vllm_settings

REPO = Path(__file__).resolve().parents[1]
PROMPT = [{"role": "system", "content": "You answer."}, {"role": "user", "content": "Question: Which city?\n"}]
COMPLETION = [{"role": "assistant", "content": "Thought: search.\nAction: [action: Search, action_input: Paris]"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run_two_ranks(cli_args: list[str], log_dir: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "selfimprove.launch", "--num-processes", "2", "--cpu",
               "--main-process-port", str(free_port()), "--log-dir", str(log_dir), "--", *cli_args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=REPO)


def rank_summaries(log_dir: Path) -> dict[int, dict]:
    """{rank: the JSON summary that rank printed} from accelerate's per-rank stdout logs."""
    summaries = {}
    for stdout in log_dir.glob("*/attempt_0/*/stdout.log"):
        text = stdout.read_text(encoding="utf-8")
        start = text.find('{\n  "global_step"')
        if start >= 0:
            summaries[int(stdout.parent.name)] = json.JSONDecoder().raw_decode(text[start:])[0]
    return summaries


def assert_ran_on_two_ranks(result: subprocess.CompletedProcess, log_dir: Path, out: Path) -> list[dict]:
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = rank_summaries(log_dir)
    assert sorted(summaries) == [0, 1]
    assert all(s["global_step"] == 2 and s["logged_steps"] == 2 for s in summaries.values())
    history = json.loads((out / "log_history.json").read_text())
    losses = [row for row in history if "loss" in row]
    assert len(losses) == 2
    return losses


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp-data") / "sft.jsonl"
    path.write_text("".join(json.dumps({"prompt": PROMPT, "completion": COMPLETION}) + "\n" for _ in range(8)))
    return path


def test_two_process_ddp_sft_through_the_cli(tiny_model_dir, sft_data, tmp_path):
    out = tmp_path / "sft"
    config = write_yaml(tmp_path / "sft.yaml", {
        "model": {"spec": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8}}, "data": str(sft_data),
        "output_dir": str(out), "trainer": {"max_steps": 2, "per_device_train_batch_size": 1,
                                           "gradient_accumulation_steps": 1, "gradient_checkpointing": False,
                                           "save_strategy": "no", "learning_rate": 1e-2}})
    result = run_two_ranks(["train", "sft", "--config", str(config)], tmp_path / "logs")
    losses = assert_ran_on_two_ranks(result, tmp_path / "logs", out)
    # 2 steps x 1 row x 2 ranks out of 8 rows: half an epoch only when the ranks split the data (DDP)
    assert losses[-1]["epoch"] == pytest.approx(0.5)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_two_process_ddp_grpo_through_the_cli(tiny_model_dir, tmp_path):
    out = tmp_path / "grpo"
    # per-device batch 2 with 4 generations per prompt is only valid when 2 ranks make a group of 4
    config = write_yaml(tmp_path / "grpo.yaml", {
        "task": "countdown", "data": "generate:n=8,seed=0,min_nums=3,max_nums=3",
        "model": {"spec": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8}},
        "rewards": [{"name": "task_reward", "params": {"task_name": "countdown", "field": "value"}}],
        "output_dir": str(out), "trainer": {"max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 2,
                                            "max_completion_length": 8, "gradient_checkpointing": False,
                                            "save_strategy": "no"}})
    result = run_two_ranks(["train", "grpo", str(config)], tmp_path / "logs")
    losses = assert_ran_on_two_ranks(result, tmp_path / "logs", out)
    assert all("reward" in row and "completions/mean_length" in row for row in losses)
    health = [json.loads(line) for line in (out / "health.jsonl").read_text().splitlines()]
    assert [row["step"] for row in health] == [1, 2]  # rank 0 only: one line per step


def test_launch_command_and_environment():
    command = launch_command(["train", "sft", "-c", "x.yaml"], 4, config_file="configs/accelerate/fsdp.yaml",
                             main_process_port=29555)
    assert command[:4] == [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch"]
    assert command[command.index("--config_file") + 1] == "configs/accelerate/fsdp.yaml"
    assert "--multi_gpu" not in command and command[-5:] == ["selfimprove", "train", "sft", "-c", "x.yaml"]
    assert launch_environment(True, {})["ACCELERATE_USE_CPU"] == "true"
    assert "ACCELERATE_USE_CPU" not in launch_environment(False, {})
    with pytest.raises(ConfigError, match="num-processes"):
        launch_command(["train"], 0)
    with pytest.raises(ConfigError, match="no such file"):
        relaunch(["train"], 2, config_file=str(REPO / "configs" / "accelerate" / "missing.yaml"))


def test_maybe_relaunch_is_a_no_op_for_one_process_or_inside_a_launched_rank(monkeypatch):
    calls = []
    monkeypatch.setattr("selfimprove.launch.relaunch", lambda *a, **k: calls.append(a) or 0)
    maybe_relaunch(1, argv=["train", "sft"])
    monkeypatch.setenv("LOCAL_RANK", "0")
    maybe_relaunch(2, argv=["train", "sft"])
    assert calls == []
    monkeypatch.delenv("LOCAL_RANK")
    for name in ("ACCELERATE_LAUNCHED", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        maybe_relaunch(2, argv=["train", "--num-processes", "2", "sft"])
    assert exit_info.value.code == 0 and calls == [(["train", "sft"], 2)]
    assert strip_option(["a", "--n=3", "b"], "--n") == ["a", "b"]


def test_launcher_without_a_command_fails_with_one_line():
    result = subprocess.run([sys.executable, "-m", "selfimprove.launch", "--num-processes", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: give the selfimprove command")


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_accelerate_configs_load_and_name_their_command(path):
    from accelerate.commands.config.config_args import load_config_from_file

    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# ") and "accelerate launch" in first_line and "selfimprove" in first_line
    config = load_config_from_file(str(path))
    assert config.num_processes >= 2
    if "deepspeed" in path.name:
        assert config.deepspeed_config["zero_stage"] == int(path.stem[-1])
    if path.name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_version"] == 2


def test_accelerate_configs_cover_ddp_zero2_zero3_fsdp():
    names = {p.stem for p in (REPO / "configs" / "accelerate").glob("*.yaml")}
    assert {"ddp-cpu", "ddp-gpu", "deepspeed-zero2", "deepspeed-zero3", "fsdp"} <= names


def test_vllm_options_pass_from_the_trainer_block_to_grpo_config():
    from selfimprove.config import load_config
    from selfimprove.train.grpo import GRPORunConfig, grpo_arguments

    overrides = ["trainer.vllm_mode=server", "trainer.vllm_server_base_url=http://10.0.0.2:8000",
                 "trainer.vllm_server_timeout=30"]
    config = load_config(REPO / "configs" / "grpo" / "countdown-gpu.yaml", GRPORunConfig, overrides)
    args = grpo_arguments(config)
    assert args.use_vllm is True and args.vllm_mode == "server"
    assert args.vllm_server_base_url == "http://10.0.0.2:8000" and args.vllm_server_timeout == 30
    colocate = grpo_arguments(load_config(REPO / "configs" / "grpo" / "countdown-gpu.yaml", GRPORunConfig))
    assert colocate.vllm_mode == "colocate" and colocate.vllm_gpu_memory_utilization == 0.4


def test_vllm_without_cuda_or_package_is_one_clear_error():
    with pytest.raises(BackendUnavailable, match=r"needs the vllm package and a CUDA GPU.*use_vllm=false"):
        check_vllm_settings({"use_vllm": True}, vllm_present=False, cuda_present=False)
    with pytest.raises(BackendUnavailable, match=r"vllm_mode=server\) needs a CUDA GPU"):
        check_vllm_settings({"use_vllm": True, "vllm_mode": "server"}, vllm_present=True, cuda_present=False)
    with pytest.raises(ConfigError, match="vllm_server_base_url"):
        check_vllm_settings({"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "localhost:8000"})
    assert check_vllm_settings({"use_vllm": False, "vllm_mode": "nonsense"}) is None


def test_vllm_check_on_this_machine_matches_what_is_installed():
    import importlib.util

    import torch

    ready = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    if ready:
        assert check_vllm_settings({"use_vllm": True}) == "colocate"
    else:
        with pytest.raises(BackendUnavailable):
            check_vllm_settings({"use_vllm": True})
