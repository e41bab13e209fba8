"""Benchmark: a GRPO run through `selfimprove train grpo` vs the same config in plain TRL GRPOTrainer.

Both sides train the same model with the same LoRA (r 16, alpha 32, all linear layers), the same
dataset rows (Countdown, `task.to_row`), the same reward function and the same resolved
`GRPOConfig` values (selfimprove's defaults + the trainer block below), for the same number of
steps. selfimprove's side is `selfimprove.train.grpo.train_grpo` (config model, task loading,
reward registry, health callback, adapter save, run record); the baseline is the ~15 lines of
TRL a user would write by hand (`run_plain_trl`). Runs alternate (baseline, selfimprove, baseline,
...) and each side reports its fastest round, to damp the noise of a shared CPU. Overhead =
selfimprove time / baseline time - 1, on `GRPOTrainer.train()` and end to end, each in wall-clock
seconds and in process CPU seconds (all threads; much less sensitive to other load on the machine).
A one-step warm-up of each side runs first and is not counted (imports, first-call allocations).

    python benchmarks/bench_grpo_overhead.py [--model smollm2-135m --steps 3 --rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

TASK_DATA = "generate:n=32,seed=0,min_nums=3,max_nums=3,max_number=10,max_target=30"
REWARDS = [{"name": "task_reward", "params": {"task_name": "countdown", "field": "value"}}]


def trainer_block(steps: int, completion_tokens: int) -> dict:
    return {"max_steps": steps, "num_generations": 4, "per_device_train_batch_size": 4,
            "max_completion_length": completion_tokens, "gradient_checkpointing": False, "save_strategy": "no",
            "logging_steps": 1}


def run_config(model_path: str, output_dir: Path, steps: int, completion_tokens: int):
    from selfimprove.train.grpo import GRPORunConfig

    return GRPORunConfig(task="countdown", data=TASK_DATA, model={"spec": model_path, "lora": {"dropout": 0.0}},
                         rewards=REWARDS, output_dir=str(output_dir), trainer=trainer_block(steps, completion_tokens))


@contextlib.contextmanager
def clocks(record: dict, prefix: str):
    """Record wall and process-CPU seconds of the block as `<prefix>_wall_s` / `<prefix>_cpu_s`."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    record[f"{prefix}_wall_s"] = time.perf_counter() - wall
    record[f"{prefix}_cpu_s"] = time.process_time() - cpu


@contextlib.contextmanager
def timed_train(record: dict):
    """Time every `GRPOTrainer.train()` call made inside the block (the same patch for both sides)."""
    from trl import GRPOTrainer

    original = GRPOTrainer.train

    def train(self, *args, **kwargs):
        with clocks(record, "train"):
            return original(self, *args, **kwargs)

    GRPOTrainer.train = train
    try:
        with clocks(record, "total"):
            yield
    finally:
        GRPOTrainer.train = original


def run_selfimprove(config) -> dict:
    from selfimprove.train.grpo import train_grpo

    record: dict = {}
    with timed_train(record):
        record["steps"] = train_grpo(config)["global_step"]
    return record


def plain_trl_arguments(config, reward_weights: list[float]) -> dict:
    """The GRPOConfig values selfimprove resolves for `config`, written out for plain TRL."""
    from selfimprove.train.config import COMMON_TRAINER
    from selfimprove.train.grpo import GRPO_DEFAULTS

    return {**COMMON_TRAINER, **GRPO_DEFAULTS, "bf16": False, "reward_weights": reward_weights, **config.trainer}


def run_plain_trl(config) -> dict:
    record: dict = {}
    with timed_train(record):
        record["steps"] = plain_trl_train(config)
    return record


def plain_trl_train(config) -> int:
    """The baseline: what a user writes with TRL + PEFT + transformers directly; returns the steps run."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove.rewards import build_reward_funcs
    from selfimprove.tasks import get_task

    task = get_task("countdown")
    rows = [task.to_row(example) for example in task.load(config.data)]
    funcs, weights = build_reward_funcs(config.rewards)
    model = AutoModelForCausalLM.from_pretrained(config.model.spec, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(config.model.spec)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    args = GRPOConfig(output_dir=config.output_dir, seed=config.seed, **plain_trl_arguments(config, weights))
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, peft_config=lora)
    trainer.train()
    trainer.save_model(str(Path(config.output_dir) / "adapter"))
    return trainer.state.global_step


def resolve_model(model: str) -> str:
    from selfimprove.models.spec import resolve_local_path

    if model == "tiny":
        from selfimprove.models.tiny import build_tiny_model

        return str(build_tiny_model(Path(tempfile.mkdtemp(prefix="bench-tiny-"))))
    return resolve_local_path(model)


def run(model: str = "smollm2-135m", steps: int = 3, rounds: int = 2, completion_tokens: int = 32,
        threads: int = 1) -> dict:
    import os

    import torch

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.set_num_threads(threads)
    path = resolve_model(model)
    rounds_out: dict[str, list[dict]] = {"baseline": [], "selfimprove": []}
    with tempfile.TemporaryDirectory(prefix="bench-grpo-") as tmp:
        run_plain_trl(run_config(path, Path(tmp) / "warm-trl", 1, completion_tokens))
        run_selfimprove(run_config(path, Path(tmp) / "warm-si", 1, completion_tokens))
        for i in range(rounds):
            rounds_out["baseline"].append(run_plain_trl(run_config(path, Path(tmp) / f"trl{i}", steps, completion_tokens)))
            rounds_out["selfimprove"].append(run_selfimprove(run_config(path, Path(tmp) / f"si{i}", steps,
                                                                        completion_tokens)))
    keys = ("train_wall_s", "train_cpu_s", "total_wall_s", "total_cpu_s")
    best = {side: {key: min(r[key] for r in runs) for key in keys} for side, runs in rounds_out.items()}
    overhead = {key: best["selfimprove"][key] / best["baseline"][key] - 1 for key in keys}
    return {"model": model, "torch_threads": threads, "steps": steps, "rounds": rounds, "completion_tokens": completion_tokens,
            "generations_per_step": 4, "all_rounds": rounds_out, "best": best,
            "overhead": overhead}


def markdown(r: dict) -> list[str]:
    b, s, o = r["best"]["baseline"], r["best"]["selfimprove"], r["overhead"]
    return [
        f"Model {r['model']} + LoRA r16, Countdown, {r['steps']} steps x {r['generations_per_step']} completions x "
        f"{r['completion_tokens']} tokens, {r['torch_threads']} torch thread(s), best of {r['rounds']} alternating rounds.",
        "",
        "| path | train() wall s | train() CPU s | end-to-end wall s | end-to-end CPU s |", "|---|---|---|---|---|",
        _row("selfimprove `train grpo` code path", s),
        _row("baseline: plain TRL GRPOTrainer, same config", b), "",
        f"- overhead on train(): **{100 * o['train_cpu_s']:+.1f}% CPU time**, {100 * o['train_wall_s']:+.1f}% wall "
        "(target <= 5%)",
        f"- overhead end to end (config, task, rewards, health log, run record): {100 * o['total_cpu_s']:+.1f}% CPU, "
        f"{100 * o['total_wall_s']:+.1f}% wall",
    ]


def _row(name: str, x: dict) -> str:
    return f"| {name} | {x['train_wall_s']:.2f} | {x['train_cpu_s']:.2f} | {x['total_wall_s']:.2f} | {x['total_cpu_s']:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="a model spec, or 'tiny' for the random test model")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--completion-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("\n".join(markdown(run(args.model, args.steps, args.rounds, args.completion_tokens, args.threads))))


if __name__ == "__main__":
    main()
