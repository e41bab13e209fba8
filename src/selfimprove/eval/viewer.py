"""A static, self-contained HTML viewer for trajectory files (eval, agent run, distillation).

`write_viewer(paths, out)` reads JSONL files, turns each line into a small "episode" dict
(question, gold, answer, correct, score, level, type, flags, steps of thought / action /
observation) and writes ONE html file with inline CSS/JS and the episodes embedded as JSON.
Safety: model text is hostile, so the JSON is embedded with `<`, `>`, `&` and U+2028/9 escaped
(no `</script>` can close the block), the page builds the DOM with textContent only (never
innerHTML), and a Content-Security-Policy forbids any network access. It guarantees the page
renders what it is given; it does not validate the trajectory schema beyond the fields it reads
(unknown fields are ignored, missing ones shown as empty). Any text is writable (lone surrogates,
e.g. from a file name kept by surrogateescape, become U+FFFD: `selfimprove.data.jsonl.writable_text`).
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

from selfimprove.data.jsonl import read_jsonl, writable_text
from selfimprove.errors import DataError
from selfimprove.eval.viewer_page import SCRIPT, STYLE, TEMPLATE

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def embed_json(value: Any) -> str:
    """JSON that is safe inside a <script> element.

    >>> embed_json({"t": "</script><b>&"})
    '{"t": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e\\\\u0026"}'
    """
    text = json.dumps(value, ensure_ascii=False)
    return "".join(_JSON_ESCAPES.get(ch, ch) for ch in text)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _score(value: Any) -> float:
    """A finite score for the page (NaN, infinities and huge integers from a hostile file show as 0)."""
    try:
        number = float(value) if isinstance(value, int | float) else 0.0
    except OverflowError:
        return 0.0
    return round(number, 4) if math.isfinite(number) else 0.0


def episode_from_record(trajectory: dict[str, Any], source: str = "") -> dict[str, Any]:
    """One viewer episode from a trajectory dict (the shared schema; missing fields become empty)."""
    score = trajectory.get("score")
    score = score if isinstance(score, dict) else {"value": score}
    value = score.get("value")
    return {
        "id": _text(trajectory.get("example_id")), "model": _text(trajectory.get("model")),
        "attempt": trajectory.get("attempt"), "question": _text(trajectory.get("question")) or "",
        "gold": _text(trajectory.get("gold")) or "", "answer": _text(trajectory.get("final_answer")),
        "correct": bool(score.get("correct")),
        "score": _score(value),
        "level": _text(trajectory.get("level")) or "", "type": _text(trajectory.get("type")) or "",
        "flags": episode_flags(trajectory), "steps": [step_view(s) for s in _list(trajectory.get("steps"))],
        "reflection": _text(_dict(trajectory.get("meta")).get("reflection")), "source": source,
    }


def step_view(step: Any) -> dict[str, str | None]:
    """Thought / action / observation / raw text of one step, all as plain strings."""
    if not isinstance(step, dict):
        return {"raw": _text(step)}
    action = _text(step.get("action")) or ""
    if step.get("argument"):
        action = f"{action}[{_text(step['argument'])}]"
    error = step.get("parse_error") or ("repeated query" if step.get("repeated_query") else None)
    return {"thought": _text(step.get("thought")), "action": action, "observation": _text(step.get("observation")),
            "raw": _text(step.get("text")), "error": _text(error)}


def episode_flags(trajectory: dict[str, Any]) -> list[str]:
    """Behaviour flags from the trajectory's `flags` (as the agent loop wrote them)."""
    flags = _dict(trajectory.get("flags"))
    found = [label for key, label in (("repeated_queries", "repeated query"), ("parse_errors", "parse error"),
                                      ("step_limit", "step limit")) if flags.get(key)]
    if trajectory.get("final_answer") is None:
        found.append("no answer")
    return found


def build_viewer_html(records: list[dict[str, Any]], title: str = "Trajectories",
                      sources: list[str] | None = None) -> str:
    """The whole page as a string; `sources` labels each record (e.g. the file it came from)."""
    episodes = [episode_from_record(record, source) for record, source in
                zip(records, sources or [""] * len(records), strict=True)]
    values = {"STYLE": STYLE, "SCRIPT": SCRIPT, "TITLE": html.escape(title), "DATA": embed_json(episodes)}
    return re.sub(r"__(STYLE|SCRIPT|TITLE|DATA)__", lambda match: values[match.group(1)], TEMPLATE)


def write_viewer(paths: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Read trajectory/eval-record JSONL files and write the viewer page to `out`."""
    records: list[dict[str, Any]] = []
    sources: list[str] = []
    for path in paths:
        loaded = read_jsonl(path)
        records.extend(loaded)
        sources.extend([source_label(path)] * len(loaded))
    if not records:
        raise DataError(paths[0] if paths else "-", "no trajectories to show")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = title or ", ".join(source_label(p) for p in paths)
    out.write_text(writable_text(build_viewer_html(records, title, sources)), encoding="utf-8")
    return out


def source_label(path: str | Path) -> str:
    """The file's parent folder and stem, e.g. "smollm2-135m/repeat-0".

    >>> source_label("runs/eval/trajectories/smollm2-135m/repeat-0.jsonl")
    'smollm2-135m/repeat-0'
    """
    path = Path(path)
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
