"""Crash safety of append-only records: SIGKILL a writer at random points, many times, then resume.

Each round starts a subprocess that appends keyed records through `RecordStore` (resuming from
what is on disk) and kills it once the file has grown by a random number of bytes. At the end every key is present exactly once
and every line parses (a torn last line is repaired on open).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

WRITER = """
import sys
from selfimprove.data.jsonl import RecordStore
store = RecordStore(sys.argv[1], key=lambda r: [r["example_id"], r["attempt"]])
for i in range(int(sys.argv[2])):
    for attempt in range(2):
        if [f"ex{i}", attempt] not in store:
            store.append({"example_id": f"ex{i}", "attempt": attempt, "text": "x" * 2000})
"""


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path):
    path, total = tmp_path / "records.jsonl", 3000
    rng = random.Random(0)
    kills = 0
    for _ in range(12):
        start_size = path.stat().st_size if path.exists() else 0
        target = start_size + rng.randint(1, 900_000)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(total)])
        while proc.poll() is None and (not path.exists() or path.stat().st_size < target):
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    subprocess.run([sys.executable, "-c", WRITER, str(path), str(total)], check=True, timeout=120)
    lines = path.read_text(encoding="utf-8").splitlines()
    keys = [(r["example_id"], r["attempt"]) for r in map(json.loads, lines)]
    assert kills >= 10, "the writer should have been killed mid-run several times"
    assert len(keys) == len(set(keys)) == 2 * total
