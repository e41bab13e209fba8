"""Benchmark: one GRPO step, plain TRL vs the project's cached decoder + shared-prompt log-probs (issue 20).

In ONE process, with the embedded model (smollm2-135m) + a fresh LoRA (r 16, all linear layers),
the same seed and the same resolved GRPOConfig on both sides, each case runs one GRPO step
(`GRPOTrainer.train()` with max_steps 1) per path, the paths interleaved (trl, cached, trl, ...
for `--rounds`), and each path reports its fastest round (other processes share the CPU):
- (b) `search`: multi-turn search GRPO on the bundled HotpotQA demo (xml format, BM25 over the
  questions' own paragraphs), 8 generations x up to 4 turns x 64 tokens. trl = today's path
  (`train.rollouts.make_rollout_func`, each turn through TRL's `_generate_single_turn` on the whole
  context); cached = the same rollout_func with `train.cached_generate.cached_generate` in place of
  `trainer_generate` (patched in `selfimprove.train.rollouts` for the step).
- (a) `countdown`: single-turn Countdown GRPO, 8 generations x 96 tokens. trl = TRL's own
  generation (no rollout_func); cached = `train.rollouts.single_turn_rollout` (TRL's own prompt ids)
  generating through the cached decoder.
- (c) `rrr`: a Reflect-Retry-Reward step (`train rrr`'s trainer): Countdown puzzle + a failed attempt +
  the reflection request as the prompt, 8 reflections x 48 tokens (trained), each followed by a retry
  of up to 96 tokens (generated and scored, not trained). trl = TRL's generation; cached = the cached
  decoder for both turns.
The trl path is plain TRL throughout (its own log-prob passes: each row's prompt + completion); trl_cb
(`--paths trl,trl_cb,cached`) is plain TRL with `use_transformers_continuous_batching` (TRL's own faster
transformers generation, the issue's second baseline); the cached paths also take the project's
default `logprob_pass: auto` (`train.shared_prompt`: each group's prompt encoded once in the loss and
reference passes). One optimizer step = one group of
`--generations` rows, forward-backward in micro-batches of `--micro-batch` rows (default: the group).
Per step: wall and process-CPU seconds, split into generation (the generate calls), the rest of the
rollout (environments, search), rewards, no-grad log-prob passes (old/reference), and forward-backward
(training_step less input preparation); generated tokens, tokens/s, and peak RSS of the step
(VmHWM, reset before each step through /proc/self/clear_refs). `speedup_vs_trl` = trl step wall /
cached step wall. Math check (`loss_abs_diff`): the completions of a cached step are replayed into a
fresh trainer per path (the path's own generation still runs, then its output is replaced by the
fixed completions), and TRL's loss on them must agree to 1e-5. The roof: prefill throughput of the
bare model (8 prompts x 256 tokens, one forward) and memory read bandwidth; generation tokens/s is
reported as a fraction of the prefill roof.

    python benchmarks/bench_rl_step.py                      # cases search,countdown,rrr; 1 round
    python benchmarks/bench_rl_step.py --cases search --rounds 2 --no-math-check
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"
LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
COUNTDOWN_DATA = "generate:n=32,seed=0,min_nums=3,max_nums=3,max_number=10,max_target=30"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="search,countdown,rrr", help="comma-separated: search, countdown, rrr")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--search-tokens", type=int, default=64)
    parser.add_argument("--search-turns", type=int, default=4)
    parser.add_argument("--countdown-tokens", type=int, default=96, help="countdown completions and RRR retries")
    parser.add_argument("--rrr-tokens", type=int, default=48, help="RRR reflections (the trained completion)")
    parser.add_argument("--micro-batch", default=None,
                        help="rows per forward-backward: N for every case, or per case as `search=2,rrr=4` "
                             "(default: a whole group, `--generations`)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--paths", default="trl,cached",
                        help="comma-separated: trl, trl_cb (TRL with transformers' continuous batching), "
                             "cached (LoRA merged into a copy), cached_unmerged")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-math-check", action="store_true")
    parser.add_argument("--no-roof", action="store_true", help="skip the roof measurement (it loads the embedded model)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--out", default=str(OUT / "rl_step.json"))
    return parser.parse_args()


# a paged cache sized for one step's rows (by default it sizes the cache from free memory: ~12 GB here)
CONTINUOUS_BATCHING = {"num_blocks": 64, "max_batch_tokens": 1024}
TRL_PATHS = ("trl", "trl_cb")  # plain TRL: its transformers generate / its continuous batching
# the rollouts built here call `train.rollouts.trainer_generate`, which `generation_path` swaps for the path's own
ROUTED = "trl"


def micro_batch(args, case: str) -> int:
    """Rows per forward-backward for `case` from `--micro-batch` (`N` or `case=N,...`; default: the whole group).

    >>> from types import SimpleNamespace as A
    >>> [micro_batch(A(micro_batch=m, generations=8), "search") for m in (None, "2", "search=4,rrr=2", "rrr=2")]
    [8, 2, 4, 8]
    """
    spec = args.micro_batch or ""
    if spec and "=" not in spec:
        return min(int(spec), args.generations)
    sizes = {name: int(size) for name, size in (item.split("=") for item in spec.split(",") if item)}
    return min(sizes.get(case, args.generations), args.generations)


def trainer_block(args, tokens: int, path: str, case: str) -> dict:
    """One optimizer step over one generation batch (1 prompt x `generations`), in micro-batches of
    `--micro-batch` rows (default: the whole group, as the recipes train)."""
    micro = micro_batch(args, case)
    return {"max_steps": 1, "num_generations": args.generations, "per_device_train_batch_size": micro,
            "gradient_accumulation_steps": args.generations // micro,
            "max_completion_length": tokens, "temperature": 0.9, "beta": 0.001, "learning_rate": 1e-5,
            "gradient_checkpointing": False, "save_strategy": "no", "logging_steps": 1, "report_to": [],
            **({"use_transformers_continuous_batching": True,
                "transformers_continuous_batching_config": CONTINUOUS_BATCHING} if path == "trl_cb" else {})}


def run_config(case: str, args, output_dir: str, path: str):
    from selfimprove.train.grpo import GRPORunConfig

    model = {"spec": args.model, "lora": LORA}
    if case == "search":
        return GRPORunConfig(task="hotpotqa", data=None, model=model, output_dir=output_dir, seed=args.seed,
                             rewards=[{"name": "token_f1", "weight": 1.0}, {"name": "search_count_capped", "weight": 0.2},
                                      {"name": "length_penalty", "params": {"max_words": 15, "per_word": 0.002}}],
                             agent={"format": "xml", "searcher": "bm25", "max_turns": args.search_turns, "search_k": 1,
                                    "max_observation_chars": 200},
                             trainer=trainer_block(args, args.search_tokens, path, case))
    return GRPORunConfig(task="countdown", data=COUNTDOWN_DATA, model=model, output_dir=output_dir, seed=args.seed,
                         rewards=[{"name": "task_reward", "params": {"task_name": "countdown", "field": "value"}},
                                  {"name": "length_penalty", "params": {"max_words": 15, "per_word": 0.002}}],
                         trainer=trainer_block(args, args.countdown_tokens, path, case))


def single_turn_rollout():
    from selfimprove.train.rollouts import single_turn_rollout

    return single_turn_rollout(ROUTED)


FAILED_ATTEMPT = ("<think>First I add the two largest numbers, then I multiply by the smallest one and check "
                  "whether the result hits the target; if not, I subtract the remaining number.</think>\n"
                  "<answer>(7 + 9) * 2 - 3</answer>")


def rrr_trainer(args, output_dir: str, path: str, rollout_override=None):
    """(c): an RRR step: prompts = Countdown puzzle + a failed attempt + the reflection request; the reflection
    (`rrr_tokens`) is trained, the retry (`countdown_tokens`) generated and scored (as `train rrr` builds it)."""
    from selfimprove.agent.reflect_retry import REFLECTION_PROMPT, RETRY_PROMPT, reflection_conversation
    from selfimprove.tasks import get_task
    from selfimprove.train.grpo import build_trainer
    from selfimprove.workflows.rrr.rollout import retry_correct, rrr_rollout_func
    from selfimprove.workflows.rrr.train import RRR_DEFAULTS, RRRConfig

    task = get_task("countdown")
    rows = [task.to_row(example) for example in task.load(COUNTDOWN_DATA)]
    rows = [{**row, "prompt": reflection_conversation(row["prompt"], FAILED_ATTEMPT, REFLECTION_PROMPT),
             "failed_attempt": FAILED_ATTEMPT} for row in rows]
    config = RRRConfig(failures="(built in the benchmark)", model={"spec": args.model, "lora": LORA},
                       retry_max_tokens=args.countdown_tokens, output_dir=output_dir, seed=args.seed,
                       trainer=trainer_block(args, args.rrr_tokens, path, "rrr"))
    reward = retry_correct("countdown")
    rollout = rollout_override or rrr_rollout_func(RETRY_PROMPT, args.countdown_tokens, task.extract, ROUTED)
    return build_trainer(config, rows, [reward], [1.0], rollout, arg_defaults=RRR_DEFAULTS), rollout


def build(case: str, path: str, args, output_dir: str, replay: dict | None = None):
    """The case's GRPOTrainer for `path` ("trl" or "cached"); with `replay`, its rollout returns those outputs.
    The trl path is plain TRL (its own log-prob passes); the cached paths use the project's defaults
    (`logprob_pass: auto`, the shared-prompt pass on CPU)."""
    from selfimprove.rewards import build_reward_funcs
    from selfimprove.train.grpo import agent_rollout_func, build_rows, build_trainer, load_examples

    if case == "rrr":
        trainer, rollout = rrr_trainer(args, output_dir, path, replaying(replay) if replay is not None else None)
        return with_paths(trainer, rollout, path)
    config = run_config(case, args, output_dir, path)
    task, examples = load_examples(config)
    funcs, weights = build_reward_funcs(config.rewards, task=config.task)
    if case == "search":
        rollout = agent_rollout_func(config.agent, examples, ROUTED)
    else:
        rollout = single_turn_rollout() if (path not in TRL_PATHS or replay is not None) else None
    if replay is not None:
        rollout = replaying(replay)
    trainer = build_trainer(config, build_rows(task, examples, config.agent), funcs, weights, rollout)
    return with_paths(trainer, rollout, path)


def with_paths(trainer, rollout, path: str):
    trainer.rollout_func = rollout  # exactly this path, whatever default build_trainer picks
    trainer.logprob_pass = "trl" if path in TRL_PATHS else "auto"
    return trainer


def replaying(fixed: dict):
    """A rollout_func that returns the `fixed` outputs."""
    def rollout_func(prompts, trainer):
        return copy.deepcopy(fixed)

    return rollout_func


class Clock:
    """Seconds (wall, CPU) spent in wrapped methods, by name; nested wraps are not subtracted."""

    def __init__(self):
        self.wall, self.cpu, self.tokens = {}, {}, 0

    def wrap(self, owner, method: str, name: str, split_grad: bool = False):
        import torch

        original = getattr(owner, method)

        def timed(*a, **kw):
            key = name + ("" if not split_grad else ("_grad" if torch.is_grad_enabled() else "_nograd"))
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*a, **kw)
            finally:
                self.wall[key] = self.wall.get(key, 0.0) + time.perf_counter() - wall
                self.cpu[key] = self.cpu.get(key, 0.0) + time.process_time() - cpu

        setattr(owner, method, timed)

    def counted_generate(self, generate):
        def timed(sequences, max_tokens, stops=None):
            wall, cpu = time.perf_counter(), time.process_time()
            ids, logprobs = generate(sequences, max_tokens, stops)
            self.wall["generation"] = self.wall.get("generation", 0.0) + time.perf_counter() - wall
            self.cpu["generation"] = self.cpu.get("generation", 0.0) + time.process_time() - cpu
            self.tokens += sum(len(i) for i in ids)
            return ids, logprobs

        return timed


def generation_factory(path: str):
    """`trainer -> generate function` of a path (the TRL paths generate through `trainer_generate`)."""
    from selfimprove.train.cached_generate import cached_generate
    from selfimprove.train.rollouts import trainer_generate

    return {"trl": trainer_generate, "trl_cb": trainer_generate, "cached": cached_generate,
            "cached_unmerged": lambda trainer: cached_generate(trainer, merged=False)}[path]


@contextlib.contextmanager
def generation_path(path: str, clock: Clock):
    """Make `train.rollouts.make_rollout_func` generate through `path`, timed (whichever of `trainer_generate` /
    `cached_generate` it calls, once the cached path is wired in there)."""
    from selfimprove.train import rollouts

    factory = generation_factory(path)
    names = [name for name in ("trainer_generate", "cached_generate") if hasattr(rollouts, name)]
    saved = {name: getattr(rollouts, name) for name in names}
    for name in names:
        setattr(rollouts, name, lambda trainer: clock.counted_generate(factory(trainer)))
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(rollouts, name, value)


def instrument(trainer, clock: Clock, losses: list) -> None:
    """Time the parts of a GRPO step on this trainer instance and record each loss TRL computes."""
    clock.wrap(trainer, "_generate", "rollout")
    clock.wrap(trainer, "_calculate_rewards", "rewards")
    clock.wrap(trainer, "_get_per_token_logps_and_entropies", "logprobs", split_grad=True)
    clock.wrap(trainer, "_generate_and_score_completions", "prepare")
    clock.wrap(trainer, "training_step", "training_step")
    if trainer.rollout_func is None:  # TRL's own single-turn generation: time and count it there
        original = trainer._generate_single_turn

        def single_turn(*a, **kw):
            wall, cpu = time.perf_counter(), time.process_time()
            ids, logprobs = original(*a, **kw)
            clock.wall["generation"] = clock.wall.get("generation", 0.0) + time.perf_counter() - wall
            clock.cpu["generation"] = clock.cpu.get("generation", 0.0) + time.process_time() - cpu
            clock.tokens += sum(len(i) for i in ids)
            return ids, logprobs

        trainer._generate_single_turn = single_turn
    compute_loss = trainer.compute_loss

    def recorded(*a, **kw):
        loss = compute_loss(*a, **kw)
        losses.append(float((loss[0] if isinstance(loss, tuple) else loss).detach()))
        return loss

    trainer.compute_loss = recorded


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def captured_rollout(trainer) -> dict:
    """Keep a copy of what the trainer's rollout_func returns (to replay it in the math check)."""
    seen = {}
    if trainer.rollout_func is not None:
        original = trainer.rollout_func

        def rollout_func(prompts, t):
            seen["output"] = copy.deepcopy(original(prompts, t))
            return seen["output"]

        trainer.rollout_func = rollout_func
    return seen


def one_step(case: str, path: str, args) -> tuple[dict, dict]:
    """One timed GRPO step of `case` through `path`; returns (figures, the rollout output when captured)."""
    import gc

    with tempfile.TemporaryDirectory() as tmp:
        trainer = build(case, path, args, tmp)
        clock, losses = Clock(), []
        instrument(trainer, clock, losses)
        captured = captured_rollout(trainer)
        gc.collect()
        reset_peak_rss()
        with generation_path(path, clock):
            wall, cpu = time.perf_counter(), time.process_time()
            trainer.train()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        figures = breakdown(clock, wall, cpu, losses, trainer)
        figures["peak_rss_mb"] = peak_rss_mb()
    return figures, captured.get("output")


def breakdown(clock: Clock, wall: float, cpu: float, losses: list, trainer) -> dict:
    w, c = clock.wall, clock.cpu
    generation = w.get("generation", 0.0)
    fwd_bwd = w.get("training_step", 0.0) - w.get("prepare", 0.0)
    log = next((e for e in trainer.state.log_history if "reward" in e), {})
    return {"step_wall_s": round(wall, 2), "step_cpu_s": round(cpu, 2),
            "generation_wall_s": round(generation, 2), "generation_cpu_s": round(c.get("generation", 0.0), 2),
            "rollout_rest_wall_s": round(w.get("rollout", 0.0) - generation, 2),
            "rewards_wall_s": round(w.get("rewards", 0.0), 2),
            "logprob_passes_nograd_wall_s": round(w.get("logprobs_nograd", 0.0), 2),
            "forward_backward_wall_s": round(fwd_bwd, 2),
            "other_wall_s": round(wall - w.get("training_step", 0.0), 2),
            "generated_tokens": clock.tokens, "tokens_per_s": round(clock.tokens / generation, 1) if generation else None,
            "loss": losses[0] if losses else None, "reward": log.get("reward"),
            "completion_mean_length": log.get("completions/mean_length")}


def replay_loss(case: str, path: str, args, fixed: dict) -> tuple[float, bool]:
    """TRL's loss (forward only, first micro-batch) on the fixed completions, in a fresh trainer where `path`'s
    generation first ran once on the fixed prompts (so any state it leaves on the model would show); and whether
    the trainer drew the prompt the fixed completions belong to."""
    import torch
    from trl.trainer.utils import split_tensor_dict

    from selfimprove.train.rollouts import encode, render

    with tempfile.TemporaryDirectory() as tmp:
        trainer = build(case, path, args, tmp, replay=fixed)
        trainer.model.train()
        generation_factory(path)(trainer)(fixed["prompt_ids"], 8)
        batch = next(iter(trainer.get_train_dataloader()))
        tokenizer = trainer.processing_class
        same_prompt = encode(tokenizer, render(tokenizer, batch[0]["prompt"])) == fixed["prompt_ids"][0]
        inputs = trainer._generate_and_score_completions(batch)
        trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps  # set by train()
        micro = split_tensor_dict(inputs, trainer.args.gradient_accumulation_steps)[0]
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, micro)), same_prompt


def roof() -> dict:
    """Prefill throughput of the bare model (8 x 256 tokens, one forward) and memory read bandwidth."""
    import torch
    from transformers import AutoModelForCausalLM

    from selfimprove.models.embedded import prepare_embedded_model

    model = AutoModelForCausalLM.from_pretrained(str(prepare_embedded_model()), dtype=torch.float32).eval()
    ids = torch.randint(100, 1000, (8, 256))
    with torch.inference_mode():
        model(input_ids=ids[:, :16], logits_to_keep=1)  # warm-up
        start = time.perf_counter()
        model(input_ids=ids, logits_to_keep=1)
        prefill = ids.numel() / (time.perf_counter() - start)
    data = torch.ones(2**27)  # 512 MiB
    data.sum()
    start = time.perf_counter()
    data.sum()
    bandwidth = data.numel() * 4 / (time.perf_counter() - start) / 1e9
    weights_gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    return {"prefill_tokens_per_s": round(prefill, 1), "memory_read_gb_per_s": round(bandwidth, 1),
            "weights_gb": round(weights_gb, 3), "min_decode_step_ms": round(1000 * weights_gb / bandwidth, 1)}


def run_case(case: str, args) -> dict:
    paths = args.paths.split(",")
    rounds: dict[str, list] = {path: [] for path in paths}
    fixed = None
    for _ in range(args.rounds):
        for path in paths:
            figures, output = one_step(case, path, args)
            rounds[path].append(figures)
            fixed = output if path not in TRL_PATHS and output is not None else fixed
            print(f"[{case}] {path}: {figures}", flush=True)
    best = {path: min(r, key=lambda f: f["step_wall_s"]) for path, r in rounds.items()}
    result: dict = {**best, "rounds": rounds}
    if "trl" in best:
        for path in [p for p in paths if p != "trl"]:
            suffix = "" if path == "cached" else f"_{path}"
            result["speedup_vs_trl" + suffix] = round(best["trl"]["step_wall_s"] / best[path]["step_wall_s"], 2)
            result["generation_speedup_vs_trl" + suffix] = round(
                best["trl"]["generation_wall_s"] / best[path]["generation_wall_s"], 2)
    if not args.no_math_check and fixed is not None and len(paths) > 1:
        replays = {path: replay_loss(case, path, args, fixed) for path in paths}
        losses = {path: loss for path, (loss, _) in replays.items()}
        result["math_check"] = {"losses": losses, "loss_abs_diff": max(losses.values()) - min(losses.values()),
                                "same_prompt": all(same for _, same in replays.values())}
        result["loss_abs_diff"] = result["math_check"]["loss_abs_diff"]
    return result


def machine() -> dict:
    import torch

    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__}


def main() -> None:
    args = parse_args()
    if args.threads:
        __import__("torch").set_num_threads(args.threads)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = {"machine": machine(), "settings": vars(args), "note": (
        "trl and cached steps run interleaved in one process; the machine's load average is in `machine`: "
        "compare runs on an idle machine, and read ratios of single steps (one round) as noisy")}
    result["roof"] = None if args.no_roof else roof()
    for case in args.cases.split(","):
        result[case] = run_case(case, args)
        for path in args.paths.split(",") if result["roof"] else ():
            gen = result[case][path]["tokens_per_s"]
            result[case][path]["generation_fraction_of_prefill_roof"] = round(gen / result["roof"]["prefill_tokens_per_s"], 3)
    result["machine"]["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({c: {k: result[c].get(k) for k in ("speedup_vs_trl", "generation_speedup_vs_trl", "loss_abs_diff")}
                      for c in args.cases.split(",")}, indent=2))


if __name__ == "__main__":
    main()
