"""Resumable stages driven by slow scripted models, run as scripts so a test can SIGKILL them.

Usage: python reliability_entries.py TARGET OUT_DIR [SECONDS_PER_REPLY]
TARGET is one of:
- eval-agent: `run_eval` on 8 HotpotQA demo questions, react agent, 2 repeats (multi-turn episodes);
- eval-reflect: `run_eval` on 12 generated Countdown puzzles, single turn with reflect + retry;
- failures: `rrr.failures.collect_failures` on 12 Countdown puzzles, k=3 attempts each;
- recipe: a two-stage recipe (distill with the scripted teacher, then failures) via `run_recipe`.
Each finishes in a few seconds uninterrupted; every reply sleeps SECONDS_PER_REPLY first.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from distill_entry import EchoSearcher, teacher
from selfimprove.models.scripted import ScriptedGenerator

COUNTDOWN = "generate:n=12,seed=3"


def slow(script, delay: float, name: str = "scripted") -> ScriptedGenerator:
    def delayed(conversation, sample):
        time.sleep(delay)
        return script(conversation, sample)

    return ScriptedGenerator(delayed, name=name)


def countdown_reply(conversation, sample) -> str:
    """Right for some puzzles and samples, unparseable or wrong for others (deterministic)."""
    text = conversation[-1]["content"]
    kind = (len(text) + sample) % 3
    return ["<answer>1 + 2</answer>", "I give up", "<answer>((</answer>"][kind]


def run_eval_agent(out: Path, delay: float) -> None:
    from selfimprove.eval.harness import EvalSettings, run_eval
    from selfimprove.tasks import get_task

    examples = get_task("hotpotqa").load(None)[:8]
    settings = EvalSettings(task="hotpotqa", models=["scripted"], limit=8, repeats=2, max_turns=5, output_dir=str(out))
    run_eval(settings, generator_factory=lambda spec: teacher(examples, delay))


def run_eval_reflect(out: Path, delay: float) -> None:
    from selfimprove.eval.harness import EvalSettings, run_eval

    settings = EvalSettings(task="countdown", data=COUNTDOWN, models=["scripted"], format="single", reflect=True,
                            batch_size=2, output_dir=str(out))
    run_eval(settings, generator_factory=lambda spec: slow(countdown_reply, delay))


def run_failures(out: Path, delay: float) -> None:
    from selfimprove.tasks import get_task
    from selfimprove.workflows.rrr.failures import FailureSettings, collect_failures

    task = get_task("countdown")
    settings = FailureSettings(k=3, batch_examples=2, per_example=2)
    collect_failures(task, task.load(COUNTDOWN), slow(countdown_reply, delay), settings, out, progress=False)


def distill_stage(params, stage_dir: Path, inputs) -> dict:
    from selfimprove.agent import AgentSettings
    from selfimprove.tasks import get_task
    from selfimprove.workflows.distill import DistillConfig, distill

    config = DistillConfig(output_dir=str(stage_dir), limit=4, metric="f1", threshold=1.0,
                           agent=AgentSettings(attempts=2, temperature=0.7, progress=False))
    examples = get_task("hotpotqa").load(None)[:4]
    summary = distill(config, generator=teacher(examples, params["delay"]), searcher=EchoSearcher())
    return {"kept": summary["counts"]["all"]["kept"]}


def failures_stage(params, stage_dir: Path, inputs) -> dict:
    run_failures(stage_dir, params["delay"])
    return {"failures": "failures.jsonl"}


def run_recipe_target(out: Path, delay: float) -> None:
    import json

    from selfimprove.workflows.pipeline.recipe import load_recipe
    from selfimprove.workflows.pipeline.run_recipe import run_recipe
    from selfimprove.workflows.pipeline.stages import STAGE_KINDS

    for name, fn in (("reliability_distill", distill_stage), ("reliability_failures", failures_stage)):
        if name not in STAGE_KINDS.names():
            STAGE_KINDS.register(name, fn)
    path = out.parent / f"{out.name}-recipe.yaml"
    path.write_text(json.dumps({"name": "crash", "out": str(out), "stages": [
        {"name": "distill", "kind": "reliability_distill", "params": {"delay": delay}},
        {"name": "failures", "kind": "reliability_failures", "params": {"delay": delay},
         "inputs": {"kept": "distill:kept.jsonl"}}]}), encoding="utf-8")
    run_recipe(load_recipe(path), out)


TARGETS = {"eval-agent": run_eval_agent, "eval-reflect": run_eval_reflect, "failures": run_failures,
           "recipe": run_recipe_target}

if __name__ == "__main__":
    TARGETS[sys.argv[1]](Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
