"""A distillation run with a slow scripted teacher, for the kill-and-resume test (run as a script).

Usage: python distill_entry.py OUT_DIR [SECONDS_PER_REPLY]. Example i answers at turn i % 4, so
trajectories finish over several turns; the answer is right for even i and wrong for odd i.
"""

from __future__ import annotations

import sys
import time

from selfimprove.agent import AgentSettings
from selfimprove.models.scripted import ScriptedGenerator
from selfimprove.tools.base import Hit
from selfimprove.workflows.distill import DistillConfig, distill


class EchoSearcher:
    name = "echo"

    def search(self, queries, k):
        return [[Hit("1", "T", f"about {q}", 1.0)] for q in queries]


def teacher(examples, delay: float) -> ScriptedGenerator:
    answers = {e.question: (i, e.answer if i % 2 == 0 else "wrong") for i, e in enumerate(examples)}

    def script(conversation, sample):
        time.sleep(delay)
        text = "\n".join(m["content"] for m in conversation[1:])  # question + the ReAct scratchpad (prefill)
        index, answer = answers[text.split("\n", 1)[0].removeprefix("Question: ")]
        turn = text.count("Observation:")
        if turn < index % 4:
            return f"Thought: step {turn}\nAction: [action: Search, action_input: q{index} t{turn} s{sample}]"
        return f"Thought: done\nAction: [action: Answer, action_input: {answer}]"

    return ScriptedGenerator(script)


def main(out: str, delay: float) -> None:
    from selfimprove.tasks import get_task

    config = DistillConfig(output_dir=out, limit=8, metric="f1", threshold=1.0,
                           agent=AgentSettings(attempts=2, temperature=0.7, progress=False))
    examples = get_task("hotpotqa").load(None)[:8]
    distill(config, generator=teacher(examples, delay), searcher=EchoSearcher())


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
