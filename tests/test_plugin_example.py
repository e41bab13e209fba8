"""The example plugin package (examples/selfimprove-plugin-example) installs and its names work.

The package is pip-installed (offline, no dependencies, no build isolation) into a temporary
directory, never into the test virtualenv, and every check runs the `selfimprove` CLI in a
subprocess whose `sys.path` holds that directory: the task, the reward and the environment are
found through their entry points (`selfimprove.tasks`, `selfimprove.rewards`,
`selfimprove.environments`), with no `--allow-import` for the plugin. Only the scripted model,
which stands in for a real one, is allowed by path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "selfimprove-plugin-example"

SCRIPT = '''
def reverse_some(conversation, index):
    """Reverses words of odd length, repeats the others (3 of the 8 bundled words are right)."""
    word = conversation[-1]["content"].split("'")[1]
    return "<answer>" + (word[::-1] if len(word) % 2 else word) + "</answer>"


def lines_agent(conversation, index):
    """One search, then an answer, in the `lines` environment's protocol."""
    if conversation[-1]["content"].startswith("Results:"):
        return "ANSWER: a spirit\\n"
    return "SEARCH: " + conversation[-1]["content"].removeprefix("Question: ")[:60] + "\\nignored"
'''

ROWS = [
    {"completion": "<answer>desserts</answer>", "label": True, "word": "stressed"},
    {"completion": [{"role": "assistant", "content": "<answer>reward</answer>"}], "label": True, "word": "drawer"},
    {"completion": "<answer>stressed</answer>", "label": False, "word": "stressed"},
    {"completion": "I think it is drawer", "label": False, "word": "drawer"},
]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, object]:
    """Install the example into a temporary target; return the run directory and the environment."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(source)], check=True, timeout=300)
    (root / "si_plugin_script.py").write_text(SCRIPT, encoding="utf-8")
    (root / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(root)]), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    env.pop("SELFIMPROVE_ALLOW_IMPORT", None)
    return {"root": root, "env": env}


def selfimprove(plugin_env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfimprove", *args], cwd=plugin_env["root"], env=plugin_env["env"],
                          capture_output=True, text=True, timeout=300)


def test_the_entry_points_are_installed(plugin_env):
    site = Path(plugin_env["root"]) / "site"
    entry_points = next(site.glob("selfimprove_plugin_example-*.dist-info")).joinpath("entry_points.txt").read_text()
    for group in ("selfimprove.tasks", "selfimprove.rewards", "selfimprove.environments"):
        assert f"[{group}]" in entry_points


def test_plugin_reward_is_listed_and_checked_by_name(plugin_env):
    listed = selfimprove(plugin_env, "rewards", "list")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["reversed_word", "reward"] for line in listed.stdout.splitlines())
    by_name = selfimprove(plugin_env, "rewards", "check", "--data", "rows.jsonl", "-r", "reversed_word")
    assert by_name.returncode == 0 and "reversed_word" in by_name.stdout, by_name.stderr
    config = Path(plugin_env["root"]) / "rewards.yaml"
    config.write_text("rewards:\n  - {name: reversed_word}\n"
                      "  - {name: task_reward, params: {task_name: reverse_word, field: correct}}\n", encoding="utf-8")
    checked = selfimprove(plugin_env, "rewards", "check", "--data", "rows.jsonl", "--config", str(config), "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert set(report) == {"reversed_word", "reverse_word_correct", "TOTAL"}
    assert all(entry["auc"] == 1.0 and entry["verdict"] == "ok" for entry in report.values()), report


def test_plugin_task_is_evaluated_by_name(plugin_env):
    result = selfimprove(plugin_env, "--allow-import", "si_plugin_script", "eval", "--task", "reverse_word",
                         "--format", "single", "--model", "scripted:si_plugin_script:reverse_some", "--output-dir", "ev")
    assert result.returncode == 0, result.stderr
    summary = json.loads((Path(plugin_env["root"]) / "ev" / "summary.json").read_text())
    scores = summary["models"]["scripted:si_plugin_script:reverse_some"]["by_level"]["all"]
    assert scores["count"] == 8 and scores["metrics"]["score"]["mean"] == pytest.approx(3 / 8)


def test_plugin_environment_runs_the_agent(plugin_env):
    result = selfimprove(plugin_env, "--allow-import", "si_plugin_script", "agent", "run", "--format", "lines",
                         "--model", "scripted:si_plugin_script:lines_agent", "--limit", "2", "--output-dir", "agent")
    assert result.returncode == 0, result.stderr
    lines = (Path(plugin_env["root"]) / "agent" / "trajectories.jsonl").read_text().splitlines()
    trajectories = [json.loads(line) for line in lines]
    assert len(trajectories) == 2
    for trajectory in trajectories:
        assert trajectory["agent_format"] == "lines"
        assert [step["action"] for step in trajectory["steps"]] == ["search", "answer"]
        assert trajectory["steps"][0]["observation"] and trajectory["final_answer"] == "a spirit"


def test_plugin_reward_doctest_passes(plugin_env):
    code = ("import doctest, selfimprove_plugin_example.rewards as m; r = doctest.testmod(m); "
            "assert r.attempted and not r.failed, r")
    result = subprocess.run([sys.executable, "-c", code], env=plugin_env["env"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_plugin_the_names_are_unknown(plugin_env):
    env = {**plugin_env["env"], "PYTHONPATH": str(plugin_env["root"])}
    result = subprocess.run([sys.executable, "-m", "selfimprove", "rewards", "check", "--data", "rows.jsonl",
                             "-r", "reversed_word"], cwd=plugin_env["root"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "unknown reward 'reversed_word'" in result.stderr


def test_formats_resolve_from_both_groups_and_the_environments_group_wins(monkeypatch):
    import importlib.metadata

    from selfimprove.agent.formats import FORMATS, get_format

    def entry_points(**kwargs):
        found = {"selfimprove.environments": [("lines", "selfimprove.agent.formats:XmlFormat")],
                 "selfimprove.formats": [("lines", "selfimprove.agent.formats:ReactFormat"),
                                         ("old_style", "selfimprove.agent.formats:ToolCallFormat")]}
        return [importlib.metadata.EntryPoint(n, v, kwargs["group"]) for n, v in found.get(kwargs["group"], [])]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(FORMATS, "_loaded", {})
    assert {"lines", "old_style", "react"} <= set(FORMATS.names())
    assert get_format("lines").name == "xml" and get_format("old_style").name == "tools"


def quoted_blocks(guide: str) -> list[list[str]]:
    """The python/toml blocks of the guide that are not marked `<!-- runnable python -->` (those are run by
    tests/test_extending_guide.py): quotes of the example package."""
    lines, blocks, index = guide.splitlines(), [], 0
    while index < len(lines):
        if not lines[index].startswith("```"):
            index += 1
            continue
        end = lines.index("```", index + 1)
        runnable = index > 0 and lines[index - 1].strip() == "<!-- runnable python -->"
        if lines[index] in ("```python", "```toml") and not runnable:
            blocks.append(lines[index + 1 : end])
        index = end + 1
    return blocks


def test_the_guide_quotes_the_example_package():
    """Every line of the quoted python/toml blocks in docs/extending.md is a line of the example package."""
    guide = (EXAMPLE.parents[1] / "docs" / "extending.md").read_text(encoding="utf-8")
    sources = [*EXAMPLE.rglob("*.py"), EXAMPLE / "pyproject.toml"]
    package_lines = {line.strip() for path in sources for line in path.read_text(encoding="utf-8").splitlines()}
    blocks = quoted_blocks(guide)
    assert len(blocks) >= 5
    quoted = [line.strip() for block in blocks for line in block if line.strip() not in ("", "...")]
    assert [line for line in quoted if line not in package_lines] == []
    assert "class CalculatorEnvironment:" in quoted and "class LinesFormat:" in quoted
