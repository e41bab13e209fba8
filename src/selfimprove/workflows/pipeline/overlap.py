"""The train/eval overlap check of a recipe: nothing trains on what it is judged on.

`check_overlap(recipe)` resolves, without loading a model, the examples each stage trains on or
evaluates, with the SAME selection functions the stages run (`eval_examples`, `distill_examples`,
`load_examples`, `reference_examples`, `experiment_examples`), and compares them by the task's
content fingerprint (`tasks/fingerprint.py`). A training stage (train_sft, train_dpo, train_grpo,
rrr_experiment) trains on its own examples and on those of every stage it reads from, transitively
(distill -> convert_sft -> train_sft -> train_dpo ...). Every (training stage, evaluation stage)
pair is one `OverlapPair`; an evaluation set must also be distinct (no fingerprint twice).

A pair with shared examples, a training stage whose data the check cannot fingerprint (a plain
file path instead of another stage's output), or an evaluation set with repeats, is a violation
unless one of the stages involved sets `allow_overlap: true`; violations stop `selfimprove run`
before any stage runs (ConfigError, exit 2). `selfimprove run RECIPE --check` prints one line per
pair and exits 0 only when nothing overlaps at all (allowed or not). Not caught: paraphrased
duplicates (fingerprints are exact after normalisation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selfimprove.errors import ConfigError
from selfimprove.tasks.fingerprint import duplicate_ids, example_fingerprint
from selfimprove.workflows.pipeline.recipe import Recipe, Stage, is_stage_ref

TRAINING_KINDS = ("train_sft", "train_dpo", "train_grpo", "rrr_experiment")


@dataclass
class StageExamples:
    """The examples one stage uses in one role, by fingerprint (task-qualified) -> example id."""

    stage: str
    role: str
    ids: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


@dataclass
class OverlapPair:
    """One training stage against one evaluation stage."""

    train: str
    eval: str
    train_size: int
    eval_size: int
    shared_ids: list[str]
    allowed: bool
    unchecked: list[str]

    @property
    def violation(self) -> bool:
        """Shared examples, or training data the check cannot see, without `allow_overlap`."""
        return (bool(self.shared_ids) or bool(self.unchecked)) and not self.allowed

    def line(self) -> str:
        example = f" e.g. {', '.join(self.shared_ids[:3])}" if self.shared_ids else ""
        allowed = " (allow_overlap: true)" if self.allowed and self.shared_ids else ""
        unchecked = f" unchecked: {'; '.join(self.unchecked)}" if self.unchecked else ""
        return (f"train {self.train} ({self.train_size} examples) x eval {self.eval} ({self.eval_size} examples): "
                f"overlap={len(self.shared_ids)}{allowed}{example}{unchecked}")


@dataclass
class OverlapReport:
    pairs: list[OverlapPair]
    evaluations: list[StageExamples]
    allowed_stages: list[str]

    @property
    def duplicate_violations(self) -> list[StageExamples]:
        return [e for e in self.evaluations if e.duplicates and e.stage not in self.allowed_stages]

    @property
    def ok(self) -> bool:
        """Whether the run may go on (violations allowed by `allow_overlap` pass)."""
        return not any(p.violation for p in self.pairs) and not self.duplicate_violations

    @property
    def clean(self) -> bool:
        """Whether nothing overlaps at all: no shared or unchecked training data, no repeats (allowed or not)."""
        return (not any(p.shared_ids or p.unchecked for p in self.pairs)
                and not any(e.duplicates for e in self.evaluations))

    def lines(self) -> list[str]:
        found = [pair.line() for pair in self.pairs]
        for evaluation in self.evaluations:
            dup = evaluation.duplicates
            found.append(f"eval {evaluation.stage}: {len(evaluation.ids) + len(dup)} examples, "
                         f"duplicates={len(dup)}" + (f" e.g. {', '.join(dup[:3])}" if dup else ""))
        return found

    def warning(self) -> str | None:
        """The banner for reports of a recipe that was allowed to overlap (None when nothing overlaps)."""
        shared = [p for p in self.pairs if p.shared_ids] + [e for e in self.evaluations if e.duplicates]
        if not shared:
            return None
        details = "; ".join(p.line() if isinstance(p, OverlapPair) else f"eval {p.stage} repeats "
                            f"{len(p.duplicates)} examples" for p in shared)
        return f"WARNING: allow_overlap is set and training and evaluation data overlap: {details}"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "lines": self.lines(), "allowed_stages": self.allowed_stages,
                "pairs": [{"train": p.train, "eval": p.eval, "overlap": len(p.shared_ids),
                           "example_ids": p.shared_ids[:10], "allowed": p.allowed} for p in self.pairs]}


# ---------------------------------------------------------------- what each stage kind uses


def _eval_stage_examples(params: dict[str, Any]) -> list[tuple[str, Any, list]]:
    from selfimprove.eval.harness import EvalSettings, eval_examples

    return [("eval", *eval_examples(EvalSettings(**{**params, "output_dir": "."})))]


def _likelihood_stage_examples(params: dict[str, Any]) -> list[tuple[str, Any, list]]:
    from selfimprove.eval.likelihood import LikelihoodSettings, likelihood_examples

    return [("eval", *likelihood_examples(LikelihoodSettings(**{**params, "output_dir": "."})))]


def _distill_stage_examples(params: dict[str, Any]) -> list[tuple[str, Any, list]]:
    from selfimprove.workflows.distill import DistillConfig, distill_examples

    return [("train", *distill_examples(DistillConfig(**{**params, "output_dir": "."})))]


def _grpo_stage_examples(params: dict[str, Any]) -> list[tuple[str, Any, list]]:
    from selfimprove.train.grpo import GRPORunConfig, load_examples

    return [("train", *load_examples(GRPORunConfig(**{**params, "output_dir": "."})))]


def _reference_stage_examples(params: dict[str, Any]) -> list[tuple[str, Any, list]]:
    from selfimprove.workflows.pipeline.stages import reference_examples

    return [("train", *reference_examples(params))]


def _rrr_stage_examples(params: dict[str, Any]) -> list[tuple[str, Any, list]]:
    from selfimprove.workflows.rrr.experiment import ExperimentConfig, experiment_examples

    config = ExperimentConfig(**{**params, "output_dir": ".", "results": "."})
    task, train, evaluation = experiment_examples(config)
    return [("train", task, train), ("eval", task, evaluation)]


EXAMPLE_SOURCES: dict[str, Callable[[dict[str, Any]], list[tuple[str, Any, list]]]] = {
    "eval": _eval_stage_examples,
    "likelihood": _likelihood_stage_examples,
    "distill": _distill_stage_examples,
    "train_grpo": _grpo_stage_examples,
    "reference_sft": _reference_stage_examples,
    "rrr_experiment": _rrr_stage_examples,
}


def stage_examples(stage: Stage) -> dict[str, StageExamples]:
    """The stage's own examples by role ("train"/"eval"), fingerprinted (no model is loaded)."""
    found: dict[str, StageExamples] = {}
    source = EXAMPLE_SOURCES.get(stage.kind)
    for role, task, examples in source(dict(stage.params)) if source else []:
        entry = found.setdefault(role, StageExamples(stage.name, role))
        for example in examples:
            entry.ids.setdefault(f"{task.name}:{example_fingerprint(task, example)}", str(example.id))
        entry.duplicates += duplicate_ids(task, examples)
    for key, ref in stage.inputs.items():
        if not is_stage_ref(ref):
            found.setdefault("train", StageExamples(stage.name, "train")).unchecked.append(f"input '{key}' = {ref}")
    return found


# ---------------------------------------------------------------- the check


def _upstream(stage: Stage, by_name: dict[str, Stage]) -> list[Stage]:
    """The stages `stage` reads from, transitively (each once), itself first."""
    order, todo = [], [stage]
    while todo:
        current = todo.pop()
        if current in order:
            continue
        order.append(current)
        producers = (ref.partition(":")[0] for ref in current.inputs.values() if is_stage_ref(ref))
        todo += [by_name[name] for name in producers if name in by_name]
    return order


def _training_set(stage: Stage, by_name: dict[str, Stage], own: dict[str, dict[str, StageExamples]]) -> StageExamples:
    """What `stage` trains on: its own and every upstream stage's training examples, and the examples of
    any upstream EVALUATION stage (training on an eval run's trajectories is training on its questions)."""
    merged = StageExamples(stage.name, "train")
    for source in _upstream(stage, by_name):
        role = "eval" if source.kind == "eval" and source is not stage else "train"
        part = own[source.name].get(role)
        if part is not None:
            for key, example_id in part.ids.items():
                merged.ids.setdefault(key, example_id)
            merged.unchecked += part.unchecked
    if not merged.ids and not merged.unchecked:
        kinds = sorted({s.kind for s in _upstream(stage, by_name)})
        merged.unchecked.append(f"no training examples resolved (stage kinds: {', '.join(kinds)})")
    return merged


def check_overlap(recipe: Recipe) -> OverlapReport:
    """Every (training stage, evaluation stage) pair of the recipe with the examples they share."""
    by_name = {stage.name: stage for stage in recipe.stages}
    own: dict[str, dict[str, StageExamples]] = {}
    for stage in recipe.stages:
        own[stage.name] = stage_examples(stage)
    allowed = [stage.name for stage in recipe.stages if stage.allow_overlap]
    evaluations = [own[s.name]["eval"] for s in recipe.stages if "eval" in own[s.name]]
    pairs = []
    for stage in recipe.stages:
        if stage.kind not in TRAINING_KINDS:
            continue
        trained = _training_set(stage, by_name, own)
        for evaluation in evaluations:
            shared = [evaluation.ids[key] for key in evaluation.ids if key in trained.ids]
            pairs.append(OverlapPair(stage.name, evaluation.stage, len(trained.ids), len(evaluation.ids), shared,
                                     stage.name in allowed or evaluation.stage in allowed, trained.unchecked))
    return OverlapReport(pairs, evaluations, allowed)


def refuse_overlap(report: OverlapReport, recipe: Recipe) -> None:
    """Raise one ConfigError naming the first violation (both stages, the count, three example ids)."""
    for pair in report.pairs:
        if pair.violation and not pair.shared_ids:
            raise ConfigError(
                f"recipe {recipe.name}: stage '{pair.train}' trains on data the overlap check cannot fingerprint "
                f"({'; '.join(pair.unchecked)}); feed it from a recipe stage, or set allow_overlap: true on it")
        if pair.violation:
            raise ConfigError(
                f"recipe {recipe.name}: stage '{pair.train}' trains on {len(pair.shared_ids)} examples that stage "
                f"'{pair.eval}' evaluates (e.g. {', '.join(pair.shared_ids[:3])}); make the data disjoint, "
                "or set allow_overlap: true on one of the two stages")
    for evaluation in report.duplicate_violations:
        raise ConfigError(
            f"recipe {recipe.name}: stage '{evaluation.stage}' evaluates {len(evaluation.duplicates)} examples twice "
            f"(same fingerprint, e.g. {', '.join(evaluation.duplicates[:3])}); de-duplicate the data, "
            "or set allow_overlap: true on that stage")
