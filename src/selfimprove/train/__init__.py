"""Training layer: thin plumbing over TRL + PEFT for SFT and DPO (and the later GRPO).

`config` holds the YAML config models, `model_loading` loads a selfimprove model spec with a
LoRA adapter (QLoRA when asked and possible), `outputs` saves adapters, merged models and logs,
`sft` and `dpo` run the two trainers. Nothing here is imported by `selfimprove` at start-up:
torch, transformers, trl and peft are imported inside functions.
"""
