"""Benchmark: the batched episode runner vs the same episodes one at a time (as Araft ran them).

In ONE run, with the embedded model (smollm2-135m), greedy decoding, a BM25 index over the
questions' own HotpotQA contexts and the ReAct format:
1. batched: `run_agent` over all N episodes (one generate call per turn for every live episode),
   with the transformers backend's KV reuse across turns (its default);
2. sequential, the baseline: `run_agent` over each example alone (batch of one), in order, on
   the same model with KV reuse off (`prefix_cache=False`): every step is one generate call
   that encodes the whole prompt, as Araft's loop did;
3. raw: the exact prompts of the batched run's turns (rebuilt from its trajectories) replayed
   through `generator.generate`, turn by turn, with no agent loop around them, starting from an
   empty KV store (so it reuses exactly what the loop could reuse).
It reports how many trajectories are identical between 1 and 2 (and where any differ), the
speed-up of 1 over 2, and the loop's tokens/s against raw batched generate (loop overhead).
Writes benchmarks/results/agent_runner.{json,md}.

    python benchmarks/bench_agent_runner.py [--episodes 32 --max-turns 5 --max-tokens 64 --threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--max-turns", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "hotpotqa_train_100.json"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out", default=str(RESULTS / "agent_runner"))
    return parser.parse_args()


def setup(args: argparse.Namespace):
    import torch

    from selfimprove.agent.searchers import searcher_for_run
    from selfimprove.models import load_generator
    from selfimprove.tasks import get_task

    torch.set_num_threads(args.threads)
    task = get_task("hotpotqa")
    examples = task.load(args.data if Path(args.data).is_file() else None)[: args.episodes]
    searcher = searcher_for_run("bm25", examples)
    generator = load_generator(args.model, batch_size=max(32, args.episodes))
    return task, examples, searcher, generator


def without_kv_reuse(generator):
    """The same model and tokenizer behind a generator that encodes every prompt whole."""
    from selfimprove.models.transformers_backend import TransformersGenerator

    return TransformersGenerator(generator.name, model=generator.model, tokenizer=generator.tokenizer,
                                 batch_size=generator.batch_size, name=generator.name, prefix_cache=False)


def timed_run(generator, task, examples, searcher, config, one_at_a_time: bool):
    from selfimprove.agent import run_agent

    stats_before, start = dict(generator.stats), time.perf_counter()
    if one_at_a_time:
        trajectories = [t for ex in examples for t in run_agent(generator, task, [ex], searcher, "react", config)]
    else:
        trajectories = run_agent(generator, task, examples, searcher, "react", config)
    seconds = time.perf_counter() - start
    return trajectories, seconds, counts_since(generator, stats_before)


def counts_since(generator, before: dict) -> dict:
    """Generated tokens, prompt tokens and prompt tokens actually encoded (not reused) since `before`."""
    delta = {k: generator.stats[k] - before[k] for k in ("generated_tokens", "prompt_tokens", "reused_prefix_tokens")}
    return {"generated_tokens": delta["generated_tokens"], "prompt_tokens": delta["prompt_tokens"],
            "encoded_prompt_tokens": delta["prompt_tokens"] - delta["reused_prefix_tokens"]}


def replay_raw(generator, trajectories, config) -> tuple[float, dict]:
    """Replay the batched run's per-turn prompts through generate alone; returns (seconds, token counts)."""
    from selfimprove.agent.formats import get_format

    fmt = get_format("react")
    generator.clear_kv_cache()
    seconds, before = 0.0, dict(generator.stats)
    for turn in range(config.max_turns):
        conversations = [fmt.conversation(t.question, t.steps[:turn]) for t in trajectories if len(t.steps) > turn]
        if not conversations:
            break
        start = time.perf_counter()
        generator.generate(conversations, config.sampling(fmt.stop, turn))
        seconds += time.perf_counter() - start
    return seconds, counts_since(generator, before)


def compare(batched, sequential) -> dict:
    """Identical = same raw text at every step (so same actions, observations, answers, scores)."""
    differences = []
    for b, s in zip(batched, sequential, strict=False):
        b_texts, s_texts = [x.text for x in b.steps], [x.text for x in s.steps]
        if b_texts != s_texts:
            step = next((i for i, (x, y) in enumerate(zip(b_texts, s_texts, strict=False)) if x != y),
                        min(len(b_texts), len(s_texts)))
            differences.append({"example_id": b.example_id, "first_differing_step": step,
                                "batched": b_texts[step] if step < len(b_texts) else None,
                                "sequential": s_texts[step] if step < len(s_texts) else None})
    same_scores = sum(b.score == s.score for b, s in zip(batched, sequential, strict=False))
    return {"identical": len(batched) - len(differences), "total": len(batched), "same_scores": same_scores,
            "differences": differences}


def main() -> None:
    from selfimprove.agent import AgentSettings
    from selfimprove.data.trajectory_metrics import trajectory_metrics

    args = parse_args()
    task, examples, searcher, generator = setup(args)
    config = AgentSettings(max_turns=args.max_turns, max_tokens=args.max_tokens, temperature=0.0, progress=False)
    generator.generate([[{"role": "user", "content": "warm up"}]], config.sampling(("]",), 0))
    batched, batched_s, batched_counts = timed_run(generator, task, examples, searcher, config, False)
    sequential, sequential_s, sequential_counts = timed_run(without_kv_reuse(generator), task, examples, searcher,
                                                            config, True)
    raw_s, raw_counts = replay_raw(generator, batched, config)
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": args.threads,
                    "load_average_1m_at_end": os.getloadavg()[0]},
        "settings": {"model": args.model, "episodes": len(examples), "max_turns": args.max_turns,
                     "max_tokens": args.max_tokens, "format": "react", "searcher": "bm25", "temperature": 0.0},
        "batched": run_result(batched_s, batched_counts, trajectory_metrics(batched)),
        "sequential": run_result(sequential_s, sequential_counts, trajectory_metrics(sequential)),
        "raw_generate": run_result(raw_s, raw_counts),
        "speedup_batched_over_sequential": sequential_s / batched_s,
        "loop_overhead_over_raw_generate": batched_s / raw_s - 1.0,
        "agreement": compare(batched, sequential),
    }
    write_results(result, Path(args.out))


def run_result(seconds: float, counts: dict, summary: dict | None = None) -> dict:
    result = {"seconds": seconds, **counts, "tokens_per_s": counts["generated_tokens"] / seconds}
    return result if summary is None else {**result, "summary": summary}


def write_results(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(r: dict) -> str:
    s, a = r["settings"], r["agreement"]
    rows = [("batched runner (KV reuse across turns)", r["batched"]),
            ("baseline: one episode at a time, whole prompt each step (Araft)", r["sequential"]),
            ("raw batched generate (same prompts)", r["raw_generate"])]
    table = "\n".join(f"| {name} | {x['seconds']:.1f} | {x['generated_tokens']} | {x['tokens_per_s']:.1f} | "
                      f"{x.get('encoded_prompt_tokens', '')} |" for name, x in rows)
    lines = [
        "# Agent runner benchmark", "",
        f"{r['date']}, {r['machine']['processor']}, {r['machine']['cpu_count']} CPUs, "
        f"{r['machine']['torch_threads']} torch threads, 1-minute load average at the end "
        f"{r['machine']['load_average_1m_at_end']:.1f} (it counts this run's own threads; above the thread count = other processes shared the CPU). Model {s['model']}, {s['episodes']} episodes, "
        f"format {s['format']}, BM25, greedy, max {s['max_turns']} turns x {s['max_tokens']} tokens.", "",
        "| run | seconds | generated tokens | tokens/s | prompt tokens encoded |", "|---|---|---|---|---|", table, "",
        f"- speed-up, batched over one at a time: **{r['speedup_batched_over_sequential']:.2f}x**",
        f"- loop overhead over raw batched generate: **{100 * r['loop_overhead_over_raw_generate']:.1f}%**",
        f"- identical trajectories (same raw text at every step): **{a['identical']}/{a['total']}**; "
        f"same scores: {a['same_scores']}/{a['total']}",
        f"- mean F1 batched {r['batched']['summary']['breakdown'].get('f1') or 0:.3f}, "
        f"one at a time {r['sequential']['summary']['breakdown'].get('f1') or 0:.3f}",
    ]
    for d in a["differences"][:10]:
        lines.append(f"  - {d['example_id']} differs at step {d['first_differing_step']}: "
                     f"batched {d['batched']!r} vs alone {d['sequential']!r}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
