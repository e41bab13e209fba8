"""Benchmark: peak memory of SFT and GRPO steps with LoRA through selfimprove, on CPU.

Each measurement runs in a FRESH child process (the RSS high-water mark only ever grows), which
reads its RSS high-water mark (`VmHWM` in /proc/self/status; `ru_maxrss` where there is no /proc)
after importing torch / transformers / TRL / peft, then runs a short training through `selfimprove.train` and reads it
again. Reported: the peak RSS of the process and the peak minus the post-import baseline (what
the model, optimizer states, activations and the trainer added). On a GPU the number to watch is
`torch.cuda.max_memory_allocated()`, which the child also records when CUDA is present. Not
measured: memory of other processes (e.g. a vLLM server). SFT rows are HotpotQA questions with
their context paragraphs (about 500 tokens each); GRPO is Countdown.

    python benchmarks/bench_memory.py [--model smollm2-135m --steps 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotpotqa_train_100.json"
MARKER = "BENCH_MEMORY_RESULT "


def peak_rss_mib() -> float:
    """This process's RSS high-water mark: VmHWM from /proc (Linux), else ru_maxrss.

    ru_maxrss is only a fallback: after fork + exec it keeps the PARENT's high-water mark when that
    was larger, so a child started by a big process would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_sft_rows(data: Path, out: Path, context_chars: int, rows: int = 16) -> Path:
    """SFT rows: a question + its context paragraphs as the prompt, the gold answer as the completion."""
    examples = json.loads(Path(data).read_text(encoding="utf-8"))[:rows]
    with out.open("w", encoding="utf-8") as handle:
        for ex in examples:
            context = "\n".join(f"{title}: {' '.join(sentences)}" for title, sentences in ex["context"][:4])
            prompt = [{"role": "system", "content": "Answer the question from the context."},
                      {"role": "user", "content": f"{context[:context_chars]}\n\nQuestion: {ex['question']}"}]
            handle.write(json.dumps({"prompt": prompt, "completion": [{"role": "assistant",
                                                                       "content": f"Answer: {ex['answer']}"}]}) + "\n")
    return out


def sft_config(model: str, tmp: Path, steps: int, data: Path, context_chars: int):
    from selfimprove.train.config import TrainConfig

    return TrainConfig(model={"spec": model}, data=str(write_sft_rows(data, tmp / "sft.jsonl", context_chars)),
                       output_dir=str(tmp / "sft"),
                       trainer={"max_steps": steps, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                                "max_length": 768, "gradient_checkpointing": False, "save_strategy": "no"})


def grpo_config(model: str, tmp: Path, steps: int):
    from selfimprove.train.grpo import GRPORunConfig

    return GRPORunConfig(task="countdown", data="generate:n=16,seed=0,min_nums=3,max_nums=3", model={"spec": model},
                         rewards=[{"name": "task_reward", "params": {"task_name": "countdown", "field": "value"}}],
                         output_dir=str(tmp / "grpo"),
                         trainer={"max_steps": steps, "num_generations": 4, "per_device_train_batch_size": 4,
                                  "max_completion_length": 32, "gradient_checkpointing": False,
                                  "save_strategy": "no"})


def child(kind: str, model: str, steps: int, data: Path, threads: int, context_chars: int) -> dict:
    """Runs inside the fresh process: imports, baseline, train, peak."""
    import torch
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from selfimprove.train.grpo import train_grpo
    from selfimprove.train.sft import train_sft

    torch.set_num_threads(threads)
    baseline = peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix=f"bench-mem-{kind}-") as tmp:
        if kind == "sft":
            summary = train_sft(sft_config(model, Path(tmp), steps, data, context_chars))
        else:
            summary = train_grpo(grpo_config(model, Path(tmp), steps))
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"kind": kind, "steps": summary["global_step"], "rss_after_imports_mib": baseline,
            "peak_rss_mib": peak_rss_mib(), "added_by_training_mib": peak_rss_mib() - baseline,
            "cuda_max_allocated_mib": cuda_peak}


def measure(kind: str, model: str, steps: int, data: Path, threads: int, context_chars: int) -> dict:
    """Run `child` in a fresh interpreter and return its result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--model", model, "--steps", str(steps),
               "--data", str(data), "--threads", str(threads), "--context-chars", str(context_chars)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory child '{kind}' failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1][len(MARKER):])


def run(model: str = "smollm2-135m", steps: int = 2, data: Path = DEFAULT_DATA, threads: int = 1,
        context_chars: int = 2000) -> dict:
    spec = model
    if model == "tiny":
        from selfimprove.models.tiny import build_tiny_model

        spec = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="bench-tiny-"))))
    return {"model": model, "lora": "r16 alpha32 all-linear", "torch_threads": threads,
            "sft": measure("sft", spec, steps, data, threads, context_chars),
            "grpo": measure("grpo", spec, steps, data, threads, context_chars)}


def markdown(r: dict) -> list[str]:
    rows = [(f"SFT, batch 2 x up to 768 tokens, {r['sft']['steps']} steps", r["sft"]),
            (f"GRPO, 4 completions x 32 tokens, {r['grpo']['steps']} steps", r["grpo"])]
    return [
        f"Model {r['model']} + LoRA ({r['lora']}), float32 on CPU; RSS high-water of a fresh process.", "",
        "| run | RSS after imports MiB | peak RSS MiB | added by model + training MiB |", "|---|---|---|---|",
        *(f"| {name} | {x['rss_after_imports_mib']:.0f} | {x['peak_rss_mib']:.0f} | {x['added_by_training_mib']:.0f} |"
          for name, x in rows),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--context-chars", type=int, default=2000, help="context characters per SFT prompt")
    parser.add_argument("--child", choices=("sft", "grpo"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(MARKER + json.dumps(child(args.child, args.model, args.steps, args.data, args.threads, args.context_chars)))
        return
    print("\n".join(markdown(run(args.model, args.steps, args.data, args.threads, args.context_chars))))


if __name__ == "__main__":
    main()
