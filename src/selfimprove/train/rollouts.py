"""Multi-turn rollouts for GRPO: TRL's `rollout_func` with an `env_mask`, one token sequence per episode.

An episode is the prompt's token ids followed by ONE growing completion: model turns (the exact
token ids the policy sampled, never re-tokenised) interleaved with environment text (tool
results, a follow-up user message), tokenised once when it is appended. `env_mask` marks each
completion token 1 when it carries gradient, 0 when it does not: environment tokens are always
0, and a model turn is 0 when its environment says that turn is not trained (Reflect-Retry-
Reward's retry). TRL multiplies `env_mask` into the loss mask, so masked tokens get no gradient
and do not count towards completion lengths.

An `Environment` (one per episode) decides, after each model turn, what text comes next (or that
the episode ends), and which turns are trained; `fields()` returns extra per-episode values that
TRL forwards to the reward functions as keyword arguments. `SearchEnvironment` is the agent
loop of the `xml` format (Search-R1 `<search>` / `<information>` / `<answer>`).

A turn is generated with the trainer's own generation path (vLLM or transformers, its sampling
settings, `max_completion_length` tokens per turn); a turn that writes one of the environment's
stop strings is cut right after the token that completes it (a prefix of what was sampled, so
the kept ids are still exactly the generated ones).

The episode's end. TRL calls a completion truncated ("clipped", and zeroed by
`mask_truncated_completions`) when its last id is not an EOS or pad id. So a completion ends with
EOS exactly when the episode really ended: the model sampled EOS, or the environment says it
`finished()` at the format's own end (`</answer>`). In the latter case the EOS the model sampled
right after the stop string is kept with its logprob and trained; when it sampled something else,
the tokenizer's EOS is appended instead with mask 0 (it was never sampled, so it carries no gradient:
training it would push "stop here" up for right answers and down for wrong ones) and logprob NaN
(vLLM path; TRL 1.16 turns a NaN sampling logprob into importance ratio 1). The sampled text after
`</answer>` is dropped either way. An episode that ran out of turns, or whose last turn ran out of
tokens before closing its action (`agent.formats.parse_turn`: an unclosed `<answer>` is not an
answer), gets no EOS and stays clipped: "clipped" means only that. All other ids are exactly as
sampled, and every trained id was sampled.

Episode facts. `SearchEnvironment.fields()` returns, per episode, `num_searches: int`,
`num_parse_errors: int`, `answered: bool`, `num_turns: int` (model turns taken),
`hit_step_limit: bool` (`max_turns` ran out without an answer or EOS), `queries: list[str]` (in
order). Counts cover every model turn, the last one included (as the agent runner's
trajectories do), although a search on the last turn is not run. Not guaranteed: that the
decoded text of a whole completion equals the concatenated turn texts byte for byte (tokenizers
may merge spaces when decoding); rewards should read the facts, not re-parse that text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

NOT_SAMPLED = float("nan")  # logprob of an id the rollout adds at the episode's end (see the module doc)

GenerateFn = Callable[[list[list[int]]], tuple[list[list[int]], list[list[float]] | None]]


class Environment(Protocol):
    """What a multi-turn rollout asks its environment."""

    max_turns: int
    stop: tuple[str, ...]

    def trainable(self, turn: int) -> bool:
        """Whether the model's tokens at `turn` (0-based) carry gradient."""
        ...

    def respond(self, turn: int, text: str, ended: bool) -> str | None:
        """Text to append after model turn `turn` (`ended`: it stopped on EOS), or None to end the episode."""
        ...

    def fields(self) -> dict[str, Any]:
        """Extra per-episode values for the reward functions: at least the six episode facts (module doc)."""
        ...

    def finished(self) -> bool:
        """After `respond` returned None: whether the episode reached its format's own end (optional; absent = no)."""
        ...


@dataclass
class Episode:
    """One rollout: the prompt ids and one completion with its mask, built turn by turn."""

    prompt_ids: list[int]
    environment: Environment
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[list[int]] = field(default_factory=list)
    done: bool = False

    def add(self, ids: Sequence[int], trained: bool, logprobs: Sequence[float] | None = None) -> None:
        self.completion_ids += list(ids)
        self.env_mask += [int(trained)] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)


def cut_after_stop(tokenizer: Any, ids: list[int], stops: tuple[str, ...]) -> list[int]:
    """The shortest prefix of `ids` whose text contains a stop string (all of `ids` when none does)."""
    if not stops or not any(s in tokenizer.decode(ids) for s in stops):
        return ids
    for end in range(1, len(ids) + 1):
        if any(s in tokenizer.decode(ids[:end]) for s in stops):
            return ids[:end]
    return ids


def run_episodes(episodes: list[Episode], generate: GenerateFn, tokenizer: Any, eos_ids: set[int]) -> None:
    """Advance all episodes together, one batched generate call per turn, until each is done."""
    turn = 0
    while True:
        live = [e for e in episodes if not e.done and turn < e.environment.max_turns]
        if not live:
            break
        outputs, logprobs = generate([e.prompt_ids + e.completion_ids for e in live])
        for index, (episode, ids) in enumerate(zip(live, outputs, strict=True)):
            take_turn(episode, turn, list(ids), logprobs[index] if logprobs is not None else None, tokenizer, eos_ids)
        turn += 1
    for episode in episodes:
        episode.done = True


def take_turn(episode: Episode, turn: int, ids: list[int], logprobs: Sequence[float] | None, tokenizer: Any,
              eos_ids: set[int]) -> None:
    """Append one sampled turn (cut after a stop string), then the environment's reply or the episode's end."""
    environment = episode.environment
    kept = cut_after_stop(tokenizer, ids, environment.stop)
    trained = environment.trainable(turn)
    episode.add(kept, trained, logprobs[: len(kept)] if logprobs is not None else None)
    episode.turns.append(kept)
    ended = bool(kept) and kept[-1] in eos_ids
    reply = environment.respond(turn, tokenizer.decode(kept, skip_special_tokens=True), ended)
    if reply is not None:
        episode.add(tokenizer.encode(reply, add_special_tokens=False), trained=False)
        return
    episode.done = True
    finished = getattr(environment, "finished", None)
    if not ended and callable(finished) and finished():
        close_with_eos(episode, ids[len(kept):], logprobs[len(kept):] if logprobs is not None else None, trained,
                       eos_ids, tokenizer.eos_token_id)


def close_with_eos(episode: Episode, rest: list[int], rest_logprobs: Sequence[float] | None, trained: bool,
                   eos_ids: set[int], eos: int | None) -> None:
    """End a finished episode with EOS: the one sampled right after the cut (`rest[0]`), trained as sampled;
    else `eos` appended with no gradient (mask 0: it was never sampled, so it is not trained; TRL reads
    truncation from the last id alone, so the episode still counts as ended, not clipped)."""
    sampled = bool(rest) and rest[0] in eos_ids
    if sampled:
        closing, logprob = rest[0], rest_logprobs[0] if rest_logprobs else NOT_SAMPLED
    else:
        closing, logprob = eos if eos in eos_ids else min(eos_ids, default=None), NOT_SAMPLED
    if closing is None:
        return
    episode.add([closing], trained and sampled, [logprob])
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
    return {"rollout/turns_mean": sum(len(e.turns) for e in episodes) / max(len(episodes), 1),
            "rollout/masked_token_share": masked / total if total else 0.0}


# ---------------------------------------------------------------- the TRL side


def tokenize_prompt(tokenizer: Any, prompt: Any) -> list[int]:
    """Prompt ids: chat messages rendered with the generation prompt, or plain text encoded."""
    if isinstance(prompt, str):
        return tokenizer.encode(prompt, add_special_tokens=False)
    return list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False))


def trainer_generate(trainer: Any) -> GenerateFn:
    """Generate one continuation per sequence with the trainer's own backend and sampling settings."""
    def generate(sequences: list[list[int]]):
        completion_ids, logprobs = trainer._generate_single_turn(sequences, None, {}, 1)
        return [list(ids) for ids in completion_ids], logprobs

    return generate


def eos_token_ids(trainer: Any, tokenizer: Any) -> set[int]:
    ids = getattr(trainer, "eos_token_ids", None) or [tokenizer.eos_token_id]
    return {int(i) for i in ids if i is not None}


def make_rollout_func(environment_factory: Callable[[Any, Any], Environment]) -> Callable:
    """A TRL `rollout_func(prompts, trainer)`: one episode per prompt (TRL already repeats each prompt).

    `environment_factory(prompt, tokenizer)` builds the environment of one episode.
    """
    def rollout_func(prompts: list, trainer: Any) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        episodes = [Episode(tokenize_prompt(tokenizer, p), environment_factory(p, tokenizer)) for p in prompts]
        run_episodes(episodes, trainer_generate(trainer), tokenizer, eos_token_ids(trainer, tokenizer))
        log_metric = getattr(trainer, "_log_metric", None)
        for name, value in rollout_stats(episodes).items():
            if callable(log_metric):
                log_metric(name, value)
        with_logprobs = bool(getattr(trainer, "use_vllm", False))
        return rollout_output(episodes, with_logprobs)

    return rollout_func


# ---------------------------------------------------------------- the agent loop (xml format)


class SearchEnvironment:
    """The `xml` agent format as an environment: `<search>` turns answered with `<information>`.

    The episode ends on `<answer>` (`finished()`: the rollout closes it with EOS), on EOS, or after
    `max_turns` model turns (`hit_step_limit`). An unparseable turn is answered with "could not
    parse action: ..." (as the agent runner does) and counted.
    """

    stop = ("</search>", "</answer>")

    def __init__(self, searcher: Any, max_turns: int = 3, search_k: int = 2, max_observation_chars: int = 400):
        self.searcher, self.max_turns = searcher, max_turns
        self.search_k, self.max_observation_chars = search_k, max_observation_chars
        self.queries: list[str] = []
        self.parse_errors = self.turns = 0
        self.answered = self.hit_step_limit = False
        self.format = _xml_format()

    def trainable(self, turn: int) -> bool:
        return True

    def respond(self, turn: int, text: str, ended: bool) -> str | None:
        from selfimprove.agent.formats import parse_turn, xml_information

        self.turns = turn + 1
        parsed = parse_turn(self.format, text, ran_out=not ended)
        if parsed.action == "answer":
            self.answered = True
            return None
        if parsed.action == "search":
            self.queries.append(parsed.argument)
        else:
            self.parse_errors += 1
        if ended:
            return None
        if self.turns >= self.max_turns:
            self.hit_step_limit = True
            return None
        if parsed.action == "search":
            return xml_information(self.search(parsed.argument))
        return xml_information(f"could not parse action: {parsed.error}")

    def search(self, query: str) -> str:
        from selfimprove.agent.runner import format_hits

        return format_hits(self.searcher.search([query], self.search_k)[0], self.max_observation_chars)

    def finished(self) -> bool:
        return self.answered

    def fields(self) -> dict[str, Any]:
        return {"num_searches": len(self.queries), "num_parse_errors": self.parse_errors, "answered": self.answered,
                "num_turns": self.turns, "hit_step_limit": self.hit_step_limit, "queries": list(self.queries)}


def _xml_format():
    from selfimprove.agent.formats import get_format

    return get_format("xml")
