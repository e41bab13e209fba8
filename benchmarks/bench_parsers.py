"""Benchmark: how parse time of hostile model output grows with its length (linear is the baseline).

Every parser that reads model output (tag extraction, `<answer>` extraction, citation markup,
the three agent formats, Countdown equations, python-like tool calls, each task's scorer, every
registered reward on one completion) is timed
on adversarial patterns (many unclosed tags, deep brackets, long near-matches: the classic
quadratic-regex traps) at `size` characters and at `scale * size`. The baseline is linear
growth: time ratio == scale. Quadratic growth would give scale**2. A ratio above
`2 * scale` is flagged super-linear. Times are the best of `repeats` (noise only adds time).
A parser that refuses inputs past a length cap (Countdown equations: 512 characters, tool calls:
20,000, cited answers: 100,000) is measured below its cap, where it does the work.

The tests only check that these parsers return on such inputs (with a hang watchdog); the
growth and the absolute times are measured here, never asserted in a timed unit test.

    python benchmarks/bench_parsers.py [--size 50000] [--scale 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PATTERNS = {"<answer> x n": "<answer>", "</answer> x n": "</answer>", "<snippet id= x n": "<snippet id=",
            "<answer><snippet id=S1> x n": "<answer><snippet id=S1>", "<tool_call>{ x n": "<tool_call>{",
            "{ x n": "{", "[ x n": "[", "( x n": "(", "action: Answer, action_input: x n": "action: Answer, action_input: ",
            "[action: x n": "[action:", "<search> x n": "<search>", "<reasoning>\\n x n": "<reasoning>\n",
            "<information> x n": "<information>", "<information><result></information> x n":
            "<information><result></information>", "<think> x n": "<think>",
            "<reasoning>x</reasoning><answer> x n": "<reasoning>x</reasoning><answer>", "1+ x n": "1+", "9 x n": "9",
            "Thought: + spaces": None}


def adversarial(name: str, size: int) -> str:
    """The pattern `name` repeated (or padded, for the spaces pattern) to `size` characters."""
    unit = PATTERNS[name]
    if unit is None:
        return "Thought:" + " " * (size - len("Thought:"))
    return (unit * (size // len(unit) + 1))[:size]


def parsers() -> dict[str, tuple[Callable[[str], object], int | None]]:
    """Every parser of model output: a one-argument callable that swallows its own parse errors, and
    the input length past which it refuses without parsing (None: no cap)."""
    from selfimprove.agent.formats import ReactFormat, ToolCallFormat, XmlFormat
    from selfimprove.rewards.answer import extract_answer
    from selfimprove.tasks import get_task
    from selfimprove.tasks.countdown.equation import MAX_CHARS, EquationError, evaluate_equation
    from selfimprove.tasks.function_calling.calls import MAX_CALL_CHARS, CallParseError, parse_calls
    from selfimprove.tasks.refiner.citations import MAX_ANSWER_CHARS, parse_cited_answer, snippet_ids
    from selfimprove.tasks.tags import last_tag_block

    def tolerant(fn, error):
        def call(text):
            try:
                return fn(text)
            except error:
                return None
        return call

    found = {"last_tag_block(answer)": (lambda t: last_tag_block(t, "answer"), None),
             "extract_answer": (extract_answer, None), "parse_cited_answer": (parse_cited_answer, MAX_ANSWER_CHARS),
             "snippet_ids": (snippet_ids, None), "ReactFormat.parse": (ReactFormat().parse, None),
             "XmlFormat.parse": (XmlFormat().parse, None), "ToolCallFormat.parse": (ToolCallFormat().parse, None),
             "evaluate_equation": (tolerant(evaluate_equation, EquationError), MAX_CHARS),
             "parse_calls": (tolerant(parse_calls, CallParseError), MAX_CALL_CHARS)}
    for name in ("hotpotqa", "countdown", "function_calling", "refiner"):
        task = get_task(name)
        example = task.load(None)[0]
        found[f"{name}.score"] = (lambda t, task=task, example=example: task.score(example, t), None)
    return {**found, **rewards()}


REWARD_TASKS = {"countdown_correct": "countdown", "countdown_format": "countdown", "function_call_correct": "function_calling", "citation": "refiner",
                "refiner_reward": "refiner", "xml_int_answer": "countdown"}


def rewards() -> dict[str, tuple[Callable[[str], object], int | None]]:
    """Every registered reward on one completion, with its task's first bundled example as the columns
    (judged rewards get a scripted judge that always answers yes)."""
    from selfimprove.models.scripted import ScriptedGenerator
    from selfimprove.rewards import REWARDS, get_reward
    from selfimprove.tasks import get_task

    judge = ScriptedGenerator(lambda conversation, index: "Verdict: yes\nScore: 1")
    params = {"task_reward": {"task_name": "hotpotqa"}, "llm_judge_correctness": {"judge": judge},
              "rubric_judge": {"judge": judge, "static_rubrics": ["cites sources"]},
              "citation": {"judge": judge}, "refiner_reward": {"judge": judge}}
    found = {}
    for name in REWARDS.names():
        task = get_task(REWARD_TASKS.get(name, "hotpotqa"))
        columns = {key: [value] for key, value in task.to_row(task.load(None)[0]).items()}
        reward = get_reward(name, params.get(name, {}))
        found[f"reward:{name}"] = (lambda t, reward=reward, columns=columns: reward([t], **columns), None)
    return found


def best_seconds(fn: Callable[[str], object], text: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best


def measure(fn: Callable[[str], object], size: int, scale: int, repeats: int) -> dict:
    """Worst growth of `fn` over every pattern from `size` to `scale * size` characters, and its slowest
    time at the larger size."""
    rows = []
    for pattern in PATTERNS:
        small = best_seconds(fn, adversarial(pattern, size), repeats)
        large = best_seconds(fn, adversarial(pattern, size * scale), repeats)
        rows.append({"pattern": pattern, "small_s": small, "large_s": large, "ratio": large / max(small, 1e-7)})
    worst = max(rows, key=lambda row: row["ratio"])
    slowest = max(rows, key=lambda row: row["large_s"])
    return {"worst_ratio": worst["ratio"], "worst_pattern": worst["pattern"], "slowest_large_s": slowest["large_s"],
            "slowest_pattern": slowest["pattern"], "super_linear": worst["ratio"] > 2 * scale,
            "sizes": [size, size * scale], "patterns": rows}


def run(size: int = 50_000, scale: int = 4, repeats: int = 5, only: list[str] | None = None) -> dict:
    chosen = {name: parser for name, parser in parsers().items() if only is None or name in only}
    results = {name: measure(fn, size if cap is None else min(size, cap // scale), scale, repeats)
               for name, (fn, cap) in chosen.items()}
    return {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "size": size, "scale": scale, "repeats": repeats, "baseline": f"linear growth: ratio {scale}",
            "parsers": results, "super_linear": sorted(name for name, r in results.items() if r["super_linear"])}


def markdown(r: dict) -> list[str]:
    lines = [f"{len(PATTERNS)} adversarial patterns at {r['size']:,} and {r['size'] * r['scale']:,} characters "
             f"(below a parser's length cap where it has one), best of {r['repeats']}; baseline: linear growth "
             f"(ratio {r['scale']}), quadratic would be {r['scale'] ** 2}.", "",
             "| parser | characters | worst growth ratio (pattern) | slowest at the larger size (pattern) |",
             "|---|---|---|---|"]
    for name, p in r["parsers"].items():
        flag = " **super-linear**" if p["super_linear"] else ""
        lines.append(f"| `{name}` | {p['sizes'][0]:,} -> {p['sizes'][1]:,} | {p['worst_ratio']:.1f}x "
                     f"({p['worst_pattern']}){flag} | {p['slowest_large_s'] * 1000:.2f} ms ({p['slowest_pattern']}) |")
    verdict = ", ".join(r["super_linear"]) or "none"
    return [*lines, "", f"- super-linear (ratio above {2 * r['scale']}): **{verdict}**"]


def compact(r: dict) -> dict:
    """The result for the JSON file: per parser its summary, and per pattern [ms at N, ms at scale*N]."""
    parsers = {}
    for name, p in r["parsers"].items():
        times = {row["pattern"]: [round(row["small_s"] * 1e3, 4), round(row["large_s"] * 1e3, 4)] for row in p["patterns"]}
        parsers[name] = {**{key: value for key, value in p.items() if key != "patterns"}, "ms_by_pattern": times}
    return {**r, "parsers": parsers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = run(args.size, args.scale, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "parsers.json").write_text(json.dumps(compact(result), indent=1) + "\n", encoding="utf-8")
    text = "\n".join(markdown(result))
    (RESULTS / "parsers.md").write_text(f"# Parser growth ({result['date']}, {result['machine']})\n\n{text}\n",
                                        encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
