"""Names that run code (the import trust model) and model output that never crashes a run.

Names: a "module:attr" reward, task or `scripted:` model resolves only for modules the user
allowed ($SELFIMPROVE_ALLOW_IMPORT / `allow_imports`, the library side of `--allow-import`) or
for entry-point plugins; the standard library never, and nothing is imported before the check.
Model output: a 5 000-digit integer in a tool call and a lone surrogate in a reply are data: the
run finishes, scores them 0 and records the text (made writable), and a re-run resumes.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfimprove import registry
from selfimprove.cli import app
from selfimprove.errors import UserError
from selfimprove.rewards import REWARDS, get_reward
from selfimprove.rewards.config import describe_rewards
from selfimprove.tasks import TASKS, get_task

runner = CliRunner()
HUGE = "9" * 5000
HUGE_CALL = '<tool_call>{"name": "search", "arguments": {"query": "Paris", "n": ' + HUGE + "}}</tool_call>"


@pytest.fixture(autouse=True)
def fresh_registries(monkeypatch):
    """No resolution cached across tests; the programmatic allow list starts empty."""
    monkeypatch.setattr(registry, "_ALLOWED", set(), raising=False)
    for reg in (REWARDS, TASKS):
        monkeypatch.setattr(reg, "_loaded", {})


def user_module(tmp_path: Path, monkeypatch, name: str, body: str) -> Path:
    """A module `name` on sys.path whose import leaves `imported.marker` behind."""
    marker = tmp_path / f"{name}.imported"
    (tmp_path / f"{name}.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n{body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return marker


# --------------------------------------------------------------------- names that run code

def test_rewards_check_refuses_subprocess_run_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran.marker"
    data = tmp_path / "data.jsonl"
    rows = [{"completion": "touch", "label": True}, {"completion": str(marker), "label": False}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = runner.invoke(app, ["rewards", "check", "--data", str(data), "-r", "subprocess:run"])
    assert result.exit_code == 2, result.output
    assert "importing 'subprocess' is not allowed (standard library)" in result.output
    assert "Traceback" not in result.output
    assert not marker.exists()


@pytest.mark.parametrize("name", ["subprocess:run", "os:system", "builtins:eval", "os.path:join", "__main__:main"])
def test_standard_library_names_are_refused_even_when_allowed(name, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_ALLOW_IMPORT", "subprocess,os,builtins,__main__")
    with pytest.raises(UserError, match=r"is not allowed \(standard library\)"):
        get_reward(name)
    with pytest.raises(UserError, match="standard library"):
        get_task(name)


def test_scripted_model_spec_refuses_the_standard_library():
    from selfimprove.models.spec import load_generator

    with pytest.raises(UserError, match="importing 'os' is not allowed"):
        load_generator("scripted:os:system")


def test_a_user_module_is_refused_unimported_until_allowed(tmp_path, monkeypatch):
    monkeypatch.delenv("SELFIMPROVE_ALLOW_IMPORT", raising=False)
    marker = user_module(tmp_path, monkeypatch, "si_user_rewards", "def shout(completions, **kw):\n"
                                                                  "    return [1.0 for _ in completions]")
    with pytest.raises(UserError, match="--allow-import si_user_rewards"):
        get_reward("si_user_rewards:shout")
    assert not marker.exists(), "a refused module must not be imported"
    monkeypatch.setenv("SELFIMPROVE_ALLOW_IMPORT", "other,si_user_rewards")
    assert get_reward("si_user_rewards:shout")(["a", "b"]) == [1.0, 1.0]
    assert marker.exists()


def test_the_allow_import_switch(tmp_path, monkeypatch):
    monkeypatch.delenv("SELFIMPROVE_ALLOW_IMPORT", raising=False)
    user_module(tmp_path, monkeypatch, "si_cli_rewards", "def one(completions, **kw):\n    return [1.0] * len(completions)")
    data = tmp_path / "d.jsonl"
    data.write_text('{"completion": "a", "label": true}\n{"completion": "b", "label": false}\n')
    refused = runner.invoke(app, ["rewards", "check", "--data", str(data), "-r", "si_cli_rewards:one"])
    assert refused.exit_code == 2 and "not allowed" in refused.output
    allowed = runner.invoke(app, ["--allow-import", "si_cli_rewards", "rewards", "check", "--data", str(data),
                                  "-r", "si_cli_rewards:one", "--json"])
    assert allowed.exit_code in (0, 1) and json.loads(allowed.output)["one"]["mean_correct"] == 1.0
    stdlib = runner.invoke(app, ["--allow-import", "subprocess", "rewards", "check", "--data", str(data),
                                 "-r", "subprocess:run"])
    assert stdlib.exit_code == 2 and "standard library" in stdlib.output


def test_allow_imports_allows_a_package_and_its_submodules(tmp_path, monkeypatch):
    monkeypatch.delenv("SELFIMPROVE_ALLOW_IMPORT", raising=False)
    package = tmp_path / "si_user_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rewards.py").write_text("def one(completions, **kw):\n    return [1.0] * len(completions)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match="not allowed"):
        get_reward("si_user_pkg.rewards:one")
    registry.allow_imports(["si_user_pkg"])
    assert get_reward("si_user_pkg.rewards:one")(["x"]) == [1.0]
    assert not registry.is_allowed("si_user_pkgx")


def test_a_standard_library_function_reexported_by_an_allowed_module_is_refused(tmp_path, monkeypatch):
    user_module(tmp_path, monkeypatch, "si_reexport", "from subprocess import run\nfrom os import system")
    monkeypatch.setenv("SELFIMPROVE_ALLOW_IMPORT", "si_reexport")
    for name in ("si_reexport:run", "si_reexport:system"):
        with pytest.raises(UserError, match="resolves to the standard library"):
            get_reward(name)


def test_registered_targets_still_resolve_by_their_path(monkeypatch):
    monkeypatch.delenv("SELFIMPROVE_ALLOW_IMPORT", raising=False)
    assert get_reward("selfimprove.rewards.classic:xmlcount") is get_reward("xmlcount")
    with pytest.raises(UserError, match="not allowed"):
        get_reward("selfimprove.launch:main")


def fake_entry_points(entries: dict[str, list[tuple[str, str]]]):
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        group = kwargs.get("group")
        if group in entries:
            return [importlib.metadata.EntryPoint(name, value, group) for name, value in entries[group]]
        return real(**kwargs)

    return entry_points


def test_entry_point_plugins_resolve_without_an_allow_list(tmp_path, monkeypatch):
    monkeypatch.delenv("SELFIMPROVE_ALLOW_IMPORT", raising=False)
    user_module(tmp_path, monkeypatch, "si_plugin", "def half(completions, **kw):\n    return [0.5] * len(completions)\n"
                "from selfimprove.tasks.countdown.task import CountdownTask as MyTask")
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points({
        "selfimprove.rewards": [("half_reward", "si_plugin:half"), ("evil", "os:system"),
                                ("broken", "si_missing_module:fn")],
        "selfimprove.tasks": [("my_task", "si_plugin:MyTask")]}))
    assert "half_reward" in REWARDS.names()
    assert get_reward("half_reward")(["a"]) == [0.5]
    assert get_task("my_task").name == "countdown"
    with pytest.raises(UserError, match="importing 'os' is not allowed"):
        get_reward("evil")
    with pytest.raises(UserError, match="not allowed"):  # the plugin's module is not allowed by path
        get_reward("si_plugin:half")
    with pytest.raises(UserError, match="cannot load plugin si_missing_module:fn"):
        get_reward("broken")
    listed = {name: kind for name, kind, _ in describe_rewards()}
    assert listed["half_reward"] == "reward" and listed["broken"] == "unavailable" and listed["evil"] == "unavailable"


# --------------------------------------------------------------------- model output never crashes a run

def huge_tool_call(conversation, index):
    return HUGE_CALL


def huge_python_call(conversation, index):
    return "[calc(a=" + "7" * 4000 + ")]"


def lone_surrogate(conversation, index):
    return "Thought: \ud83d broken \udcff\x00 <answer>\ud83d</answer>"


@pytest.mark.parametrize("text", [
    HUGE_CALL, '{"name": "f", "arguments": {"x": ' + HUGE + "}}",
    '{"name": "f", "arguments": "{\\"x\\": ' + HUGE + '}"}', "f(x=" + "7" * 4000 + ")",
    '{"name": "f", "arguments": {"x": ' + "1" * 400 + "}}"])
def test_huge_integers_in_calls_are_parse_errors(text):
    from selfimprove.agent.formats import ToolCallFormat
    from selfimprove.tasks.function_calling.calls import CallParseError, parse_calls

    with pytest.raises(CallParseError):
        parse_calls(text)
    assert ToolCallFormat().parse(text).action in ("invalid", "answer")
    task = get_task("function_calling")
    assert task.score(task.load(None)[0], text).value == 0.0


def test_huge_integer_in_a_tool_call_is_a_parse_error_for_the_tools_format():
    from selfimprove.agent.formats import ToolCallFormat

    parsed = ToolCallFormat().parse(HUGE_CALL)
    assert parsed.action == "invalid" and "not valid JSON" in parsed.error


def test_rewards_check_scores_a_huge_integer_call_zero(tmp_path):
    task = get_task("function_calling")
    row = task.to_row(task.load(None)[0])
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({**row, "completion": HUGE_CALL, "label": False}) + "\n"
                    + json.dumps({**row, "completion": huge_python_call(None, 0), "label": True}) + "\n")
    result = runner.invoke(app, ["rewards", "check", "--data", str(data), "-r", "function_call_correct", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    report = json.loads(result.output[result.output.index("{"):])
    assert report["function_call_correct"]["mean_correct"] == 0.0


def test_eval_scores_a_huge_integer_call_zero(tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "--task", "function_calling", "--limit", "2", "--out", str(out),
                                 "-m", "scripted:test_names_and_model_output:huge_tool_call"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["score"] == 0.0 for r in records)


def test_agent_run_records_a_huge_integer_tool_call_as_a_parse_error(tmp_path):
    out = tmp_path / "agent"
    result = runner.invoke(app, ["agent", "run", "--format", "tools", "--limit", "1", "--max-turns", "2",
                                 "--out", str(out), "-m", "scripted:test_names_and_model_output:huge_tool_call"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert record["flags"]["parse_errors"] >= 1 and record["score"]["value"] == 0.0
    assert HUGE in record["steps"][0]["text"]


def test_a_lone_surrogate_reply_is_recorded_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "eval"
    args = ["eval", "--task", "countdown", "--limit", "2", "--out", str(out),
            "-m", "scripted:test_names_and_model_output:lone_surrogate"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    files = list((out / "trajectories").rglob("*.jsonl"))
    lines = [json.loads(line) for path in files for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    assert all("\ufffd broken \ufffd\x00" in r["steps"][0]["text"] for r in lines), lines
    assert all(r["score"]["value"] == 0.0 for r in lines)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files) == 2


@pytest.mark.parametrize("as_json", [False, True])
def test_generate_prints_a_lone_surrogate_reply(tmp_path, monkeypatch, as_json):
    user_module(tmp_path, monkeypatch, "si_surrogate_model", "def reply(conversation, index):\n    return 'x \\ud83d y'")
    monkeypatch.setenv("SELFIMPROVE_ALLOW_IMPORT", "si_surrogate_model")
    result = runner.invoke(app, ["generate", "--model", "scripted:si_surrogate_model:reply", "--prompt", "hi",
                                 *(["--json"] if as_json else [])])
    assert result.exit_code == 0 and "x \ufffd y" in result.output
