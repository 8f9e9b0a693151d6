"""The real loop and real tools in temporary git repositories, driven by a replay model."""

import json
import subprocess

from agent_testlib import BUGGY, PY, call, git, make_repo, script, turn
from groundup.agent.loop import Agent
from groundup.agent.permissions import Permissions
from groundup.agent.prompt import system_prompt
from groundup.agent.session import Session
from groundup.agent.tools import Toolbox
from groundup.providers import load_model


def agent_for(tmp_path, turns, **kw):
    model = load_model(script(tmp_path / "script.jsonl", turns))
    return Agent(model, tmp_path / "repo", **kw)


def test_multi_step_bug_fix_leaves_the_files_fixed(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    events = []
    agent = agent_for(tmp_path, [
        turn(call("bash", command=f"{PY} test_calc.py"), content="Let me run the tests."),
        turn(call("read_file", path="calc.py")),
        turn(call("edit_file", path="calc.py", old_string="return a - b",
                  new_string="return a + b")),
        turn(call("bash", command=f"{PY} test_calc.py")),
        {"content": "Fixed `add`: it subtracted. The tests pass."},
    ], session_dir=repo / ".groundup" / "sessions", on_event=events.append)
    res = agent.run("The tests fail. Fix the bug.")
    assert not res.is_error and res.stop_reason == "end_turn"
    assert res.result == "Fixed `add`: it subtracted. The tests pass."
    assert res.num_steps == 5
    assert "return a + b" in (repo / "calc.py").read_text()
    assert subprocess.run([PY, "test_calc.py"], cwd=repo).returncode == 0
    assert git(repo, "diff", "--stat").strip().startswith("calc.py")
    roles = [m["role"] for m in res.messages]
    assert roles == ["system", "user"] + ["assistant", "tool"] * 4 + ["assistant"]
    tool_msgs = [m for m in res.messages if m["role"] == "tool"]
    assert "AssertionError" in tool_msgs[0]["content"] and "[exit code 1]" in tool_msgs[0]["content"]
    assert tool_msgs[1]["content"].startswith("     1\tdef add(a, b):")
    assert "-    return a - b\n+    return a + b" in tool_msgs[2]["content"]
    assert tool_msgs[3]["content"] == "all tests passed\n[exit code 0]"
    # each tool message answers the call before it
    for a, t in zip(res.messages[2::2], res.messages[3::2]):
        assert t["tool_call_id"] == a["tool_calls"][0]["id"]
    # the session file holds exactly the messages
    assert Session(res.session_path).load() == res.messages
    types = [e["type"] for e in events if e["type"] != "text"]
    assert types[:3] == ["assistant", "tool_call", "tool_result"] and types[-1] == "result"


def test_ambiguous_edit_is_refused_then_retry_succeeds(tmp_path):
    repo = make_repo(tmp_path / "repo", {"f.py": "x = 0\nx = 0\n"})
    agent = agent_for(tmp_path, [
        turn(call("read_file", path="f.py")),
        turn(call("edit_file", path="f.py", old_string="x = 0", new_string="x = 1")),
        turn(call("edit_file", path="f.py", old_string="x = 0\nx = 0", new_string="x = 0\nx = 1")),
        {"content": "done"},
    ])
    res = agent.run("set the second x to 1")
    tools = [m["content"] for m in res.messages if m["role"] == "tool"]
    assert tools[1].startswith("error: old_string matches 2 times")
    assert tools[2].startswith("edited f.py")
    assert (repo / "f.py").read_text() == "x = 0\nx = 1\n"


def test_edit_without_read_and_after_outside_change(tmp_path):
    repo = make_repo(tmp_path / "repo", {"f.py": "a = 1\n"})
    agent = agent_for(tmp_path, [
        turn(call("edit_file", path="f.py", old_string="a = 1", new_string="a = 2")),
        turn(call("read_file", path="f.py")),
        turn(call("bash", command="echo 'a = 1  # changed' > f.py")),
        turn(call("edit_file", path="f.py", old_string="a = 1", new_string="a = 2")),
        {"content": "gave up"},
    ])
    res = agent.run("change a")
    tools = [m["content"] for m in res.messages if m["role"] == "tool"]
    assert "read f.py with read_file before editing" in tools[0]
    assert "changed on disk since you read it" in tools[3]
    assert (repo / "f.py").read_text() == "a = 1  # changed\n"


def test_format_errors_go_back_to_the_model_and_are_capped(tmp_path):
    make_repo(tmp_path / "repo", {"a.txt": "hi\n"})
    bad = {"name": "read_file", "arguments": {}, "malformed": "invalid JSON after <|tool_call|>"}
    # one malformed call, then a good one: the model recovers
    agent = agent_for(tmp_path, [turn(bad), turn(call("read_file", path="a.txt")),
                                 {"content": "ok"}])
    res = agent.run("read a.txt")
    assert res.stop_reason == "end_turn"
    assert "could not be parsed" in res.messages[3]["content"]
    # malformed calls in a row: stopped after three
    agent = agent_for(tmp_path, [turn(bad)] * 5)
    res = agent.run("read a.txt")
    assert res.is_error and res.stop_reason == "format_errors" and res.num_steps == 3


def test_limits_stop_the_run(tmp_path):
    make_repo(tmp_path / "repo", {"a.txt": "hi\n"})
    agent = agent_for(tmp_path, [turn(call("list_dir", path="."))] * 10, max_steps=3)
    res = agent.run("loop forever")
    assert res.is_error and res.stop_reason == "max_steps" and res.num_steps == 3
    assert res.messages[-1]["role"] == "tool"          # the history is still valid
    agent = agent_for(tmp_path, [turn(call("list_dir", path="."))] * 10, token_budget=50)
    res = agent.run("loop forever")
    assert res.stop_reason == "max_tokens" and res.num_steps < 10


def test_repeated_call_and_result_stops_the_run_when_asked(tmp_path):
    make_repo(tmp_path / "repo", {"a.txt": "hi\n", "b.txt": "ho\n"})
    read_a, read_b = call("read_file", path="a.txt"), call("read_file", path="b.txt")
    circle = [turn(read_a), turn(read_b)] * 5
    # off by default: the circle runs until the step limit
    res = agent_for(tmp_path, circle, max_steps=8).run("go in circles")
    assert res.stop_reason == "max_steps" and res.num_steps == 8
    # max_repeats=3: the third identical (call, result) pair ends it, with a valid history
    res = agent_for(tmp_path, circle, max_steps=8, max_repeats=3).run("go in circles")
    assert res.is_error and res.stop_reason == "repeats" and res.num_steps == 5
    assert "read_file" in res.result and res.messages[-1]["role"] == "tool"
    # the same call with a different result each time is no circle (the file changes)
    turns = []
    for i in range(4):
        turns += [turn(call("bash", command=f"echo {i} >> a.txt")), turn(read_a)]
    res = agent_for(tmp_path, turns + [{"content": "done"}], max_repeats=3).run("append")
    assert res.stop_reason == "end_turn"


def test_parallel_reads_keep_call_order(tmp_path):
    make_repo(tmp_path / "repo", {f"f{i}.txt": f"file {i}\n" for i in range(5)})
    agent = agent_for(tmp_path, [turn(*[call("read_file", path=f"f{i}.txt") for i in range(5)]),
                                 {"content": "read them"}])
    res = agent.run("read all")
    results = [m for m in res.messages if m["role"] == "tool"]
    assert [r["content"] for r in results] == [f"     1\tfile {i}" for i in range(5)]
    assert [r["tool_call_id"] for r in results] == \
        [c["id"] for c in res.messages[2]["tool_calls"]]


def test_multi_turn_conversation_and_denial_reported(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "hi\n"})
    agent = agent_for(tmp_path, [turn(call("write_file", path="b.txt", content="x")),
                                 {"content": "I could not write b.txt"},
                                 {"content": "second answer"}],
                      permissions=Permissions(mode="plan"))
    assert agent.run("write b").result == "I could not write b.txt"
    assert "plan mode" in agent.messages[3]["content"] and not (repo / "b.txt").exists()
    res = agent.run("and now?")
    assert res.result == "second answer"
    assert [m["role"] for m in res.messages].count("system") == 1
    assert [m["content"] for m in res.messages if m["role"] == "user"] == ["write b", "and now?"]


def test_system_prompt_has_environment_tools_and_memory(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo", {"AGENTS.md": "Run tests with `make check`.\n"})
    (repo / "dirty.py").write_text("x")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "cfg" / "groundup").mkdir(parents=True)
    (tmp_path / "cfg" / "groundup" / "AGENTS.md").write_text("I like short answers.\n")
    tb = Toolbox(repo)
    p = system_prompt(repo, tb)
    assert f"working directory: {repo.resolve()}" in p
    assert "branch main, 1 changed file(s): dirty.py" in p
    assert "- edit_file: Replace old_string" in p
    assert "make check" in p and "I like short answers." in p
    compact = system_prompt(repo, tb, compact=True)
    assert len(compact.splitlines()) <= 3 and str(repo.resolve()) in compact
    (repo / "AGENTS.md").unlink()
    (repo / "CLAUDE.md").write_text("claude memory\n")
    assert "claude memory" in system_prompt(repo, tb)


def test_interrupt_answers_pending_calls(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "hi\n"})
    calls = []

    def on_event(ev):
        if ev["type"] == "tool_call":
            calls.append(ev)
            if ev["name"] == "bash":
                raise KeyboardInterrupt         # as if Ctrl-C arrived during the command
    agent = agent_for(tmp_path, [turn(call("bash", command="sleep 5"), call("list_dir", path=".")),
                                 {"content": "after"}],
                      on_event=on_event, session_dir=repo / ".groundup" / "sessions")
    res = agent.run("go")
    assert res.stop_reason == "interrupted" and res.is_error
    tool_msgs = [m for m in res.messages if m["role"] == "tool"]
    assert len(tool_msgs) == 2 and all("interrupted" in m["content"] for m in tool_msgs)
    assert agent.run("again").result == "after"       # the session goes on
    assert json.loads(res.session_path.read_text().splitlines()[-1])["content"] == "after"


def test_compact_prompt_for_models_that_ask_for_it(tmp_path):
    make_repo(tmp_path / "repo", {"a.txt": "hi\n"})
    model = load_model(script(tmp_path / "s.jsonl", [{"content": "ok"}]))
    model.compact_prompt = True          # what a provider sets for our small trained models
    res = Agent(model, tmp_path / "repo").run("hi")
    assert res.messages[0]["content"] == system_prompt(tmp_path / "repo", None, compact=True)
    res = Agent(model, tmp_path / "repo", compact_prompt=False).run("hi")
    assert "# Environment" in res.messages[0]["content"]


def test_wall_time_limit_also_caps_a_running_command(tmp_path):
    make_repo(tmp_path / "repo", {"a.txt": "hi\n"})
    agent = agent_for(tmp_path, [turn(call("bash", command="sleep 30")),
                                 turn(call("list_dir", path="."))], max_seconds=1)
    res = agent.run("wait")
    assert res.stop_reason == "max_seconds" and res.is_error
    assert "timed out after 1s" in res.messages[3]["content"]
