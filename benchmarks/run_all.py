"""Run every selfimprove benchmark in one process and write benchmarks/results/report.{json,md}.

    python benchmarks/run_all.py [--quick] [--only retrieval,metrics] [--threads N]

Every ratio in the report is measured IN THIS RUN against a named baseline:
1. agent_runner: the batched episode runner vs one episode at a time (benchmarks/bench_agent_runner.py,
   called with reduced settings);
2. grpo_overhead: `selfimprove train grpo`'s code path vs plain TRL GRPOTrainer, same config;
3. retrieval: selfimprove's BM25 (bm25s) vs rank-bm25 on the same corpus and tokens, + top-1 agreement;
4. metrics: `hotpotqa.metrics.evaluate` vs the official script per example, identical scores asserted;
5. memory: peak RSS of SFT and GRPO steps with LoRA (absolute numbers; no baseline).
`--quick` uses the tiny random model for 1, 2 and 5 and smaller inputs (a smoke run, minutes less);
the full run uses the embedded smollm2-135m. A section that fails is recorded with its error and
the script exits 1 after writing the report. Timings on a shared machine are noisy: the report
records the load average before and after, and torch runs with `--threads` (default: every core
when the cores are not oversubscribed, 1-minute load average under the core count; otherwise 1,
which avoids OpenMP stalls when they are).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"
SECTIONS = ("agent_runner", "grpo_overhead", "retrieval", "metrics", "memory")
TITLES = {"agent_runner": "1. Agent episode runner", "grpo_overhead": "2. GRPO step overhead",
          "retrieval": "3. BM25 retrieval", "metrics": "4. HotpotQA metrics", "memory": "5. Peak memory (LoRA)"}


def settings(quick: bool) -> dict:
    """Sizes per section: full (embedded model) or quick (tiny model, small inputs)."""
    if quick:
        return {"agent": {"model": "tiny", "episodes": 4, "max_turns": 2, "max_tokens": 16},
                "grpo": {"model": "tiny", "steps": 2, "rounds": 2, "completion_tokens": 16},
                "retrieval": {"repeats": 2}, "metrics": {"copies": 10}, "memory": {"model": "tiny", "steps": 1, "context_chars": 200}}
    return {"agent": {"model": "smollm2-135m", "episodes": 8, "max_turns": 3, "max_tokens": 32},
            "grpo": {"model": "smollm2-135m", "steps": 1, "rounds": 2, "completion_tokens": 32},
            "retrieval": {"repeats": 10}, "metrics": {"copies": 200}, "memory": {"model": "smollm2-135m", "steps": 1}}


def run_agent_runner(options: dict, threads: int, out_dir: Path) -> dict:
    """Call the agent engineer's benchmark (its own main, reduced settings) and read what it wrote.

    Its files go to `out_dir/run_all_agent_runner.{json,md}`, never over its own standalone results.
    """
    import bench_agent_runner

    model = options["model"]
    if model == "tiny":
        from selfimprove.models.tiny import build_tiny_model

        model = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="bench-tiny-"))))
    out = out_dir / "run_all_agent_runner"
    argv = ["bench_agent_runner.py", "--episodes", str(options["episodes"]), "--max-turns", str(options["max_turns"]),
            "--max-tokens", str(options["max_tokens"]), "--threads", str(threads), "--model", model, "--out", str(out)]
    saved, sys.argv = sys.argv, argv
    try:
        bench_agent_runner.main()
    finally:
        sys.argv = saved
    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    result["settings"]["model"] = options["model"]
    return result


def run_section(name: str, options: dict, threads: int, out_dir: Path) -> dict:
    if name == "agent_runner":
        return run_agent_runner(options["agent"], threads, out_dir)
    if name == "grpo_overhead":
        import bench_grpo_overhead

        return bench_grpo_overhead.run(threads=threads, **options["grpo"])
    if name == "retrieval":
        import bench_retrieval

        return bench_retrieval.run(**options["retrieval"])
    if name == "metrics":
        import bench_metrics

        return bench_metrics.run(**options["metrics"])
    import bench_memory

    return bench_memory.run(threads=threads, **options["memory"])


def headline(name: str, r: dict) -> tuple[str, str, str]:
    """(what was measured, the named baseline, the ratio) for the summary table."""
    if name == "agent_runner":
        return ("batched episode runner", "one episode at a time (run_agent, batch of 1)",
                f"{r['speedup_batched_over_sequential']:.2f}x faster; "
                f"{r['agreement']['identical']}/{r['agreement']['total']} identical trajectories")
    if name == "grpo_overhead":
        o = r["overhead"]
        return ("`train grpo` code path", "plain TRL GRPOTrainer, same config",
                f"{100 * o['train_cpu_s']:+.1f}% train() CPU time ({100 * o['train_wall_s']:+.1f}% wall)")
    if name == "retrieval":
        return ("BM25Searcher (bm25s)", "rank-bm25 BM25Okapi, same tokens",
                f"{r['speedup_search']:.1f}x queries/s; top-1 agreement {100 * r['agreement']['top1_agreement']:.0f}%")
    if name == "metrics":
        return ("hotpotqa.metrics.evaluate", "official hotpot_evaluate_v1, per example",
                f"{r['speedup']:.2f}x; identical scores: {r['identical_scores']}")
    return ("SFT / GRPO step, LoRA", "none (absolute)",
            f"peak RSS {r['sft']['peak_rss_mib']:.0f} / {r['grpo']['peak_rss_mib']:.0f} MiB")


def section_markdown(name: str, r: dict) -> list[str]:
    if "error" in r:
        return [f"FAILED: `{r['error']}`"]
    if name == "agent_runner":
        import bench_agent_runner

        return bench_agent_runner.markdown(r).splitlines()[2:]
    module = {"grpo_overhead": "bench_grpo_overhead", "retrieval": "bench_retrieval", "metrics": "bench_metrics",
              "memory": "bench_memory"}[name]
    return __import__(module).markdown(r)


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.is_available(), "load_average_start": os.getloadavg()}


def report_markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# selfimprove benchmark report", "",
             f"{report['date']}, mode **{report['mode']}**, {m['processor']}, {m['cpu_count']} CPUs, "
             f"CUDA {m['cuda']}, torch {m['torch']}, {report['torch_threads']} torch thread(s); load average "
             f"{m['load_average_start'][0]:.1f} at start, {m['load_average_end'][0]:.1f} at end; "
             f"total {report['total_seconds']:.0f} s.", "",
             "| # | selfimprove | baseline (same run) | ratio |", "|---|---|---|---|"]
    for name, r in report["sections"].items():
        what, baseline, ratio = ("-", "-", "FAILED") if "error" in r else headline(name, r)
        lines.append(f"| {TITLES[name]} | {what} | {baseline} | {ratio} |")
    for name, r in report["sections"].items():
        lines += ["", f"## {TITLES[name]} ({report['seconds'][name]:.0f} s)", "", *section_markdown(name, r)]
    return "\n".join(lines) + "\n"


def run_all(quick: bool, only: list[str], threads: int, out_dir: Path = RESULTS) -> dict:
    from rich.console import Console

    console = Console(stderr=True)
    options, start = settings(quick), time.perf_counter()
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "mode": "quick" if quick else "full",
              "torch_threads": threads, "machine": machine(), "sections": {}, "seconds": {}}
    for name in only:
        with console.status(f"[bold]benchmark {TITLES[name]}[/]"):
            section_start = time.perf_counter()
            try:
                report["sections"][name] = run_section(name, options, threads, out_dir)
            except Exception as exc:  # a failed section is reported, the others still run
                traceback.print_exc()
                report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            report["seconds"][name] = time.perf_counter() - section_start
        console.print(f"{TITLES[name]}: {report['seconds'][name]:.0f} s")
    report["machine"]["load_average_end"] = os.getloadavg()
    report["total_seconds"] = time.perf_counter() - start
    write_report(report, out_dir)
    return report


def write_report(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(report), encoding="utf-8")


def default_threads() -> int:
    """Every core unless the cores are oversubscribed (1-minute load average at least the core count), else 1."""
    cores = os.cpu_count() or 1
    return cores if os.getloadavg()[0] < cores else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and small inputs (a smoke run)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="torch threads for the model benchmarks (default: all cores unless oversubscribed, else 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = sorted(chosen - set(SECTIONS))
    args.only = [name for name in SECTIONS if name in chosen]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    report = run_all(args.quick, args.only, args.threads, args.out)
    print(report_markdown(report))
    return 1 if any("error" in r for r in report["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
