"""The token-level driver: environments (`agent.environment`) run inside TRL's `rollout_func`.

An episode is the prompt's token ids followed by ONE growing completion: model turns (the exact
token ids the policy sampled, never re-tokenised) interleaved with environment text, tokenised
once when it is appended. The environments are the same objects the text-level loop runs
(`agent.loop.drive_text`), called in the same order, so no observation, truncation, parse-error
or stop logic is written here.

- A turn is generated with the trainer's sampling settings, through the trainer's own generation
  path (`generation="trl"`: vLLM or transformers) or the project's cached decoder (`"cached"`, CPU
  only: prompt states shared by a group and kept across turns; `"auto"`, the default, picks it
  where it applies, see `train.cached_generate`), within the turn's budget (`TurnSpec.max_tokens`,
  default `max_completion_length`), then
  cut right after the token that completes one of the turn's stop strings (a prefix of what was
  sampled). The generate function is handed each row's stop strings: the cached decoder ends a row
  one token after its stop (the token `close` may train as the closing EOS; later ones are never
  read), TRL's path ignores them and samples to EOS or the budget; what is kept is the same. A turn
  that ended on EOS while its token sequence goes on loses that EOS (the text loop's prompt has none
  either), so the model sees the same text in training and in evaluation.
- After a turn, the environment text appended is exactly what the rendered conversation grew by:
  `render(messages after) = render(messages before) + turn text + environment text`, with the
  tokenizer's chat template (`models.transformers_backend.render_prompt`, the text loop's own
  renderer). A template that rewrites earlier turns breaks that and is refused with a clear error.
- `env_mask` marks each completion token 1 when it carries gradient: environment tokens are 0.
  A turn whose `TurnSpec.trained` is false (Reflect-Retry-Reward's retry) is a side turn: it is
  generated from the conversation rendered whole (exactly the text loop's prompt) and is not part
  of the completion; no trained turn may follow it.
- The episode's end. TRL calls a completion truncated ("clipped") when its last id is not an EOS
  or pad id. So a completion ends with EOS exactly when the episode really ended: the model sampled
  EOS, or the environment is `finished` (its format's own end, e.g. `</answer>`). In the latter
  case the EOS sampled right after the stop string is kept and trained; otherwise the tokenizer's
  EOS is appended with mask 0 and logprob NaN (never sampled, so never trained). An episode that
  ran out of turns, or whose last turn ran out of tokens, stays clipped.
- Ranks in lockstep. When generation is a collective call (TRL's vLLM server mode, vLLM colocate
  with tensor parallelism) every rank must make the same generate calls. Under torch.distributed
  with more than one process the driver agrees, before each turn, on whether any rank has a live
  episode and on the turn budgets in use; a rank without live episodes of a budget still makes
  that call with an empty batch.
- Episode facts: `environment.fields()` (at least `agent.environment.FACT_KEYS`) are returned as
  extra columns, which TRL forwards to reward functions as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from selfimprove.agent.environment import Environment, ModelTurn, TurnSpec, observe_all

NOT_SAMPLED = float("nan")  # logprob of an id the rollout adds at the episode's end (see the module doc)

# generate(sequences, max_tokens, stops=None) -> (completion ids, logprobs or None); `stops`: each row's stop
# strings, after which the function may end that row one token later (or ignore them: the driver cuts turns
# itself). The driver passes `stops` as the third argument: a function written for two arguments needs a third.
GenerateFn = Callable[..., tuple[list[list[int]], list[list[float]] | None]]
RolloutGeneration = Literal["trl", "cached", "auto"]  # the generation paths of a rollout (`rollout_generate`)


@dataclass
class Episode:
    """One rollout: the prompt ids and one completion with its mask, built turn by turn."""

    prompt_ids: list[int]
    environment: Environment
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[list[int]] = field(default_factory=list)
    side_turns: list[list[int]] = field(default_factory=list)

    def add(self, ids: Sequence[int], trained: bool, logprobs: Sequence[float] | None = None) -> None:
        self.completion_ids += list(ids)
        self.env_mask += [int(trained)] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)


def render(tokenizer: Any, messages: list[dict]) -> str:
    from selfimprove.models.transformers_backend import render_prompt

    return render_prompt(tokenizer, messages)


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def cut_after_stop(tokenizer: Any, ids: list[int], stops: tuple[str, ...]) -> list[int]:
    """The shortest prefix of `ids` whose text contains a stop string (all of `ids` when none does)."""
    if not stops or not any(s in tokenizer.decode(ids) for s in stops):
        return ids
    for end in range(1, len(ids) + 1):
        if any(s in tokenizer.decode(ids[:end]) for s in stops):
            return ids[:end]
    return ids


class Lockstep:
    """Agreement between ranks (torch.distributed with more than one process), or a no-op."""

    def __init__(self, enabled: bool | None = None):
        if enabled is None:
            import torch.distributed as dist

            enabled = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.enabled = enabled

    def union(self, keys: list[Any]) -> list[Any]:
        """Every rank's keys, merged and sorted (the local ones when not distributed)."""
        if not self.enabled:
            return sorted(set(keys), key=repr)
        import torch.distributed as dist

        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, sorted(set(keys), key=repr))
        return sorted({k for part in gathered for k in part}, key=repr)


def run_episodes(episodes: list[Episode], generate: GenerateFn, tokenizer: Any, eos_ids: set[int],
                 lockstep: Lockstep | None = None) -> None:
    """Advance all episodes together, one generate call per turn budget, until every environment is done."""
    lockstep = lockstep or Lockstep(False)
    while True:
        live = [e for e in episodes if not e.environment.done]
        specs = {id(e): e.environment.next_turn() for e in live}
        budgets = lockstep.union([_budget_key(spec) for spec in specs.values()])
        if not budgets:
            break
        for budget in budgets:
            group = [e for e in live if _budget_key(specs[id(e)]) == budget]
            take_turn(group, [specs[id(e)] for e in group], generate, budget[0], tokenizer, eos_ids)


def _budget_key(spec: TurnSpec) -> tuple[int | None, bool]:
    return (spec.max_tokens, spec.trained)


def take_turn(group: list[Episode], specs: list[TurnSpec], generate: GenerateFn, max_tokens: int | None,
              tokenizer: Any, eos_ids: set[int]) -> None:
    """One generate call for the group's turn, each turn read by its environment, tools batched, then the
    environment text appended (or the episode closed)."""
    before = [render(tokenizer, e.environment.messages()) for e in group]
    contexts = [context_ids(e, spec, text, tokenizer) for e, spec, text in zip(group, specs, before, strict=True)]
    outputs, logprobs = generate(contexts, max_tokens, [tuple(spec.stop) for spec in specs])
    calls, turn_texts = [], []
    for index, (episode, spec, ids) in enumerate(zip(group, specs, outputs, strict=True)):
        ids, lps = list(ids), logprobs[index] if logprobs is not None else None
        kept = cut_after_stop(tokenizer, ids, spec.stop)
        text = tokenizer.decode(kept, skip_special_tokens=True)
        ended = bool(kept) and kept[-1] in eos_ids
        ran_out = not ended and not any(s in text for s in spec.stop)
        calls.append(episode.environment.step(ModelTurn(text, ended, ran_out, len(contexts[index]), len(kept))))
        record_turn(episode, spec, kept, lps, ended, tokenizer)
        if episode.environment.done and spec.trained:
            close(episode, ids[len(kept):], lps[len(kept):] if lps is not None else None, ended, eos_ids, tokenizer)
        turn_texts.append(text)
    observe_all([e.environment for e in group], calls)
    for episode, spec, text, start in zip(group, specs, turn_texts, before, strict=True):
        if spec.trained and continues(episode):
            append_environment_text(episode, start + text, tokenizer)


def context_ids(episode: Episode, spec: TurnSpec, rendered: str, tokenizer: Any) -> list[int]:
    """What a turn is generated from: the episode's sequence, or (side turn) the conversation rendered whole."""
    if spec.trained:
        if episode.side_turns:
            raise RuntimeError("an environment asked for a trained turn after a side turn (TurnSpec.trained=False)")
        return episode.prompt_ids + episode.completion_ids
    return encode(tokenizer, rendered)


def record_turn(episode: Episode, spec: TurnSpec, kept: list[int], logprobs: Sequence[float] | None, ended: bool,
                tokenizer: Any) -> None:
    """Add a trained turn to the completion (dropping an EOS the sequence goes on after), or keep a side turn apart."""
    if not spec.trained:
        episode.side_turns.append(kept)
        return
    if ended and continues(episode):
        kept = kept[:-1]
    episode.add(kept, True, logprobs[: len(kept)] if logprobs is not None else None)
    episode.turns.append(kept)


def continues(episode: Episode) -> bool:
    """Whether the episode's sequence goes on: its environment wants another trained turn."""
    return not episode.environment.done and episode.environment.next_turn().trained


def append_environment_text(episode: Episode, shown: str, tokenizer: Any) -> None:
    """Append (mask 0) the text by which the rendered conversation grew after the model's turn `shown`."""
    after = render(tokenizer, episode.environment.messages())
    if not after.startswith(shown):
        raise RuntimeError("the chat template rewrites earlier turns of the conversation (the rendered episode does "
                           "not extend the text the model saw), so the episode cannot be one token sequence; use a "
                           "template that renders earlier turns unchanged")
    episode.add(encode(tokenizer, after[len(shown):]), trained=False)


def close(episode: Episode, rest: list[int], rest_logprobs: Sequence[float] | None, ended: bool, eos_ids: set[int],
          tokenizer: Any) -> None:
    """End a finished episode with EOS: the one sampled right after the cut (`rest[0]`), trained as sampled;
    else the tokenizer's EOS appended with no gradient (mask 0, logprob NaN). Unfinished episodes stay as they are."""
    if ended or not episode.environment.finished:
        return
    sampled = bool(rest) and rest[0] in eos_ids
    eos = tokenizer.eos_token_id
    closing = rest[0] if sampled else (eos if eos in eos_ids else min(eos_ids, default=None))
    if closing is None:
        return
    logprob = rest_logprobs[0] if sampled and rest_logprobs else NOT_SAMPLED
    episode.add([closing], sampled, [logprob])
    episode.turns[-1] = episode.turns[-1] + [closing]


def rollout_output(episodes: list[Episode], with_logprobs: bool) -> dict[str, Any]:
    """The dict TRL expects from a rollout_func, plus `env_mask` and the environments' fields."""
    output: dict[str, Any] = {
        "prompt_ids": [e.prompt_ids for e in episodes],
        "completion_ids": [e.completion_ids for e in episodes],
        "logprobs": [e.logprobs for e in episodes] if with_logprobs else None,
        "env_mask": [e.env_mask for e in episodes],
    }
    fields = [e.environment.fields() for e in episodes]
    for key in fields[0] if fields else {}:
        output[key] = [f[key] for f in fields]
    return output


def rollout_stats(episodes: list[Episode]) -> dict[str, float]:
    """Health numbers of one rollout batch: turns per episode and share of masked completion tokens."""
    total = sum(len(e.env_mask) for e in episodes)
    masked = sum(len(e.env_mask) - sum(e.env_mask) for e in episodes)
    return {"rollout/turns_mean": sum(len(e.turns) + len(e.side_turns) for e in episodes) / max(len(episodes), 1),
            "rollout/masked_token_share": masked / total if total else 0.0}


# ---------------------------------------------------------------- the TRL side


@contextmanager
def generation_budget(trainer: Any, max_tokens: int | None) -> Iterator[None]:
    """Let the trainer's generation path (transformers or vLLM) sample up to `max_tokens` tokens, then restore it."""
    if max_tokens is None:
        yield
        return
    slots = [(trainer, "max_completion_length"), (getattr(trainer, "generation_config", None), "max_new_tokens"),
             (getattr(trainer, "vllm_generation", None), "max_completion_length")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in slots
             if owner is not None and getattr(owner, name, None) is not None]
    kwargs = getattr(trainer, "generation_kwargs", None)
    kwarg = kwargs.get("max_new_tokens") if isinstance(kwargs, dict) else None
    if len(saved) < 2:
        raise RuntimeError("cannot set a turn's token budget on this trainer (no generation_config or "
                           "vllm_generation found); this TRL version is not supported")
    try:
        for owner, name, _ in saved:
            setattr(owner, name, max_tokens)
        if kwarg is not None:
            kwargs["max_new_tokens"] = max_tokens
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        if kwarg is not None:
            kwargs["max_new_tokens"] = kwarg


def trainer_generate(trainer: Any) -> GenerateFn:
    """Generate one continuation per sequence with the trainer's own backend and sampling settings.

    An empty batch is sent only where generation is collective (vLLM), so ranks stay in lockstep."""
    def generate(sequences: list[list[int]], max_tokens: int | None, stops: list[tuple[str, ...]] | None = None):
        if not sequences and not getattr(trainer, "use_vllm", False):
            return [], None
        with generation_budget(trainer, max_tokens):
            completion_ids, logprobs = trainer._generate_single_turn(sequences, None, {}, 1)
        return [list(ids) for ids in completion_ids], logprobs

    return generate


def check_generation(generation: str) -> None:
    """A rollout's generation path is one of `RolloutGeneration`'s names."""
    if generation not in get_args(RolloutGeneration):
        raise ValueError(f"rollout generation must be one of {get_args(RolloutGeneration)}, not {generation!r}")


def generates_cached(trainer: Any, generation: str) -> bool:
    """Whether `generation` ("trl", "cached" or "auto") means the cached decoder for this trainer: "cached" always
    (a config error where it does not apply), "auto" where it applies (`train.cached_generate.use_cached_generation`:
    CPU, one process, no vLLM, a plain decoder), "trl" never."""
    from selfimprove.train.cached_generate import use_cached_generation

    check_generation(generation)
    if generation == "trl":
        return False
    applies = use_cached_generation(trainer)
    if generation == "cached" and not applies:
        from selfimprove.errors import ConfigError

        raise ConfigError("rollout_generation: cached needs CPU, one process, no vLLM and a plain decoder model; "
                          "use trl (or auto)")
    return applies


def rollout_generate(trainer: Any, generation: str = "auto") -> GenerateFn:
    """The generation path of a rollout: "trl" (the trainer's own), "cached" (the project's cached decoder,
    `train.cached_generate`; an error where it does not apply) or "auto" (cached where it applies)."""
    from selfimprove.train.cached_generate import cached_generate

    return cached_generate(trainer) if generates_cached(trainer, generation) else trainer_generate(trainer)


def single_turn_rollout(generation: str = "auto") -> Callable:
    """A TRL `rollout_func` that does what TRL's own single-turn generation does, through `rollout_generate`:
    the prompts tokenised by TRL itself (`_tokenize_prompts`: its chat template, `chat_template_kwargs`, tools),
    one completion per prompt within `max_completion_length` (or `generation_kwargs.max_new_tokens`), ended by EOS;
    no environment, so no extra columns reach the rewards (they see exactly what TRL's path gives them)."""
    check_generation(generation)

    def rollout_func(prompts: list, trainer: Any) -> dict[str, Any]:
        tokenized, images, _ = trainer._tokenize_prompts(prompts)  # private, pinned by test_private_api_contract
        if images is not None:
            raise ValueError("single_turn_rollout: prompts with images need TRL's own generation (rollout_generation: trl)")
        prompt_ids = [list(ids) for ids in tokenized]
        completion_ids, logprobs = rollout_generate(trainer, generation)(prompt_ids, None)
        from selfimprove.train.cached_generate import release_states

        release_states(trainer)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}

    return rollout_func


def single_turn_rollout_func(trainer: Any, generation: str = "auto") -> Callable | None:
    """For a single-turn run (no environment): None (TRL generates as usual) unless `generation` means the cached
    decoder for this trainer (`generates_cached`); then `single_turn_rollout("cached")`."""
    return single_turn_rollout("cached") if generates_cached(trainer, generation) else None


def eos_token_ids(trainer: Any, tokenizer: Any) -> set[int]:
    ids = getattr(trainer, "eos_token_ids", None) or [tokenizer.eos_token_id]
    return {int(i) for i in ids if i is not None}


def start_episode(environment: Environment, tokenizer: Any) -> Episode:
    """An episode whose prompt ids are the environment's first conversation, encoded as the text loop encodes it."""
    return Episode(encode(tokenizer, render(tokenizer, environment.messages())), environment)


def make_rollout_func(environment_factory: Callable[[Any, Any], Environment], generation: str = "auto") -> Callable:
    """A TRL `rollout_func(prompts, trainer)`: one episode per prompt (TRL already repeats each prompt).

    `environment_factory(prompt, tokenizer)` builds the environment of one episode; `generation` picks
    the generation path (`rollout_generate`).
    """
    check_generation(generation)

    def rollout_func(prompts: list, trainer: Any) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        episodes = [start_episode(environment_factory(p, tokenizer), tokenizer) for p in prompts]
        run_episodes(episodes, rollout_generate(trainer, generation), tokenizer, eos_token_ids(trainer, tokenizer), Lockstep())
        from selfimprove.train.cached_generate import release_states

        release_states(trainer)  # the cached decoder's KV states are not needed in the loss phase
        for name, value in rollout_stats(episodes).items():
            trainer._log_metric(name, value)  # private, pinned by tests/test_private_api_contract.py
        return rollout_output(episodes, bool(getattr(trainer, "use_vllm", False)))

    return rollout_func
