"""A fixed, hand-written set of trajectories for converter and metric tests (react format)."""

from __future__ import annotations

from selfimprove.agent.formats import react_step
from selfimprove.data.trajectory import Flags, Step, Trajectory


def step(index: int, thought: str, action: str, argument: str, observation: str | None = None,
         repeated: bool = False) -> Step:
    name = {"search": "Search", "answer": "Answer"}[action]
    return Step(index=index, text=react_step(thought, name, argument), thought=thought, action=action,
                argument=argument, observation=observation, repeated_query=repeated)


def invalid_step(index: int, text: str) -> Step:
    return Step(index=index, text=text, action="invalid", parse_error="no action found",
                observation="could not parse action: no action found")


def trajectory(example_id: str, attempt: int, steps: list[Step], f1: float, level: str = "easy") -> Trajectory:
    score = {"value": f1, "correct": f1 == 1.0, "breakdown": {"em": float(f1 == 1.0), "f1": f1}}
    final = steps[-1].argument if steps and steps[-1].action == "answer" else None
    return Trajectory(task="hotpotqa", example_id=example_id, attempt=attempt, question=f"Question {example_id}?",
                      gold="Paris", steps=steps, final_answer=final, score=score, level=level,
                      flags=Flags(finished=final is not None, step_limit=final is None), agent_format="react")


def sample_trajectories() -> tuple[list[Trajectory], list[Trajectory]]:
    """(kept, attempts): two successes, and for q1 a failed attempt that diverges at step 1."""
    q1_search = step(0, "I should look up the capital.", "search", "capital of France", "[France] Paris is the capital.")
    q1_good = trajectory("q1", 0, [q1_search, step(1, "It is Paris.", "answer", "Paris")], 1.0)
    q1_bad = trajectory("q1", 1, [q1_search, step(1, "Search again.", "search", "capital of France", "[France] ...",
                                                  repeated=True), invalid_step(2, "I give up")], 0.0)
    q2_good = trajectory("q2", 0, [
        step(0, "First find the river.", "search", "longest river", "[Nile] The Nile is long."),
        invalid_step(1, "Hmm"),
        step(2, "Now the city.", "search", "Nile city", "[Cairo] Cairo lies on the Nile."),
        step(3, "Answer.", "answer", "Cairo"),
    ], 1.0, level="hard")
    return [q1_good, q2_good], [q1_good, q1_bad, q2_good]
