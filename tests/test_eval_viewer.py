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
    assert json.loads(data)[1]["question"] == "Question " + HOSTILE
    assert "innerHTML" not in page


def test_embed_json_escapes_script_breakers():
    text = embed_json(["</script>", "a\u2028b", "&"])
    assert "<" not in text and "\u2028" not in text and "&" not in text
    assert json.loads(text) == ["</script>", "a\u2028b", "&"]


def test_episode_flags_and_steps_in_the_data(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in trajectories()) + "\n")
    page = write_viewer([path], tmp_path / "v.html").read_text()
    episodes = json.loads(re.search(r'id="viewer-data">(.*?)</script>', page, re.S).group(1))
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
    return dict(re.findall(r'(data-[a-z]+)="([^"]*)"', tag))


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


@needs_chromium
def test_page_renders_in_headless_chromium_without_errors(tmp_path):
    page = tmp_path / "viewer.html"
    page.write_text(build_viewer_html(trajectories(), title="viewer test"), encoding="utf-8")
    result = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert "Uncaught" not in result.stderr, result.stderr[-2000:]
    dom = result.stdout
    assert status_of(dom) == {"data-rendered": "2", "data-errors": "0", "data-total": "2"}
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
    broken = build_viewer_html(trajectories()).replace("var episodes = JSON.parse", "missingFunction(); var x = JSON.parse")
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
