"""Stage kinds for recipes: each maps to a function `fn(params, stage_dir, inputs) -> outputs`.

`params` is the stage's `params:` mapping from the recipe, `stage_dir` the directory the stage
writes into, `inputs` the resolved input paths by name. A stage function returns a small
JSON-able dict of outputs (headline metrics, file names) recorded in the manifest. Stage
functions are thin adapters over library calls and are resumable: evaluation and distillation
append keyed records, training resumes from its last checkpoint, converters rewrite atomically.

| kind | library call | inputs |
|---|---|---|
| eval | `eval.harness.run_eval` | `adapter` (optional, a training stage's dir) |
| likelihood | `eval.likelihood.run_likelihood` (reference answers' log-prob: forgetting) | `adapter` (optional) |
| distill | `distill.distill` | `adapter` (optional: merged into the teacher) |
| convert_sft | `convert.sft.sft_rows` | `trajectories` |
| convert_dpo | `convert.dpo.dpo_rows` | `trajectories`, `attempts` (optional) |
| reference_sft | `convert.reference.reference_sft_rows` | - |
| train_sft / train_dpo | `train.sft.train_sft` / `train.dpo.train_dpo` | `data`, `adapter` (optional) |
| train_grpo | `train.grpo.train_grpo` | `adapter` (optional) |
| rrr_experiment | `rrr.experiment.run_experiment` (failures -> eval -> RRR -> eval) | `adapter` (optional: the start) |
| compare | `eval.compare.compare_files` | `before`, `after` (eval stage dirs) |
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from selfimprove.config import StrictModel
from selfimprove.registry import Registry

Params = dict[str, Any]
Inputs = dict[str, Path]


class ConvertSftParams(StrictModel):
    """`convert_sft` params: keep only trajectories scoring at least `min_score` (all when None)."""

    min_score: float | None = None


class ConvertDpoParams(StrictModel):
    """`convert_dpo` params, as `convert.dpo.dpo_rows` takes them."""

    metric: str = "value"
    success: float = 1.0
    first_step: Literal["fixed", "skip"] = "fixed"
    fixed_reply: str | None = None


class ReferenceSftParams(StrictModel):
    """`reference_sft` params: which task's `data` (a file or a generator source) to turn into rows."""

    task: str = "countdown"
    data: str | list[str] | None = None


class CompareParams(StrictModel):
    """`compare` params: the input names in table order (default: sorted) and the metrics to compare."""

    order: list[str] | None = None
    metrics: list[str] = Field(default_factory=lambda: ["f1"], min_length=1)


def adapter_dir(path: Path | None) -> str | None:
    """A training stage's directory -> its saved adapter (dirs holding the adapter itself pass)."""
    if path is None:
        return None
    return str(path / "adapter") if (path / "adapter").is_dir() else str(path)


def with_start_adapter(config: Params, inputs: Inputs) -> Params:
    """`config` with `model.adapter` set to the `adapter` input's saved adapter, when there is one."""
    if "adapter" in inputs:
        config["model"] = {**config.get("model", {}), "adapter": adapter_dir(inputs["adapter"])}
    return config


def eval_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.eval.harness import EvalSettings, run_eval

    adapter = adapter_dir(inputs.get("adapter")) or params.pop("adapter", None)
    summary = run_eval(EvalSettings(**{**params, "output_dir": str(stage_dir), "adapter": adapter}))
    return {"summary": "summary.json", "overall": overall_means(summary)}


def overall_means(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each model's overall ("all") mean of every metric in an eval summary."""
    found = {}
    for model, data in summary.get("models", {}).items():
        metrics = data.get("by_level", {}).get("all", {}).get("metrics", {})
        found[model] = {name: stats["mean"] for name, stats in metrics.items() if isinstance(stats, dict)}
    return found


def likelihood_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.eval.likelihood import LikelihoodSettings, run_likelihood

    adapter = adapter_dir(inputs.get("adapter")) or params.pop("adapter", None)
    summary = run_likelihood(LikelihoodSettings(**{**params, "output_dir": str(stage_dir), "adapter": adapter}))
    return {"summary": "summary.json", "overall": overall_means(summary)}


def distill_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.workflows.distill import DistillConfig, distill

    adapter = adapter_dir(inputs.get("adapter")) or params.pop("adapter", None)
    summary = distill(DistillConfig(**{**params, "output_dir": str(stage_dir), "adapter": adapter}))
    return {"kept": "kept.jsonl", "attempts": "attempts.jsonl", "summary": _small(summary)}


def convert_sft_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.convert.sft import sft_rows
    from selfimprove.data.jsonl import write_jsonl
    from selfimprove.data.trajectory import read_trajectories

    config = ConvertSftParams(**params)
    rows = sft_rows(read_trajectories(inputs["trajectories"]), min_score=config.min_score)
    return {"rows": write_jsonl(stage_dir / "sft.jsonl", rows), "data": "sft.jsonl"}


def convert_dpo_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.convert.dpo import FIXED_USELESS_REPLY, dpo_rows
    from selfimprove.data.jsonl import write_jsonl
    from selfimprove.data.trajectory import read_trajectories

    attempts = read_trajectories(inputs["attempts"]) if "attempts" in inputs else []
    config = ConvertDpoParams(**params)
    rows = list(dpo_rows(read_trajectories(inputs["trajectories"]), attempts, config.metric, config.success,
                         config.first_step, config.fixed_reply or FIXED_USELESS_REPLY))
    return {"pairs": write_jsonl(stage_dir / "dpo.jsonl", rows), "data": "dpo.jsonl"}


def reference_examples(params: Params) -> tuple[Any, list[Any]]:
    """(task, examples) a reference_sft stage turns into SFT rows: its `task`'s `data`."""
    from selfimprove.tasks import get_task

    config = ReferenceSftParams(**params)
    task = get_task(config.task)
    return task, task.load(config.data)


def reference_sft_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.convert.reference import reference_sft_rows
    from selfimprove.data.jsonl import write_jsonl

    rows, counts = reference_sft_rows(*reference_examples(params))
    write_jsonl(stage_dir / "sft.jsonl", rows)
    return {"data": "sft.jsonl", **counts}


def has_checkpoint(stage_dir: Path) -> bool:
    """Whether a crashed training stage left a complete checkpoint to resume from."""
    return any(stage_dir.glob("checkpoint-*/trainer_state.json"))


def _train_stage(train_fn_path: str, params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.registry import import_target
    from selfimprove.train.config import TrainConfig
    config = dict(params)
    config["data"] = str(inputs["data"] / "sft.jsonl" if inputs["data"].is_dir() else inputs["data"])
    config["output_dir"] = str(stage_dir)
    config = with_start_adapter(config, inputs)
    summary = import_target(train_fn_path)(TrainConfig(**config), resume=has_checkpoint(stage_dir))
    return {"adapter": "adapter", "summary": _small(summary)}


def train_sft_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    return _train_stage("selfimprove.train.sft:train_sft", params, stage_dir, inputs)


def train_dpo_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    return _train_stage("selfimprove.train.dpo:train_dpo", params, stage_dir, inputs)


def train_grpo_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.train.grpo import GRPORunConfig, train_grpo

    config = with_start_adapter({**params, "output_dir": str(stage_dir)}, inputs)
    summary = train_grpo(GRPORunConfig(**config), resume=has_checkpoint(stage_dir))
    return {"adapter": "adapter", "summary": _small(summary)}


def rrr_experiment_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    from selfimprove.workflows.rrr.experiment import ExperimentConfig, run_experiment

    config = with_start_adapter({**params, "output_dir": str(stage_dir), "results": str(stage_dir / "results")}, inputs)
    config = ExperimentConfig(**config)
    result = run_experiment(config)
    return {"results": "results.md", "vanilla": _small(result["vanilla"]), "rrr_trained": _small(result["rrr_trained"])}


def compare_stage(params: Params, stage_dir: Path, inputs: Inputs) -> dict[str, Any]:
    """One comparison (markdown, JSON, plot) per metric, in `stage_dir/<metric>/`."""
    from selfimprove.eval.compare import compare_files

    config = CompareParams(**params)
    runs = [str(inputs[name]) for name in config.order or sorted(inputs)]
    reports = {}
    for metric in config.metrics:
        compare_files(runs, metric=metric, out=str(stage_dir / metric))
        reports[metric] = f"{metric}/compare.md"
    return {"reports": reports}


# kind -> (config class, the fields a stage fills in itself, TRL config class checking `trainer:`)
STAGE_CONFIGS: dict[str, tuple[str, dict[str, str], str | None]] = {
    "eval": ("selfimprove.eval.harness:EvalSettings", {"output_dir": "."}, None),
    "likelihood": ("selfimprove.eval.likelihood:LikelihoodSettings", {"output_dir": "."}, None),
    "distill": ("selfimprove.workflows.distill:DistillConfig", {"output_dir": "."}, None),
    "train_sft": ("selfimprove.train.config:TrainConfig", {"data": ".", "output_dir": "."}, "trl:SFTConfig"),
    "train_dpo": ("selfimprove.train.config:TrainConfig", {"data": ".", "output_dir": "."}, "trl:DPOConfig"),
    "train_grpo": ("selfimprove.train.grpo:GRPORunConfig", {"output_dir": "."}, "trl:GRPOConfig"),
    "rrr_experiment": ("selfimprove.workflows.rrr.experiment:ExperimentConfig", {"output_dir": ".", "results": "."},
                       "trl:GRPOConfig"),
    "convert_sft": (f"{__name__}:ConvertSftParams", {}, None),
    "convert_dpo": (f"{__name__}:ConvertDpoParams", {}, None),
    "reference_sft": (f"{__name__}:ReferenceSftParams", {}, None),
    "compare": (f"{__name__}:CompareParams", {}, None),
}


def check_params(kind: str, params: Params, where: str) -> None:
    """Validate a stage's params against its library config (and TRL's) without running anything."""
    from selfimprove.config import check_field_types, validate
    from selfimprove.registry import import_target
    from selfimprove.train.config import trainer_arguments

    if kind not in STAGE_CONFIGS:
        return
    model_path, filled, trl_path = STAGE_CONFIGS[kind]
    config = validate(import_target(model_path), {**params, **filled}, source=where)
    if kind == "reference_sft":
        from selfimprove.tasks import get_task

        get_task(config.task)  # an unknown task is refused now, not after earlier stages ran
    trainer = getattr(config, "trainer", None)
    if trl_path and trainer:
        trainer_arguments(import_target(trl_path), {}, trainer, source=f"{where}: trainer")
        check_field_types(import_target(trl_path), trainer, source=f"{where}: trainer")


def _small(summary: dict[str, Any]) -> dict[str, Any]:
    """Keep only scalar entries of a summary (manifests stay small and JSON-able)."""
    return {k: v for k, v in summary.items() if isinstance(v, str | int | float | bool | type(None))
            and len(json.dumps(v)) < 500}


STAGE_KINDS = Registry(
    "stage kind",
    {
        "eval": f"{__name__}:eval_stage",
        "likelihood": f"{__name__}:likelihood_stage",
        "distill": f"{__name__}:distill_stage",
        "convert_sft": f"{__name__}:convert_sft_stage",
        "convert_dpo": f"{__name__}:convert_dpo_stage",
        "reference_sft": f"{__name__}:reference_sft_stage",
        "train_sft": f"{__name__}:train_sft_stage",
        "train_dpo": f"{__name__}:train_dpo_stage",
        "train_grpo": f"{__name__}:train_grpo_stage",
        "rrr_experiment": f"{__name__}:rrr_experiment_stage",
        "compare": f"{__name__}:compare_stage",
    },
)
