"""Benchmark: decode throughput of the cached decoder vs transformers' `model.generate`, and the floor (issue 20).

In one process, the bare embedded model (smollm2-135m, fp32), for batches of `--batches` rows of distinct
prompts (~46 tokens), `--tokens` new tokens per row (EOS ignored, so every row decodes the same count),
sampling at temperature 0.9, top-p 1; the sides interleaved for `--rounds`, fastest round reported:
- `cached`: `models.cached_decoding.CachedDecoder.generate_tokens` (no reuse across calls);
- `generate`: `model.generate(do_sample=True, min_new_tokens=max_new_tokens)`, the baseline;
- `floor_step_ms`: one bare forward of one token per row over a KV cache as long as the middle of the
  generation, timed alone: what a decode step costs with this model and torch's kernels before any
  sampling or bookkeeping; `linear_ms`: the part of it spent in the model's linear layers (each
  layer's weight times `rows` inputs, timed alone), which on a CPU bounds a decode step from below;
- the roof (`bench_rl_step.roof`): prefill tokens/s; generation is reported as a fraction of it.

    python benchmarks/bench_decode.py                       # batches 8 and 32, 64 tokens, 3 rounds
    python benchmarks/bench_decode.py --batches 8 --rounds 1 --tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
TEMPERATURE = 0.9


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="an embedded alias or a local checkpoint directory")
    parser.add_argument("--batches", default="8,32", help="comma-separated batch sizes")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per row")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--no-roof", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "decode.json"))
    return parser.parse_args()


def load(spec: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.models.embedded import prepare_embedded_model

    path = spec if Path(spec).is_dir() else str(prepare_embedded_model(spec))
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


def prompts(tokenizer, rows: int) -> list[list[int]]:
    """`rows` distinct prompts of about the same length (a Countdown-like request with different numbers)."""
    texts = [f"Using the numbers {3 + i % 7}, {11 + i}, {25 + 2 * i} and {50 + i % 5}, make {100 + i}. "
             "Use each number once and the operations + - * /. Think step by step, then give the expression."
             for i in range(rows)]
    return [tokenizer(text)["input_ids"] for text in texts]


def timed_cached(model, tokenizer, batch: list[list[int]], tokens: int) -> float:
    import torch

    from selfimprove.models.cached_decoding import CachedDecoder
    from selfimprove.models.generator import SamplingParams

    decoder = CachedDecoder(model, tokenizer, reuse=False)
    decoder.eos_ids = set()  # every row decodes `tokens`
    start = time.perf_counter()
    out = decoder.generate_tokens(batch, SamplingParams(max_tokens=tokens, temperature=TEMPERATURE),
                                  torch.Generator().manual_seed(0))
    elapsed = time.perf_counter() - start
    assert all(len(ids) == tokens for ids in out)
    return elapsed


def timed_generate(model, tokenizer, batch: list[list[int]], tokens: int) -> float:
    import torch

    width = max(len(p) for p in batch)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=TEMPERATURE, top_p=1.0,
                             top_k=None, max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=pad)
    elapsed = time.perf_counter() - start
    assert out.shape[1] == width + tokens
    return elapsed


def floor_step_ms(model, rows: int, context: int, reps: int = 20) -> float:
    """One bare forward of one token per row over a `context`-long KV cache (the cache cropped back after each)."""
    import torch
    from transformers import DynamicCache

    from selfimprove.models.cached_decoding import cache_argument

    cache = {cache_argument(model): DynamicCache(config=model.config)}
    with torch.inference_mode():
        model(input_ids=torch.randint(0, model.config.vocab_size, (rows, context)), use_cache=True, logits_to_keep=1, **cache)
        token = torch.randint(0, model.config.vocab_size, (rows, 1))
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            model(input_ids=token, use_cache=True, logits_to_keep=1, **cache)
            best = min(best, time.perf_counter() - start)
            next(iter(cache.values())).crop(-1)  # drop the token just added
    return 1000 * best


def linear_ms(model, rows: int, reps: int = 10) -> float:
    """The model's linear layers (the tied LM head included) at `rows` inputs each, timed alone, summed."""
    import torch

    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1]) for w in weights}
    best = float("inf")
    with torch.inference_mode():
        for _ in range(reps):
            start = time.perf_counter()
            for weight in weights:
                torch.nn.functional.linear(inputs[weight.shape[1]], weight)
            best = min(best, time.perf_counter() - start)
    return 1000 * best


def run_batch(model, tokenizer, rows: int, args) -> dict:
    batch = prompts(tokenizer, rows)
    timed_cached(model, tokenizer, batch[:2], 4)  # warm-up
    seconds: dict[str, list[float]] = {"cached": [], "generate": []}
    for _ in range(args.rounds):
        seconds["cached"].append(timed_cached(model, tokenizer, batch, args.tokens))
        seconds["generate"].append(timed_generate(model, tokenizer, batch, args.tokens))
    context = max(len(p) for p in batch) + args.tokens // 2
    result = {"rows": rows, "new_tokens_per_row": args.tokens, "prompt_tokens": max(len(p) for p in batch),
              "floor_step_ms": round(floor_step_ms(model, rows, context), 1), "linear_ms": round(linear_ms(model, rows), 1)}
    for side, values in seconds.items():
        best = min(values)
        result[side] = {"seconds": [round(v, 2) for v in values], "tokens_per_s": round(rows * args.tokens / best, 1),
                        "step_ms": round(1000 * best / args.tokens, 1)}
    result["cached_vs_generate"] = round(min(seconds["generate"]) / min(seconds["cached"]), 2)
    result["cached_step_over_floor"] = round(result["cached"]["step_ms"] / result["floor_step_ms"], 2)
    return result


def main() -> None:
    args = parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = {"machine": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
                          "python": platform.python_version(), "torch": torch.__version__},
              "settings": vars(args)}
    if not args.no_roof:
        import bench_rl_step

        result["roof"] = bench_rl_step.roof()
    model, tokenizer = load(args.model)
    for rows in (int(b) for b in args.batches.split(",")):
        result[f"batch_{rows}"] = entry = run_batch(model, tokenizer, rows, args)
        if result.get("roof"):
            for side in ("cached", "generate"):
                entry[side]["fraction_of_prefill_roof"] = round(
                    entry[side]["tokens_per_s"] / result["roof"]["prefill_tokens_per_s"], 3)
        print(json.dumps(entry), flush=True)
    result["machine"]["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
