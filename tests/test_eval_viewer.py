"""The HTML trajectory viewer: hostile model text stays text, and the page renders in headless
Chromium with no script errors (skipped when /usr/bin/chromium is absent; install it with
`apt-get install -y chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove.data.trajectory import Flags, Step, Trajectory
from selfimprove.eval.viewer import build_viewer_html, embed_json, episode_from_record, write_viewer

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
HOSTILE = '</script><script>document.title="pwned"</script><img src=x onerror="alert(1)">\u2028&amp;'


def trajectories() -> list[dict]:
    good = Trajectory("hotpotqa", "q-good", 0, "Which city is the capital of France?", "Paris",
                      steps=[Step(0, "Thought: search.\nAction: [action: Search, action_input: France]",
                                  "search.", "search", "France", observation="[France] Capital: Paris."),
                             Step(1, "Action: [action: Answer, action_input: Paris]", "", "answer", "Paris")],
                      final_answer="Paris", score={"value": 1.0, "correct": True, "breakdown": {"f1": 1.0}},
                      flags=Flags(finished=True), level="easy", type="bridge", model="m")
    bad = Trajectory("hotpotqa", "q-bad", 0, "Question " + HOSTILE, HOSTILE,
                     steps=[Step(0, HOSTILE, HOSTILE, "invalid", parse_error="no action " + HOSTILE,
                                 observation=HOSTILE)] * 2,
                     final_answer=None, score={"value": 0.0, "correct": False},
                     flags=Flags(parse_errors=2, step_limit=True), level="hard", type="comparison", model="m",
                     meta={"try": 2, "reflection": "I should search first " + HOSTILE})
    return [good.to_dict(), bad.to_dict()]


def embedded(page: str) -> dict:
    return json.loads(re.search(r'id="viewer-data">(.*?)</script>', page, re.S).group(1))


class ElementCounter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_hostile_text_cannot_close_the_data_block():
    page = build_viewer_html(trajectories(), title=HOSTILE)
    counter = ElementCounter()
    counter.feed(page)
    assert counter.tags.count("script") == 2 and "img" not in counter.tags
    assert "</script><script>" not in page.split("<body>", 1)[1].replace("</script>\n<script>", "")
    data = re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(data)["episodes"][1]["question"] == "Question " + HOSTILE
    assert "innerHTML" not in page


def test_embed_json_escapes_script_breakers():
    text = embed_json(["</script>", "a\u2028b", "&"])
    assert "<" not in text and "\u2028" not in text and "&" not in text
    assert json.loads(text) == ["</script>", "a\u2028b", "&"]


def test_episode_flags_and_steps_in_the_data(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in trajectories()) + "\n")
    page = write_viewer([path], tmp_path / "v.html").read_text()
    episodes = embedded(page)["episodes"]
    assert episodes[0]["steps"][0]["action"] == "search[France]"
    assert episodes[1]["flags"] == ["parse error", "step limit", "no answer"]
    assert episodes[0]["correct"] is True and episodes[1]["correct"] is False


def run_chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", *extra, url],
        capture_output=True, text=True, timeout=120, check=False)


def status_of(dom: str) -> dict[str, str]:
    tag = re.search(r'<span id="viewer-status"[^>]*>', dom).group(0)
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', tag))


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


@needs_chromium
def test_page_renders_in_headless_chromium_without_errors(tmp_path):
    page = tmp_path / "viewer.html"
    page.write_text(build_viewer_html(trajectories(), title="viewer test"), encoding="utf-8")
    result = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert "Uncaught" not in result.stderr, result.stderr[-2000:]
    dom = result.stdout
    assert status_of(dom) == {"data-rendered": "2", "data-errors": "0", "data-total": "2", "data-mode": "list"}
    body = dom.split('<main id="episodes">', 1)[1].split("</main>", 1)[0]
    assert body.count('<article class="episode') == 2
    assert "Which city is the capital of France?" in body and "[France] Capital: Paris." in body
    assert "Reflection before this retry" in body and "I should search first" in body
    assert "<img" not in body and "&lt;img src=x" in body  # model text rendered as text, never as markup
    assert "pwned" not in re.search(r"<title>(.*?)</title>", dom, re.S).group(1)


@needs_chromium
def test_fragment_filters_incorrect_hard_episodes(tmp_path):
    page = tmp_path / "viewer.html"
    page.write_text(build_viewer_html(trajectories()), encoding="utf-8")
    dom = run_chromium(tmp_path, page.as_uri() + "#correct=incorrect&flag=step%20limit", "--dump-dom").stdout
    assert status_of(dom)["data-rendered"] == "1"
    assert 'data-correct="0"' in dom and 'data-correct="1"' not in dom


@needs_chromium
def test_a_script_error_would_be_caught(tmp_path):
    broken = build_viewer_html(trajectories()).replace("var data = JSON.parse", "missingFunction(); var x = JSON.parse")
    page = tmp_path / "broken.html"
    page.write_text(broken, encoding="utf-8")
    result = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert "Uncaught" in result.stderr and status_of(result.stdout)["data-errors"] == "1"


@needs_chromium
def test_screenshot_is_a_png(tmp_path):
    page = tmp_path / "viewer.html"
    page.write_text(build_viewer_html(trajectories()), encoding="utf-8")
    shot = tmp_path / "shot.png"
    run_chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1000,800")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000


@settings(deadline=None, max_examples=60)
@given(st.dictionaries(st.sampled_from(["question", "score", "steps", "flags", "meta", "final_answer", "level"]),
                       st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(),
                                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner,
                                                                                                max_size=3),
                                    max_leaves=8)))
def test_any_json_record_becomes_an_episode_of_strings(record):
    episode = episode_from_record(record)
    json.dumps(episode)
    assert isinstance(episode["question"], str) and isinstance(episode["flags"], list)
    assert all(isinstance(v, str | type(None)) for step in episode["steps"] for v in step.values())


# --- aggregates on top and two runs side by side (`report view A.jsonl B.jsonl`) ---------------------------------
def episode(example_id: str, answer: str | None, gold: str, correct: bool, steps: list[Step], flags: Flags,
            question: str = "") -> dict:
    return Trajectory("hotpotqa", example_id, 0, question or f"Question {example_id}?", gold, steps=steps,
                      final_answer=answer, score={"value": float(correct), "correct": correct}, flags=flags,
                      level="easy", model="m").to_dict()


def answer(text: str) -> list[Step]:
    return [Step(0, f"Action: [action: Answer, action_input: {text}]", "", "answer", text)]


UNPARSED = Step(0, "??? " + HOSTILE, action="invalid", parse_error="no action")


def run_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A: 3 episodes (q1 right, q2 two parse errors and no answer, q3 only in A); B: 4 episodes (q1 wrong after one
    parse error, q2 right, q4 only in B, and a record that is not a trajectory, shown but left out of the figures)."""
    a = [episode("q1", "Paris", "Paris", True, answer("Paris"), Flags(finished=True), "Capital of France?"),
         episode("q2", None, "Madrid", False, [UNPARSED, UNPARSED], Flags(parse_errors=2, step_limit=True)),
         episode("q3", "x", "y", False, answer("x"), Flags(finished=True))]
    b = [episode("q1", "Lyon " + HOSTILE, "Paris", False, [UNPARSED, *answer("Lyon")],
                 Flags(parse_errors=1, finished=True), "Capital of France?"),
         episode("q2", "Madrid", "Madrid", True, answer("Madrid"), Flags(finished=True)),
         episode("q4", "z", "z", True, answer("z"), Flags(finished=True)),
         {"example_id": "loose", "final_answer": "not the trajectory schema"}]
    paths = tmp_path / "run-a.jsonl", tmp_path / "run-b.jsonl"
    for path, records in zip(paths, (a, b), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return paths


# figure -> (A, B, B - A) for run_pair, worked out by hand
EXPECTED_FIGURES = {
    "episodes": ("3", "4", "+1"), "answered": ("66.7%", "100.0%", "+33.3 pts"), "correct": ("33.3%", "66.7%", "+33.3 pts"),
    "mean_score": ("0.333", "0.667", "+0.333"), "parse_errors": ("2", "1", "-1"),
    "parse_errors_per_episode": ("0.667", "0.333", "-0.333"), "episodes_with_parse_error": ("33.3%", "33.3%", "+0.0 pts"),
    "turns_per_episode": ("1.333", "1.333", "+0.000"), "skipped": ("0", "1", "+1"),
}


def test_two_files_give_figures_per_run_and_rows_per_shared_question(tmp_path):
    page = write_viewer(list(run_pair(tmp_path)), tmp_path / "v.html").read_text(encoding="utf-8")
    data = embedded(page)
    assert data["mode"] == "compare" and data["runs"] == [f"{tmp_path.name}/run-a", f"{tmp_path.name}/run-b"]
    assert {row["key"]: (*row["cells"], row["diff"]) for row in data["figures"]} == EXPECTED_FIGURES
    ids = [episode["id"] for episode in data["episodes"]]
    assert [(p["id"], [ids[i] for i in p["a"]], [ids[i] for i in p["b"]]) for p in data["pairs"]] == [
        ("q1", ["q1"], ["q1"]), ("q2", ["q2"], ["q2"])]
    assert [ids[i] for i in data["only_a"]] == ["q3"] and [ids[i] for i in data["only_b"]] == ["q4", "loose"]


def test_several_files_keep_the_list_with_figures_per_file(tmp_path):
    a, b = run_pair(tmp_path)
    page = write_viewer([a, b, a], tmp_path / "v.html").read_text(encoding="utf-8")
    data = embedded(page)
    assert data["mode"] == "list" and "pairs" not in data and len(data["episodes"]) == 10
    assert data["runs"][2] == data["runs"][0] + " (2)"
    correct = next(row for row in data["figures"] if row["key"] == "correct")
    assert correct["cells"] == ["33.3%", "66.7%", "33.3%"] and "diff" not in correct
    two = embedded(write_viewer([a, b], tmp_path / "w.html", compare=False).read_text(encoding="utf-8"))
    assert two["mode"] == "list" and len(two["runs"]) == 2


def test_cli_compare_needs_exactly_two_files(tmp_path):
    from typer.testing import CliRunner

    from selfimprove.cli import app

    a, b = run_pair(tmp_path)
    result = CliRunner().invoke(app, ["report", "view", str(a), str(b), str(a), "--compare", "--out",
                                      str(tmp_path / "v.html")])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "error: --compare needs exactly two trajectory files, got 3"]
    assert not (tmp_path / "v.html").exists()
    (tmp_path / "empty.jsonl").write_text("")
    result = CliRunner().invoke(app, ["report", "view", str(a), str(tmp_path / "empty.jsonl")])
    assert result.exit_code == 2 and "empty.jsonl: no trajectories to compare" in result.stderr
    result = CliRunner().invoke(app, ["report", "view", str(a), str(b), "--out", str(tmp_path / "v.html")])
    assert result.exit_code == 0 and embedded((tmp_path / "v.html").read_text(encoding="utf-8"))["mode"] == "compare"


def figures_in_dom(dom: str) -> dict[str, tuple[str, ...]]:
    table = re.search(r'<section id="aggregates">(.*?)</section>', dom, re.S).group(1)
    return {key: tuple(re.findall(r'<td[^>]*data-run="[^"]*"[^>]*>([^<]*)</td>', row))
            for key, row in re.findall(r'<tr data-metric="([a-z_]+)">(.*?)</tr>', table, re.S)}


@needs_chromium
def test_compare_page_in_chromium_shows_figures_and_both_columns(tmp_path):
    write_viewer(list(run_pair(tmp_path)), tmp_path / "v.html")
    result = run_chromium(tmp_path, (tmp_path / "v.html").as_uri(), "--dump-dom")
    assert "Uncaught" not in result.stderr, result.stderr[-2000:]
    dom = result.stdout
    assert status_of(dom) == {"data-mode": "compare", "data-rows": "2", "data-only-a": "1", "data-only-b": "2",
                              "data-rendered": "7", "data-total": "7", "data-errors": "0"}
    assert figures_in_dom(dom) == EXPECTED_FIGURES
    pairs = re.findall(r'<section class="pair" data-id="(q\d)">(.*?)</section>', dom, re.S)
    assert [pair_id for pair_id, _ in pairs] == ["q1", "q2"]
    for _, body in pairs:
        columns = re.findall(r'<div class="side side-([ab])" data-side="[AB]"><div class="side-head">([^<]*)</div>'
                             r'<article class="episode', body)
        assert [side for side, _ in columns] == ["a", "b"]
    q1 = pairs[0][1]
    assert "A: " in q1 and "score 1 · 1/1 correct" in q1 and "score 0 · 0/1 correct" in q1
    assert q1.index("answer: Paris") < q1.index('data-side="B"') < q1.index("answer: Lyon")
    only = dom.split('<section class="only" id="only-a">', 1)[1]
    assert "Question q3?" in only.split('id="only-b"')[0] and "Question q4?" in only.split('id="only-b"')[1]
    assert "<img" not in dom and "&lt;img src=x" in dom


def screenshot(tmp_path: Path, page: Path, width: int = 1200, height: int = 1000):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    run_chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", f"--window-size={width},{height}",
                 "--hide-scrollbars")
    return imread(shot)[:, :, :3]  # floats in [0, 1], rows x columns x RGB


def colour_mask(pixels, rgb: tuple[int, int, int]):
    return (abs(pixels * 255 - rgb) <= 3).all(axis=2)


SIDE_A, SIDE_B = (0xCF, 0xE0, 0xFF), (0xFF, 0xD6, 0xEA)  # the column heads' backgrounds in viewer_page.STYLE


@needs_chromium
def test_compare_screenshot_shows_two_columns_side_by_side(tmp_path):
    write_viewer(list(run_pair(tmp_path)), tmp_path / "v.html")
    pixels = screenshot(tmp_path, tmp_path / "v.html")
    height, width = pixels.shape[:2]
    assert pixels.std() > 0.05  # not blank
    a_rows, a_cols = colour_mask(pixels, SIDE_A).nonzero()
    b_rows, b_cols = colour_mask(pixels, SIDE_B).nonzero()
    assert len(a_rows) > 2000 and len(b_rows) > 2000  # both column heads drawn
    assert a_cols.max() < width / 2 < b_cols.min()  # A on the left, B on the right
    shared = sorted(set(a_rows) & set(b_rows))
    assert len(shared) >= 15  # the heads of one question sit on the same rows
    below = pixels[shared[-1] + 5:shared[-1] + 60]  # the first episode card under each head
    assert (below[:, : width // 2].min(axis=2) < 0.4).sum() > 100  # dark text on the left...
    assert (below[:, width // 2:].min(axis=2) < 0.4).sum() > 100  # ...and on the right
    assert shared[0] > 0 and height > shared[-1]


def test_figures_count_a_hostile_score_as_zero(tmp_path):
    records = [episode(str(i), "a", "a", True, answer("a"), Flags(finished=True)) for i in range(4)]
    for record, value in zip(records, [10 ** 400, float("nan"), "1.0", 1.0], strict=True):
        record["score"] = {"value": value, "correct": True, "breakdown": {"f1": "not a number"}}
    page = build_viewer_html(records, sources=["run"] * 4)
    figures = {row["key"]: row["cells"] for row in embedded(page)["figures"]}
    assert figures["mean_score"] == ["0.250"] and figures["correct"] == ["100.0%"] and "skipped" not in figures
    assert "NaN" not in page and "Infinity" not in page


@needs_chromium
def test_compare_fragment_keeps_the_rows_where_b_scores_higher(tmp_path):
    write_viewer(list(run_pair(tmp_path)), tmp_path / "v.html")
    dom = run_chromium(tmp_path, (tmp_path / "v.html").as_uri() + "#rows=b-better", "--dump-dom").stdout
    assert status_of(dom)["data-rows"] == "1"
    assert re.findall(r'<section class="pair" data-id="(q\d)">', dom) == ["q2"]
