"""Batched generation that reuses KV states across calls and drops finished rows as it goes.

`CachedDecoder.generate(prompts, params, stops)` generates for a batch of token-id prompts with
a plain transformers causal LM. What `model.generate` does not do, and an agent loop needs:
- prompts that extend sequences encoded before (the next turn of an episode, the few-shot
  system prompt every episode shares) take those states from a `PrefixKVStore` and only their
  new tokens are encoded; a prefix shared by the whole batch is encoded once;
- the states live in one preallocated buffer per batch (no concatenation per decoded token),
  rows are laid out `pad + reused prefix | pad + new tokens | generated`, masked where padded,
  with each row's own positions, so a row sees exactly what it would see alone;
- rows that hit EOS, a stop string or max tokens leave the batch once a quarter of it is done.

Sampling, as transformers' `generate` processes logits, in its order: repetition penalty (over
each row's prompt and generated ids), then greedy argmax (temperature 0) or temperature, top-k,
top-p and a draw (inverse CDF, see `draw`) from torch's global generator (the caller seeds it) or from the
`generator` given to `generate_tokens`. Only what `SamplingParams` says is applied (the model's own
`generation_config` sampling defaults are not read); EOS ids come from the model and tokenizer.

`generate_tokens(sequences, params, stops=...)` is the token-id entry point (RL rollouts): no chat
rendering; a row ends at EOS, at `max_tokens`, or ONE token after the token that completed one of
its own stop strings (`stops`, per row: the driver cuts the turn there and may train that next
token as the episode's closing EOS, so nothing it reads is lost); copies of one sequence in a batch
(a GRPO group) share the states of their common prompt, encoded once.

Not guaranteed: bit-identical logits to a batch of one (padding changes matmul shapes, so float
rounding may differ and, rarely, a greedy choice with it). The store is cleared when any weight
is modified in place (optimizer steps, `load_state_dict`); swapping adapters or modules without
touching weights is not detected: call `clear()`. Models whose cache is not plain full attention
(sliding windows, linear attention, KV sharing) are not supported: see `supports_cached_decoding`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from transformers import Cache, DynamicCache, DynamicLayer

from selfimprove.models.generator import SamplingParams
from selfimprove.models.kv_store import PrefixKVStore

MIN_SHARED_PREFIX = 32
COMPACT_WHEN_DONE = 0.25


def supports_cached_decoding(model: Any) -> bool:
    """True for decoder-only models with full-attention KV layers and an sdpa or eager attention."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    try:
        layers = DynamicCache(config=config).layers
    except Exception:  # noqa: BLE001 - an unusual config: fall back to model.generate
        return False
    parameters = inspect.signature(model.forward).parameters
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers) \
        and "logits_to_keep" in parameters and ("cache" in parameters or "past_key_values" in parameters)


def cache_argument(module: Any) -> str:
    """The keyword a model's forward takes its KV cache under: `cache` (transformers >= 5.x renamed it) or
    `past_key_values`."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Length of the prefix common to all prompts, leaving every prompt at least one token of its own.

    >>> shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6]])
    3
    >>> shared_prefix_length([[1, 2], [1, 2, 3]])
    1
    >>> shared_prefix_length([[7, 8, 9]])
    2
    """
    shortest = min(len(p) for p in prompts)
    length = 0
    while length < shortest - 1 and all(p[length] == prompts[0][length] for p in prompts):
        length += 1
    return length


def prefill_groups(lengths: list[int], ratio: float = 0.6) -> list[tuple[int, int]]:
    """Split lengths sorted longest first into runs `(first, end)`; a run ends before a length under
    `ratio` times the run's first.

    >>> prefill_groups([200, 180, 150, 90, 80, 10])
    [(0, 3), (3, 5), (5, 6)]
    """
    groups, first = [], 0
    for index, length in enumerate(lengths):
        if length < ratio * lengths[first]:
            groups.append((first, index))
            first = index
    return groups + [(first, len(lengths))]


@dataclass
class _Row:
    """One sequence of a batch: its prompt, how much of it came from the store, what it generated."""

    prompt: list[int]
    reused: int
    pieces: list[Any]
    generated: list[int] = field(default_factory=list)
    finish: str | None = None
    kv_end: int = 0  # first column past this row's valid states
    lookahead_stops: tuple[str, ...] = ()  # stop strings after which the row takes one more token (generate_tokens)
    stopped: bool = False  # a lookahead stop string is complete: the next token is the row's last

    @property
    def new(self) -> int:
        return len(self.prompt) - self.reused


class _BufferLayer(DynamicLayer):
    """One layer's slice of the batch buffer: `update` writes in place and returns views (no concatenation).

    Relies on DynamicLayer's internals (attributes, method signatures), pinned by tests/test_private_api_contract.py.
    """

    is_croppable = False

    def __init__(self, keys: Any, values: Any, length: int):
        super().__init__()
        self.buffer_keys, self.buffer_values, self.length = keys, values, length
        self.device, self.is_initialized = keys.device, True
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        end = self.length + key_states.shape[-2]
        self.buffer_keys[:, :, self.length:end] = key_states
        self.buffer_values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.buffer_keys[:, :, :end], self.buffer_values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        """Nothing to do: the buffer exists before the first update."""


class _Batch:
    """The KV buffer `[layers, 2, rows, heads, capacity, head_dim]` of the rows being generated."""

    def __init__(self, buffer: Any, mask: Any, positions: Any, length: int):
        self.buffer, self.mask, self.positions, self.length = buffer, mask, positions, length

    def cache(self, rows: slice, length: int) -> Any:
        """A transformers cache over `rows` (a slice, so the layers are views) holding `length` columns."""
        layers = [_BufferLayer(self.buffer[i, 0, rows], self.buffer[i, 1, rows], length)
                  for i in range(self.buffer.shape[0])]
        return Cache(layers=layers)

    def keep(self, rows: Any) -> _Batch:
        """A new batch with only `rows` (indices), copying just the filled columns."""
        buffer = self.buffer.new_zeros((*self.buffer.shape[:2], len(rows), *self.buffer.shape[3:]))
        buffer[:, :, :, :, : self.length] = self.buffer[:, :, rows, :, : self.length]
        return _Batch(buffer, self.mask[rows], self.positions[rows], self.length)


class CachedDecoder:
    """Generation over one model with a `PrefixKVStore` kept across calls (when `reuse`)."""

    def __init__(self, model: Any, tokenizer: Any, kv_cache_gib: float = 2.0, reuse: bool = True):
        self.model, self.tokenizer, self.reuse = model, tokenizer, reuse
        self.store = PrefixKVStore(max_tokens=int(kv_cache_gib * 2**30 / self._bytes_per_token()))
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.cache_kwarg = cache_argument(model)
        self._weights_version: int | None = None
        self.stats = {"reused_prompt_tokens": 0, "encoded_prompt_tokens": 0, "compactions": 0}

    def clear(self) -> None:
        self.store.clear()

    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 generator: torch.Generator | None = None,
                 lookahead_stops: list[tuple[str, ...]] | None = None) -> list[tuple[list[int], str]]:
        """For each prompt: (generated token ids incl. the EOS or stop-completing token, "stop"/"length")."""
        if lookahead_stops is not None and len(lookahead_stops) != len(prompts):
            raise ValueError(f"CachedDecoder: {len(lookahead_stops)} stop tuples for {len(prompts)} sequences")
        self._drop_store_if_weights_changed()
        with torch.inference_mode():
            self._encode_shared_prefix(prompts)
            self._encode_repeated_prompts(prompts)
            rows = [self._counted_row(p) for p in prompts]
            for row, stops in zip(rows, lookahead_stops or [()] * len(rows), strict=True):
                row.lookahead_stops = tuple(stop for stop in stops if stop)
            self._decode(rows, params, generator)
        self.store.evict()
        return [(row.generated, row.finish or "length") for row in rows]

    def generate_tokens(self, sequences: list[list[int]], params: SamplingParams,
                        generator: torch.Generator | None = None,
                        stops: list[tuple[str, ...]] | None = None) -> list[list[int]]:
        """One continuation per token-id sequence, in order: the generated ids up to and including the EOS
        that ended the row (nothing after it), at most `params.max_tokens`; with `stops` (one tuple per
        sequence), a row also ends one token after the token whose decoded text first holds one of its stop
        strings (the text decoded as `tokenizer.decode(ids)`, as the rollout driver cuts turns).
        `params.stop` and `n` are ignored."""
        if not sequences:
            return []
        if any(not sequence for sequence in sequences):
            raise ValueError("generate_tokens: every sequence needs at least one token")
        params = replace(params, stop=(), n=1)
        return [ids for ids, _ in self.generate([list(s) for s in sequences], params, generator, stops)]

    def _row(self, prompt: list[int]) -> _Row:
        """A row with the stored states of its prompt's longest stored prefix (one token left to feed)."""
        match = self.store.match(prompt, limit=len(prompt) - 1)
        return _Row(prompt=prompt, reused=match.length, pieces=match.pieces)

    def _counted_row(self, prompt: list[int]) -> _Row:
        row = self._row(prompt)
        self.stats["reused_prompt_tokens"] += row.reused
        self.stats["encoded_prompt_tokens"] += row.new
        return row

    def _encode_shared_prefix(self, prompts: list[list[int]]) -> None:
        """Encode the prefix common to the whole batch once (alone), so every row reuses it."""
        if len(prompts) < 2 or not self.reuse:
            return
        shared = shared_prefix_length(prompts)
        if shared - self.store.match(prompts[0], limit=shared).length < MIN_SHARED_PREFIX:
            return
        row = self._row(prompts[0][: shared + 1])
        batch = self._assemble([row], extra=0)
        self._prefill(batch, [row])
        self._store_row(batch, 0, row)

    def _encode_repeated_prompts(self, prompts: list[list[int]]) -> None:
        """Encode once (all but its last token, in one batch) each prompt that appears more than once
        (the `num_generations` copies of a GRPO prompt), so every copy reuses its states."""
        if not self.reuse:
            return
        counts: dict[tuple[int, ...], int] = {}
        for prompt in prompts:
            counts[tuple(prompt)] = counts.get(tuple(prompt), 0) + 1
        repeated = [list(p[:-1]) for p, count in counts.items() if count > 1 and len(p) > 1]
        rows = [self._row(p) for p in repeated if self.store.match(p).length < len(p)]
        if rows:
            self.stats["encoded_prompt_tokens"] += sum(r.new for r in rows)
            rows.sort(key=lambda r: -r.new)
            batch = self._assemble(rows, extra=0)
            self._prefill(batch, rows)
            for position, row in enumerate(rows):
                self._store_row(batch, position, row)

    def _decode(self, rows: list[_Row], params: SamplingParams, generator: torch.Generator | None = None) -> None:
        rows = sorted(rows, key=lambda r: -r.new)  # prefill groups rows of similar new lengths
        batch = self._assemble(rows, extra=params.max_tokens)
        live = list(range(len(rows)))
        logits = self._prefill(batch, rows)
        seen = _seen_ids([r.prompt for r in rows], logits.shape[-1], logits.device) if _penalised(params) else None
        for step in range(params.max_tokens):
            tokens = _sample(logits, params, seen, generator)
            if seen is not None:
                seen[torch.arange(len(live)), tokens.clamp(max=seen.shape[-1] - 1)] = True
            for index, token in zip(live, tokens.tolist(), strict=True):
                self._append(rows[index], token, params, batch.length, last=step == params.max_tokens - 1)
            if all(rows[i].finish for i in live):
                break
            before = live
            batch, live = self._maybe_compact(batch, rows, live)
            if seen is not None and live is not before:
                seen = seen[[before.index(i) for i in live]]
            feed = [[rows[i].generated[-1] if not rows[i].finish else self.pad_id] for i in live]
            logits = self._forward(batch, feed, slice(None), batch.length)
            batch.length += 1
        for position, index in enumerate(live):
            self._store_row(batch, position, rows[index])

    def _append(self, row: _Row, token: int, params: SamplingParams, columns: int, last: bool) -> None:
        if row.finish:
            return
        row.generated.append(token)
        row.kv_end = columns  # the states of everything before `token`
        if token in self.eos_ids or row.stopped or (params.stop and self._has_stop(row.generated, params.stop)):
            row.finish = "stop"
        elif last:
            row.finish = "length"
        elif row.lookahead_stops:
            text = self.tokenizer.decode(row.generated)  # as the rollout driver decodes a turn (`cut_after_stop`)
            row.stopped = any(stop in text for stop in row.lookahead_stops)

    def _has_stop(self, generated: list[int], stops: tuple[str, ...]) -> bool:
        """Whether the newest token completed a stop string (checked every token, so only the tail
        that could hold one is decoded)."""
        window = 2 * max(len(stop) for stop in stops) + 4
        text = self.tokenizer.decode(generated[-window:], skip_special_tokens=True)
        return any(stop and stop in text for stop in stops)

    def _maybe_compact(self, batch: _Batch, rows: list[_Row], live: list[int]) -> tuple[_Batch, list[int]]:
        """Drop finished rows (storing their states first) once enough of the batch is done."""
        finished = [p for p, i in enumerate(live) if rows[i].finish]
        if len(finished) < max(1, COMPACT_WHEN_DONE * len(live)):
            return batch, live
        for position in finished:
            self._store_row(batch, position, rows[live[position]])
        kept = [p for p in range(len(live)) if not rows[live[p]].finish]
        self.stats["compactions"] += 1
        return batch.keep(kept), [live[p] for p in kept]

    def _assemble(self, rows: list[_Row], extra: int) -> _Batch:
        """A zeroed buffer holding each row's reused states right-aligned in the reused region."""
        reused_width = max(r.reused for r in rows)
        capacity = reused_width + max(r.new for r in rows) + extra
        layers, heads, head_dim = self._kv_shape()
        device, dtype = self.model.device, self.model.dtype
        buffer = torch.zeros((layers, 2, len(rows), heads, capacity, head_dim), device=device, dtype=dtype)
        mask = torch.zeros((len(rows), capacity), dtype=torch.long, device=device)
        for index, row in enumerate(rows):
            column = reused_width - row.reused
            for piece in row.pieces:
                width = piece.shape[3]
                buffer[:, :, index, :, column:column + width] = piece
                column += width
            mask[index, reused_width - row.reused:reused_width] = 1
        positions = torch.tensor([r.reused for r in rows], device=device)
        return _Batch(buffer, mask, positions, reused_width)

    def _prefill(self, batch: _Batch, rows: list[_Row]) -> Any:
        """Encode every row's new tokens, ending at one column; rows (sorted by new length, longest
        first) go in groups of similar lengths, so little compute goes to padding."""
        width = max(r.new for r in rows)
        logits = []
        for first, end in prefill_groups([r.new for r in rows]):
            start = batch.length + width - rows[first].new
            tokens = [r.prompt[r.reused:] for r in rows[first:end]]
            logits.append(self._forward(batch, tokens, slice(first, end), start))
        batch.length += width
        return torch.cat(logits)

    def _forward(self, batch: _Batch, new_tokens: list[list[int]], rows: slice, start: int) -> Any:
        """Feed `rows` their new tokens (left-padded to one width) at column `start`; returns the
        logits of the last position."""
        width = max(len(t) for t in new_tokens)
        device = self.model.device
        ids = torch.tensor([[self.pad_id] * (width - len(t)) + t for t in new_tokens], device=device)
        new_mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in new_tokens], device=device)
        batch.mask[rows, start:start + width] = new_mask
        positions = (batch.positions[rows][:, None] + new_mask.cumsum(-1) - 1).clamp(min=0)
        batch.positions[rows] += new_mask.sum(-1)
        output = self.model(input_ids=ids, attention_mask=batch.mask[rows, :start + width], position_ids=positions,
                            use_cache=True, logits_to_keep=1, **{self.cache_kwarg: batch.cache(rows, start)})
        return output.logits[:, -1, :].float()

    def _store_row(self, batch: _Batch, position: int, row: _Row) -> None:
        """Insert the row's prompt and the generated tokens fed back so far (all but the last) into the store."""
        if not self.reuse:
            return
        end = row.kv_end if row.finish else batch.length
        tokens = row.prompt + row.generated[:-1]
        start = end - (len(tokens) - row.reused)
        self.store.insert(tokens, batch.buffer[:, :, position, :, start:end], start=row.reused)

    def _kv_shape(self) -> tuple[int, int, int]:
        config = self.model.config.get_text_config(decoder=True)
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return config.num_hidden_layers, heads, head_dim

    def _bytes_per_token(self) -> int:
        layers, heads, head_dim = self._kv_shape()
        return 2 * layers * heads * head_dim * self.model.dtype.itemsize

    def _drop_store_if_weights_changed(self) -> None:
        version = weights_version(self.model)
        if version != self._weights_version:
            self.store.clear()
            self._weights_version = version


def weights_version(model: Any) -> int:
    """The sum of the parameters' in-place version counters: it moves whenever any weight is written in place
    (an optimizer step, a merge). Private torch API, pinned by tests/test_private_api_contract.py."""
    return sum(p._version for p in model.parameters())


def _penalised(params: SamplingParams) -> bool:
    return params.repetition_penalty is not None and params.repetition_penalty != 1.0


def _seen_ids(sequences: list[list[int]], vocab_size: int, device: Any) -> Any:
    """A `[rows, vocab_size + 1]` mask of the ids each sequence holds (ids past the vocabulary land in the last
    column, which no logit reads, as in transformers' RepetitionPenaltyLogitsProcessor)."""
    seen = torch.zeros((len(sequences), vocab_size + 1), dtype=torch.bool, device=device)
    for row, sequence in enumerate(sequences):
        seen[row, torch.tensor(sequence, device=device).clamp(max=vocab_size)] = True
    return seen


def process_logits(logits: Any, params: SamplingParams, seen: Any = None) -> Any:
    """Logits as transformers' processors leave them, in their order: repetition penalty over the ids marked in
    `seen`, then (when sampling) temperature, top-k, top-p. Greedy applies only the penalty."""
    if seen is not None and _penalised(params):
        penalty = params.repetition_penalty
        penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
        logits = torch.where(seen[:, : logits.shape[-1]], penalised, logits)
    if params.temperature <= 0:
        return logits
    if params.temperature != 1.0:
        logits = logits / params.temperature
    if params.top_k:
        kth = torch.topk(logits, min(params.top_k, logits.shape[-1]))[0][..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        ordered, order = torch.sort(logits, descending=False)
        drop = ordered.softmax(-1).cumsum(-1) <= (1 - params.top_p)  # the smallest set reaching top_p stays
        drop[..., -1:] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


def _sample(logits: Any, params: SamplingParams, seen: Any = None, generator: torch.Generator | None = None) -> Any:
    """The next token of each row: argmax (temperature 0) or a draw from the softmax of the processed logits."""
    logits = process_logits(logits, params, seen)
    if params.temperature <= 0:
        return logits.argmax(-1)
    return draw(logits.softmax(-1), generator)


def draw(probs: Any, generator: torch.Generator | None = None) -> Any:
    """One id per row of `probs`, drawn by inverting its cumulative distribution with one uniform number per row.

    The same distribution as `torch.multinomial(probs, 1)` (never an id of probability 0: `right=True` skips the
    empty intervals of zeros, even for a uniform number of exactly 0), about 20x faster on a CPU for a 49k
    vocabulary, where multinomial's per-element random numbers cost more than a decode step's attention
    (batch 8: 7 ms vs ~0.3 ms here); the draws differ from multinomial's for the same seed. A row that is not
    finite or sums to 0 is an error, as in multinomial.
    """
    cumulative = probs.double().cumsum(-1)  # float64: a token's share of [0, total) is its probability to ~1e-16
    total = cumulative[:, -1:]
    if not bool(torch.isfinite(total).all() and (total > 0).all()):
        raise ValueError("draw: a row of probabilities is not finite or sums to 0")
    uniform = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device, dtype=torch.float64)
    ids = torch.searchsorted(cumulative, uniform * total, right=True)
    return ids.squeeze(-1).clamp(max=probs.shape[-1] - 1)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
