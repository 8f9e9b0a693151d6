"""Subagents (groundup/agent/subagents.py): the `task` tool runs a real child loop on real
files; only its answer reaches the parent, its tools are its own, its transcript is on disk."""

import json

from agent_testlib import BUGGY, call, make_repo, run_cli, script, turn
from groundup.agent.session import Session

MARKER = "# ZEBRA-7781: only the child ever reads this line"


def stream(repo, tmp_path, model, task="go", extra=("--permission-mode", "yolo")):
    p = run_cli(["-p", task, "--model", model, "--output-format", "stream-json", *extra],
                repo, tmp_path, timeout=60)
    return p, [json.loads(line) for line in p.stdout.splitlines()]


def test_the_parent_sees_only_the_answer_and_the_child_only_its_tools(tmp_path):
    repo = make_repo(tmp_path / "repo", {**BUGGY, "notes.py": MARKER + "\n"})
    # one script for both: the parent's turn, then the child's turns, then the parent again
    model = script(tmp_path / "m.jsonl", [
        turn(call("task", description="find add", subagent_type="explore",
                  prompt="Where is add defined? Also look at notes.py.")),
        turn(call("read_file", path="notes.py"), call("grep", pattern="def add")),   # child
        turn(call("bash", command="rm calc.py")),                                   # child: not its tool
        {"content": "add is defined in calc.py, line 1."},                          # child's answer
        {"content": "The subagent found it: calc.py line 1."}])                     # parent
    p, events = stream(repo, tmp_path, model)
    assert p.returncode == 0, p.stderr
    assert events[-1]["result"] == "The subagent found it: calc.py line 1."
    assert (repo / "calc.py").exists()                                  # the child could not rm
    parent = Session.latest(repo / ".groundup/sessions")
    msgs = parent.load()
    task_result = next(m for m in msgs if m["role"] == "tool")
    assert task_result["name"] == "task"
    assert task_result["content"] == "add is defined in calc.py, line 1."
    assert MARKER not in json.dumps(msgs)                               # the child's reading stayed there
    assert "task" in next(e for e in events if e["type"] == "system")["tools"]

    child_file = parent.path.with_suffix("") / "task-1-explore.jsonl"
    child = Session(child_file).load()
    assert child[0]["role"] == "system" and "read-only search subagent" in child[0]["content"]
    assert child[1] == {"role": "user", "content": "Where is add defined? Also look at notes.py."}
    results = [m for m in child if m["role"] == "tool"]
    assert MARKER in results[0]["content"]
    assert results[2]["content"].startswith("error: unknown tool 'bash'; the tools are "
                                            "read_file, grep, glob, list_dir")
    # the child's calls were shown to the user as events of the parent's run
    inner = [e["event"]["name"] for e in events
             if e["type"] == "subagent" and e["event"]["type"] == "tool_call"]
    assert inner == ["read_file", "grep", "bash"]


def test_definitions_from_files_with_a_step_budget_and_their_own_model(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    child_model = script(tmp_path / "child.jsonl", [turn(call("read_file", path="calc.py"))] * 5)
    (repo / ".groundup/agents").mkdir(parents=True)
    (repo / ".groundup/agents/reviewer.md").write_text(
        f"---\ndescription: reviews code\ntools: read_file\nmodel: {child_model}\nmax_steps: 2\n---\n"
        "You review code and report bugs.\n")
    parent = script(tmp_path / "parent.jsonl", [
        turn(call("task", description="review", subagent_type="reviewer", prompt="review calc.py")),
        turn(call("task", description="x", subagent_type="nobody", prompt="hi")),
        {"content": "done"}])
    p, events = stream(repo, tmp_path, parent)
    assert p.returncode == 0, p.stderr
    results = [e for e in events if e["type"] == "tool_result"]
    assert results[0]["is_error"]
    assert results[0]["content"].startswith("the subagent stopped before finishing (max_steps)")
    assert results[1]["is_error"] and "unknown subagent_type 'nobody'" in results[1]["content"]
    system = next(e for e in events if e["type"] == "system")
    sess = Session.latest(repo / ".groundup/sessions")
    child = Session(sess.path.with_suffix("") / "task-1-reviewer.jsonl").load()
    assert child[0]["content"].startswith("You review code and report bugs.")
    assert sum(m["role"] == "assistant" for m in child) == 2           # the budget held
    assert system["tools"][-1] == "task"


def test_parallel_read_only_subagents(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    (repo / ".groundup/agents").mkdir(parents=True)
    for name in ("left", "right"):
        m = script(tmp_path / f"{name}.jsonl", [turn(call("grep", pattern="def ")),
                                                {"content": f"{name} answer"}])
        (repo / f".groundup/agents/{name}.md").write_text(
            f"---\ntools: grep, read_file\nmodel: {m}\n---\nSearch.\n")
    parent = script(tmp_path / "parent.jsonl", [
        turn(call("task", description="a", subagent_type="left", prompt="l"),
             call("task", description="b", subagent_type="right", prompt="r")),
        {"content": "both back"}])
    p, events = stream(repo, tmp_path, parent)
    assert p.returncode == 0, p.stderr
    assert [e["content"] for e in events if e["type"] == "tool_result"] == ["left answer", "right answer"]
    sess = Session.latest(repo / ".groundup/sessions")
    # numbered in the order they started, which parallel threads do not fix
    assert sorted(f.name for f in sess.path.with_suffix("").iterdir()) in (
        ["task-1-left.jsonl", "task-2-right.jsonl"], ["task-1-right.jsonl", "task-2-left.jsonl"])


def test_bad_definitions_are_clear_errors(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    (repo / ".groundup/agents").mkdir(parents=True)
    model = script(tmp_path / "m.jsonl", [{"content": "ok"}])
    for text, words in [("---\ntools: task\n---\nx\n", "cannot have the task tool"),
                        ("---\nmax_steps: lots\n---\nx\n", "max_steps must be a positive"),
                        ("---\ndescription: d\n---\n", "is empty")]:
        (repo / ".groundup/agents/bad.md").write_text(text)
        p = run_cli(["-p", "x", "--model", model], repo, tmp_path)
        assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
