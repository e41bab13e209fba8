"""Ranks stay in lockstep in the token-level driver: 2 CPU processes (gloo), a collective generate.

Generation is a collective call in TRL's vLLM server mode (and colocate with tensor parallelism):
every rank must call it the same number of times. Here each rank's `generate` does an
`all_reduce`, rank 0's episode ends after one turn and rank 1's after three; the driver must make
rank 0 keep calling (with an empty batch) until rank 1 is done. Without lockstep, rank 1 would wait
on an all_reduce rank 0 never joins: the process group's timeout turns that into a failure here
rather than a hang.
"""

from __future__ import annotations

import datetime
import json

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

SCRIPTS = {0: ["<answer>Paris</answer>"],
           1: ["<search>France</search>", "<search>capital</search>", "<answer>Paris</answer>"]}


def _rank_main(rank: int, world: int, init_file: str, model_dir: str, out_dir: str) -> None:
    from transformers import AutoTokenizer

    from selfimprove.agent.formats import get_format
    from selfimprove.agent.search_env import SearchEnvironment, SearchTool
    from selfimprove.tools.base import Hit
    from selfimprove.train.rollouts import Lockstep, run_episodes, start_episode

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=30))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    class Searcher:
        def search(self, queries, k):
            return [[Hit("1", "Paris", "Paris is in France.", 1.0)] for _ in queries]

    fmt = get_format("xml")
    env = SearchEnvironment(fmt, fmt.prompt("Where?"), SearchTool(Searcher()), max_turns=4)
    episode = start_episode(env, tokenizer)
    calls: list[int] = []

    def generate(sequences, max_tokens, stops=None):
        dist.all_reduce(torch.ones(1))  # a collective, as vLLM server mode's gather/broadcast
        calls.append(len(sequences))
        turn = sum(1 for c in calls[:-1] if c)  # this rank's turns so far
        return [tokenizer.encode(SCRIPTS[rank][turn], add_special_tokens=False) for _ in sequences], None

    run_episodes([episode], generate, tokenizer, {tokenizer.eos_token_id}, Lockstep())
    with open(f"{out_dir}/rank{rank}.json", "w") as handle:
        json.dump({"calls": calls, "facts": env.facts().to_dict()}, handle)
    dist.barrier()  # both ranks done before the group goes (a rank leaving early can abort gloo's threads)
    dist.destroy_process_group()


def test_ranks_make_the_same_generate_calls(tiny_model_dir, tmp_path):
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tiny_model_dir), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["calls"] == [1, 0, 0]  # done after one turn, then empty batches in step with rank 1
    assert ranks[1]["calls"] == [1, 1, 1]
    assert ranks[0]["facts"]["num_turns"] == 1 and ranks[1]["facts"]["num_turns"] == 3
    assert ranks[1]["facts"]["queries"] == ["France", "capital"] and ranks[1]["facts"]["answered"]
