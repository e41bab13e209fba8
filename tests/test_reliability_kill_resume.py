"""SIGKILL eval, failure-set building and a recipe at random points, many times; resume; check the records.

Each target (see reliability_entries.py) runs in a subprocess with a slow scripted model. A round
waits until the run has written something new, sleeps a random extra moment, then SIGKILLs it;
between some rounds the last line of a record file is torn (cut mid-line) as a crash mid-write
would leave it. A final uninterrupted run must then end with every expected key exactly once,
every line of every JSONL file parsing, and the run's outputs (records.jsonl, failures.jsonl,
manifests) consistent with the stored attempts. Distillation has its own kill test in
test_distill.py; here it runs as a recipe stage.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from selfimprove.data.jsonl import read_jsonl
from selfimprove.workflows.rrr.failures import select_failures

HERE = Path(__file__).parent
ROUNDS = 6
DELAY = "0.03"


def jsonl_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.jsonl"))


def line_count(out: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in jsonl_files(out))


def stage_done(folder: Path) -> bool:
    """A finished recipe stage is not re-run, so a crash cannot tear its files: leave them alone."""
    manifest = folder / "manifest.json"
    return manifest.exists() and json.loads(manifest.read_text()).get("status") == "done"


def tear_last_line(out: Path, rng: random.Random) -> bool:
    """Cut the last line of a random non-empty record file mid-way, as a torn write leaves it."""
    files = [p for p in jsonl_files(out) if p.stat().st_size > 2 and p.name not in ("records.jsonl", "failures.jsonl")
             and not stage_done(p.parent)]
    if not files:
        return False
    path = rng.choice(files)
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + rng.randint(1, len(data) - start - 1)])
    return True


def kill_at_random_points(target: str, out: Path, seed: int) -> int:
    """Run `target` ROUNDS times, SIGKILLing each once it made progress; returns the number of kills."""
    rng, kills = random.Random(seed), 0
    for _ in range(ROUNDS):
        before = line_count(out) if out.exists() else 0
        process = subprocess.Popen([sys.executable, str(HERE / "reliability_entries.py"), target, str(out), DELAY],
                                   cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while process.poll() is None and time.time() < deadline and (not out.exists() or line_count(out) <= before):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.25))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        if rng.random() < 0.5:
            tear_last_line(out, rng)
    return kills


def finish(target: str, out: Path) -> None:
    subprocess.run([sys.executable, str(HERE / "reliability_entries.py"), target, str(out), DELAY], cwd=HERE,
                   check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def assert_all_lines_parse(out: Path) -> None:
    for path in jsonl_files(out):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path}: torn last line left behind"
        read_jsonl(path)  # raises DataError on any corrupt line


def exactly_once(path: Path, key) -> Counter:
    counts = Counter(key(record) for record in read_jsonl(path))
    assert set(counts.values()) == {1}, f"{path}: duplicated keys {[k for k, n in counts.items() if n > 1]}"
    return counts


def trajectory_key(record: dict) -> tuple:
    return record["example_id"], record["attempt"]


def attempt_key(record: dict) -> tuple:
    return record["example_id"], record["attempt"]


@pytest.mark.parametrize("seed", [0])
def test_eval_agent_survives_kills(tmp_path, seed):
    out = tmp_path / "eval"
    assert kill_at_random_points("eval-agent", out, seed) >= ROUNDS - 2
    finish("eval-agent", out)
    assert_all_lines_parse(out)
    for repeat in (0, 1):
        counts = exactly_once(out / "trajectories" / "scripted" / f"repeat-{repeat}.jsonl", trajectory_key)
        assert len(counts) == 8 and {attempt for _, attempt in counts} == {0}
    rows = read_jsonl(out / "records.jsonl")
    assert Counter((r["repeat"], r["example_id"]) for r in rows).most_common(1)[0][1] == 1 and len(rows) == 16
    assert json.loads((out / "summary.json").read_text())["run"]["examples"] == 8


def test_eval_with_reflection_survives_kills(tmp_path):
    out = tmp_path / "eval"
    assert kill_at_random_points("eval-reflect", out, 1) >= ROUNDS - 2
    finish("eval-reflect", out)
    assert_all_lines_parse(out)
    stored = read_jsonl(out / "trajectories" / "scripted" / "repeat-0.jsonl")
    counts = exactly_once(out / "trajectories" / "scripted" / "repeat-0.jsonl", trajectory_key)
    firsts = {example for example, attempt in counts if attempt == 0}
    assert len(firsts) == 12
    failed_firsts = {t["example_id"] for t in stored if t["attempt"] == 0 and not t["score"]["correct"]}
    assert failed_firsts <= {example for example, attempt in counts if attempt == 1}, "a failed first try lost its retry"
    assert len(read_jsonl(out / "records.jsonl")) == 12


def test_failure_set_building_survives_kills(tmp_path):
    out = tmp_path / "failures"
    assert kill_at_random_points("failures", out, 2) >= ROUNDS - 2
    finish("failures", out)
    assert_all_lines_parse(out)
    counts = exactly_once(out / "attempts.jsonl", attempt_key)
    assert len(counts) == 12 * 3 and {a for _, a in counts} == {0, 1, 2}
    expected = select_failures(read_jsonl(out / "attempts.jsonl"), per_example=2)
    assert read_jsonl(out / "failures.jsonl") == expected and expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attempts"] == 36 and summary["failures_kept"] == len(expected)


def test_recipe_survives_kills(tmp_path):
    out = tmp_path / "recipe"
    assert kill_at_random_points("recipe", out, 3) >= ROUNDS - 2
    finish("recipe", out)
    assert_all_lines_parse(out)
    assert len(exactly_once(out / "distill" / "attempts.jsonl", trajectory_key)) == 8
    exactly_once(out / "distill" / "kept.jsonl", trajectory_key)
    assert len(exactly_once(out / "failures" / "attempts.jsonl", attempt_key)) == 36
    for stage in ("distill", "failures"):
        manifest = json.loads((out / stage / "manifest.json").read_text())
        assert manifest["status"] == "done", manifest
