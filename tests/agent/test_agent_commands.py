"""Custom slash commands (groundup/agent/commands.py): files on disk, expanded, sent."""

import pytest

from agent_testlib import BUGGY, make_repo, run_cli, script
from groundup.agent.commands import load_commands, parse_front_matter
from groundup.agent.session import Session
from groundup.errors import UserError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_project_and_user_commands_with_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    repo = make_repo(tmp_path / "repo", BUGGY)
    write(repo / ".groundup/commands/review.md",
          "---\ndescription: review a part of the code\n---\nReview $ARGUMENTS for bugs.\n")
    write(tmp_path / "config/groundup/commands/review.md", "the user's review, shadowed\n")
    write(tmp_path / "config/groundup/commands/explain.md", "Explain this code simply.\n")
    write(repo / ".groundup/commands/not a name.md", "ignored: cannot be typed after /\n")
    cmds = load_commands(repo)
    assert sorted(cmds) == ["explain", "review"]
    assert cmds["review"].description == "review a part of the code"
    assert cmds["review"].expand("calc.py") == "Review calc.py for bugs."       # project wins
    assert cmds["explain"].description == "Explain this code simply."
    assert cmds["explain"].expand("") == "Explain this code simply."
    # no $ARGUMENTS in the body: the arguments are appended, not dropped
    assert cmds["explain"].expand("calc.py") == "Explain this code simply.\n\nARGUMENTS: calc.py"


def test_headless_slash_command_sends_the_expanded_prompt(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    write(repo / ".groundup/commands/fix.md", "Fix the failing test in $ARGUMENTS, then run it.\n")
    model = script(tmp_path / "m.jsonl", [{"content": "ok"}])
    p = run_cli(["-p", "/fix test_calc.py", "--model", model], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    msgs = Session.latest(repo / ".groundup" / "sessions").load()
    assert [m["content"] for m in msgs if m["role"] == "user"] == \
        ["Fix the failing test in test_calc.py, then run it."]
    # a task that only looks like a command goes as written
    p = run_cli(["-p", "/etc/hosts is odd", "--model", model], repo, tmp_path)
    msgs = Session.latest(repo / ".groundup" / "sessions").load()
    assert [m["content"] for m in msgs if m["role"] == "user"] == ["/etc/hosts is odd"]


def test_bad_command_files_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="never closed"):
        parse_front_matter("---\ndescription: x\n", "f.md")
    with pytest.raises(UserError, match=r"f\.md:2: front matter lines are `key: value`"):
        parse_front_matter("---\njust words\n---\nbody\n", "f.md")
    repo = make_repo(tmp_path / "repo", BUGGY)
    write(repo / ".groundup/commands/empty.md", "---\ndescription: nothing\n---\n")
    model = script(tmp_path / "m.jsonl", [{"content": "ok"}])
    p = run_cli(["-p", "/empty", "--model", model], repo, tmp_path)
    assert p.returncode == 2 and "empty.md is empty" in p.stderr and "Traceback" not in p.stderr
