"""The likelihood forgetting check: exact log-probs (batched = one at a time), resumable runs, compare, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.errors import UserError
from selfimprove.eval.compare import compare_files
from selfimprove.eval.likelihood import LikelihoodSettings, encode_pair, mean_logprobs, run_likelihood
from selfimprove.tasks import get_task

DATA = "generate:n=6,seed=3,min_nums=3,max_nums=3"


def load(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def pairs(tokenizer, n=4):
    task = get_task("countdown")
    examples = task.load(DATA)[:n]
    return [encode_pair(tokenizer, task.render(ex), task.reference_completion(ex)) for ex in examples]


def test_completion_tokens_are_the_assistant_turn_after_the_generation_prompt(tiny_model_dir):
    _, tokenizer = load(tiny_model_dir)
    task = get_task("countdown")
    example = task.load(DATA)[0]
    prompt_ids, completion_ids = encode_pair(tokenizer, task.render(example), task.reference_completion(example))
    full = tokenizer.apply_chat_template([*task.render(example), {"role": "assistant",
                                          "content": task.reference_completion(example)}], tokenize=False)
    assert full.endswith("<|im_end|>\n")  # ChatML writes a newline after the end of turn ...
    assert tokenizer.decode(prompt_ids + completion_ids) == full[:-1]  # ... which is never generated: not scored
    assert tokenizer.decode(completion_ids) == task.reference_completion(example) + "<|im_end|>"
    assert prompt_ids + completion_ids == tokenizer(full[:-1], add_special_tokens=False)["input_ids"]


def test_batched_log_probs_equal_one_sequence_at_a_time(tiny_model_dir):
    model, tokenizer = load(tiny_model_dir)
    batch = pairs(tokenizer)
    assert len({len(p) + len(c) for p, c in batch}) > 1  # padding is exercised
    batched = mean_logprobs(model, batch, pad_id=0)
    for (prompt, completion), got in zip(batch, batched, strict=True):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        expected = sum(float(logprobs[len(prompt) - 1 + i, token]) for i, token in enumerate(completion)) / len(completion)
        assert got == pytest.approx(expected, abs=1e-5)


def test_run_writes_records_resumes_and_refuses_other_settings(tiny_model_dir, tmp_path, monkeypatch):
    settings = LikelihoodSettings(task="countdown", data=DATA, model=str(tiny_model_dir), output_dir=str(tmp_path),
                                  batch_size=4, progress=False)
    summary = run_likelihood(settings)
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and len({r["example_id"] for r in rows}) == 6
    assert all(r["metrics"]["logprob"] < 0 and r["metrics"]["nll"] == -r["metrics"]["logprob"] for r in rows)
    assert summary["models"][str(tiny_model_dir)]["by_level"]["all"]["metrics"]["logprob"]["mean"] < 0
    monkeypatch.setattr("selfimprove.models.adapters.load_model_with_adapter",
                        lambda *a, **k: pytest.fail("a finished run must not load the model again"))
    again = run_likelihood(settings)
    assert again["models"] == summary["models"]
    assert len((tmp_path / "likelihood.jsonl").read_text().splitlines()) == 6
    with pytest.raises(UserError):
        run_likelihood(settings.model_copy(update={"limit": 3}))


def test_an_adapter_changes_the_numbers_and_compare_judges_the_change(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, _ = load(tiny_model_dir)
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(str(tmp_path / "adapter"))
    common = {"task": "countdown", "data": DATA, "model": str(tiny_model_dir), "progress": False}
    run_likelihood(LikelihoodSettings(**common, output_dir=str(tmp_path / "before")))
    run_likelihood(LikelihoodSettings(**common, adapter=str(tmp_path / "adapter"), output_dir=str(tmp_path / "after")))
    before = [json.loads(x)["metrics"]["logprob"] for x in (tmp_path / "before" / "records.jsonl").read_text().splitlines()]
    after = [json.loads(x)["metrics"]["logprob"] for x in (tmp_path / "after" / "records.jsonl").read_text().splitlines()]
    assert before != after
    text, _ = compare_files([str(tmp_path / "before"), str(tmp_path / "after")], metric="logprob")
    assert "| logprob | all |" in text and "| 6 |" in text
    from selfimprove.workflows.pipeline.before_after import write_before_after

    _, table = write_before_after(tmp_path, "before", "after")  # rows pair by model name, as for eval runs
    assert f"| {tiny_model_dir} | logprob |" in table


def test_a_task_without_references_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="has no reference answers"):
        run_likelihood(LikelihoodSettings(task="function_calling", data="bfcl:simple_python", limit=2,
                                          model=str(tiny_model_dir), output_dir=str(tmp_path), progress=False))


def test_cli_on_hotpotqa_closed_book(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(app, ["likelihood", "--task", "hotpotqa", "--closed-book", "--limit", "4",
                                      "--model", str(tiny_model_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "mean log-prob / token" in result.output
    rows = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["tokens"]["prompt"] < 1000 for r in rows)  # no paragraphs: closed book (with them: thousands)


def test_bad_task_options_and_closed_book_elsewhere_are_one_error_line(tiny_model_dir, tmp_path):
    refused = CliRunner().invoke(app, ["likelihood", "--task", "countdown", "--closed-book", "--model",
                                       str(tiny_model_dir), "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "only hotpotqa has paragraphs" in refused.output
    with pytest.raises(UserError, match="task countdown: task_options .* not accepted"):
        run_likelihood(LikelihoodSettings(task="countdown", task_options={"with_context": False}, model=str(tiny_model_dir),
                                          output_dir=str(tmp_path / "b"), progress=False))
