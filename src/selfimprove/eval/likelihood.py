"""How likely a model finds a task's reference answers: a forgetting check that works at any skill level.

A forgetting check evaluates the trained model on another task's held-out set before and after
training. Small models often score 0 on that other task both times (the embedded SmolLM2-135M
answers no function call and no closed-book HotpotQA question), and 0 -> 0 hides any damage. The
log-likelihood of the task's reference completions does not: per example, the mean log-probability
per token of `task.reference_completion(example)` (the verified answer, in the task's own output
format, closed by the tokenizer's end-of-turn token) given the task's prompt (`task.render`, the
model's chat template with the generation prompt). Training that damages what the model knew
lowers it; the paired bootstrap over the same examples (`report compare --metric logprob`, a
recipe's `compare` stage) says whether a change is more than noise.

`run_likelihood(settings)` writes, like an eval run, `records.jsonl` (one row per example:
`score` = exp(mean log-prob), the per-token probability's geometric mean; `metrics.logprob`,
`metrics.nll`; tokens), `summary.json` (`selfimprove.eval.summary`) and `summary.md`. Rows are
stored as they are computed (`likelihood.jsonl`), so a stopped run resumes without recomputing or
duplicating; a directory holding another run's settings is refused. Not guaranteed: that a task
without `reference_completion` can be used (refused), or that the numbers of two tokenizers are
comparable (compare one model family with itself).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import Field

from selfimprove.config import StrictModel
from selfimprove.errors import UserError

ROWS_FILE = "likelihood.jsonl"


class LikelihoodSettings(StrictModel):
    """One likelihood run: a model (optionally with an adapter) over a task's reference completions."""

    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    data: str | None = None
    limit: int | None = Field(None, ge=1)
    model: str
    adapter: str | None = None
    batch_size: int = Field(8, ge=1)
    output_dir: str
    overwrite: bool = False
    progress: bool = True


def likelihood_examples(settings: LikelihoodSettings) -> tuple[Any, list[Any]]:
    """(task, the examples this run scores): the task's source, the first `limit`."""
    from selfimprove.errors import ConfigError
    from selfimprove.tasks import get_task

    try:
        task = get_task(settings.task, **settings.task_options)
    except TypeError as exc:
        raise ConfigError(f"task {settings.task}: task_options {settings.task_options} not accepted ({exc})") from None
    return task, task.load(settings.data)[:settings.limit]


def reference_pairs(task: Any, examples: list[Any]) -> list[tuple[Any, list[dict[str, str]], str]]:
    """(example, prompt messages, reference completion) of every example whose reference the task's
    verifier accepts (`convert.reference.verified_references`, what reference SFT trains on)."""
    from selfimprove.convert.reference import verified_references

    kept, _ = verified_references(task, examples)
    return [(example, task.render(example), completion) for example, completion in kept]


def encode_pair(tokenizer: Any, prompt: list[dict[str, str]], completion: str) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids): the chat template's rendering of the prompt with the generation
    prompt, and the tokens the rendered assistant turn adds after it, up to and including its end of
    turn (the tokenizer's EOS; what a template writes after it, e.g. ChatML's newline, is never
    generated and not scored). The whole text is tokenized at once, and the prompt's ids must be its
    prefix (refused otherwise: a tokenizer that merges across the boundary would score other tokens)."""
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": completion}], tokenize=False)
    if not full_text.startswith(prompt_text):
        raise UserError("the chat template renders the assistant turn differently from its generation prompt; "
                        "the likelihood check cannot separate the completion")
    turn = full_text[len(prompt_text):]
    eos = tokenizer.eos_token
    if eos and eos in turn:
        turn = turn[:turn.rindex(eos) + len(eos)]
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt_ids, full_ids = encode(prompt_text), encode(prompt_text + turn)
    if full_ids[:len(prompt_ids)] != prompt_ids or len(full_ids) == len(prompt_ids):
        raise UserError("the tokenizer merges the prompt's last token with the answer's first; the likelihood "
                        "check cannot score the answer's tokens alone")
    return prompt_ids, full_ids[len(prompt_ids):]


def mean_logprobs(model: Any, batch: list[tuple[list[int], list[int]]], pad_id: int) -> list[float]:
    """The mean log-probability per completion token of each (prompt ids, completion ids) pair
    (right-padded batch on the model's device; the softmax only over each row's completion positions)."""
    import torch

    device = next(model.parameters()).device
    width = max(len(p) + len(c) for p, c in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (prompt, completion) in enumerate(batch):
        ids[row, :len(prompt) + len(completion)] = torch.tensor(prompt + completion)
        mask[row, :len(prompt) + len(completion)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    means = []
    for row, (prompt, completion) in enumerate(batch):
        start = len(prompt) - 1  # the logit at position t predicts token t + 1
        scores = torch.log_softmax(logits[row, start:start + len(completion)].float(), dim=-1)
        targets = torch.tensor(completion, device=scores.device)[:, None]
        means.append(float(scores.gather(-1, targets).mean()))
    return means


def likelihood_row(example: Any, model_name: str, prompt_ids: list[int], completion_ids: list[int],
                   mean_logprob: float) -> dict[str, Any]:
    """One eval-style record (`selfimprove.eval.records`) for an example's reference completion."""
    meta = example.meta or {}
    return {"model": model_name, "repeat": 0, "example_id": str(example.id), "level": meta.get("level"),
            "type": meta.get("type"), "answer": None, "score": math.exp(mean_logprob),
            "metrics": {"logprob": mean_logprob, "nll": -mean_logprob},
            "tokens": {"prompt": len(prompt_ids), "completion": len(completion_ids)}, "steps": 1, "wall_s": 0.0}


def run_likelihood(settings: LikelihoodSettings) -> dict[str, Any]:
    """Compute (or finish) every example's row and write records.jsonl, summary.json and summary.md."""
    from selfimprove.data.jsonl import RecordStore, read_jsonl, write_jsonl
    from selfimprove.eval.summary import summarize_run
    from selfimprove.run_dir import run_in

    task, examples = likelihood_examples(settings)
    pairs = reference_pairs(task, examples)
    if not pairs:
        raise UserError(f"task {settings.task}: no example of {settings.data or 'the bundled demo'} has a reference")
    out, name = Path(settings.output_dir), settings.model  # as eval names it: the adapter is a run setting
    run = settings.model_dump(exclude={"overwrite", "progress", "output_dir"})
    with run_in(out, "likelihood", run, settings.overwrite, owned=[ROWS_FILE, "records.jsonl", "summary.json",
                                                                    "summary.md"]):
        store = RecordStore(out / ROWS_FILE, key=lambda row: row["example_id"])
        todo = [pair for pair in pairs if str(pair[0].id) not in store]
        if todo:
            _score_pairs(settings, todo, name, store)
        wanted = {str(example.id) for example, _, _ in pairs}
        rows = [row for row in read_jsonl(out / ROWS_FILE) if row["example_id"] in wanted]
        write_jsonl(out / "records.jsonl", rows)
        summary = summarize_run(rows, {**run, "examples": len(pairs), "kind": "likelihood"})
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        (out / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
        return summary


def _score_pairs(settings: LikelihoodSettings, pairs: list, name: str, store: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from selfimprove.models.adapters import load_model_with_adapter

    model, tokenizer = load_model_with_adapter(settings.model, settings.adapter)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    encoded = [(example, *encode_pair(tokenizer, prompt, completion)) for example, prompt, completion in pairs]
    columns = (TextColumn("likelihood"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not settings.progress) as bar:
        job = bar.add_task("likelihood", total=len(encoded))
        for start in range(0, len(encoded), settings.batch_size):
            chunk = encoded[start:start + settings.batch_size]
            means = mean_logprobs(model, [(p, c) for _, p, c in chunk], pad_id)
            for (example, prompt_ids, completion_ids), mean in zip(chunk, means, strict=True):
                store.append(likelihood_row(example, name, prompt_ids, completion_ids, mean))
            bar.advance(job, len(chunk))


def summary_markdown(summary: dict[str, Any]) -> str:
    """The headline numbers of a likelihood run (mean log-prob per token, its per-token probability)."""
    run = summary.get("run", {})
    lines = [f"# Reference-answer likelihood: {run.get('task')} ({run.get('data') or 'bundled demo'})", "",
             "| model | adapter | examples | mean log-prob / token | token prob |", "|---|---|---:|---:|---:|"]
    for model, data in summary["models"].items():
        metrics = data["by_level"]["all"]["metrics"]
        lines.append(f"| {model} | {run.get('adapter') or '-'} | {data['records']} | {metrics['logprob']['mean']:.4f} "
                     f"| {metrics['score']['mean']:.4f} |")
    return "\n".join(lines) + "\n"
