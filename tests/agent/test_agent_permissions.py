"""Confinement (nothing outside the workspace is read or touched) and permission decisions."""

import os
from pathlib import Path

import pytest

from groundup.agent.permissions import Permissions, Rule, path_matches
from groundup.agent.tools import Toolbox
from groundup.chat.types import ToolCall


def ex(tb, name, **args):
    return tb.execute(ToolCall(name, args))


@pytest.fixture
def world(tmp_path):
    """A workspace, and beside it an `outside` directory holding a secret."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET\n")
    (root / "ok.txt").write_text("fine\n")
    os.symlink(outside, root / "link_dir")
    os.symlink(outside / "secret.txt", root / "link_file")
    before = {p: p.read_bytes() for p in outside.iterdir()}
    yield root, outside
    # nothing outside was touched, whatever the test did
    assert {p: p.read_bytes() for p in outside.iterdir()} == before


ESCAPES = ["../outside/secret.txt", "{outside}/secret.txt", "link_file", "link_dir/secret.txt",
           "link_dir/../outside/secret.txt"]


@pytest.mark.parametrize("escape", ESCAPES)
def test_paths_that_leave_the_workspace_are_refused(world, escape):
    root, outside = world
    path = escape.format(outside=outside)
    tb = Toolbox(root)
    for name, args in [("read_file", {}), ("write_file", {"content": "pwned\n"}),
                       ("edit_file", {"old_string": "SECRET", "new_string": "pwned"}),
                       ("grep", {"pattern": "SECRET"}), ("list_dir", {})]:
        if name == "list_dir":
            path_for = str(Path(path).parent) if "secret" in path else path
        else:
            path_for = path
        r = ex(tb, name, path=path_for, **args)
        assert r.is_error and "outside the workspace" in r.content, (name, path_for, r.content)
        assert "SECRET" not in r.content
    r = ex(tb, "glob", pattern="*.txt", path=str(Path(path).parent))
    if str(Path(path).parent) not in (".", ""):
        assert r.is_error and "outside the workspace" in r.content


def test_searches_inside_do_not_follow_links_out(world):
    root, _ = world
    tb = Toolbox(root)
    assert ex(tb, "grep", pattern="SECRET").content == "no matches"
    assert ex(tb, "glob", pattern="**/*.txt").content == "ok.txt"
    assert ex(tb, "glob", pattern="../*").is_error
    assert "link_dir -> " in ex(tb, "list_dir", path=".").content   # shown, not entered


def test_added_directory_is_allowed(world):
    root, outside = world
    tb = Toolbox(root, extra_dirs=[outside])
    assert ex(tb, "read_file", path=str(outside / "secret.txt")).content == "     1\tSECRET"


def test_rules_parse_and_match():
    assert Rule.parse("bash(git status:*)").matches("bash", "git status --short")
    assert Rule.parse("bash(git status:*)").matches("bash", "git  status")
    assert not Rule.parse("bash(git status:*)").matches("bash", "git statusx")
    assert not Rule.parse("bash(git status:*)").matches("bash", "git push")
    assert Rule.parse("bash(make test)").matches("bash", "make test")
    assert not Rule.parse("bash(make test)").matches("bash", "make test; rm -rf /")
    assert Rule.parse("edit(src/**)").matches("edit_file", "src/a/b.py")
    assert Rule.parse("edit(src/**)").matches("write_file", "src/x.py")
    assert not Rule.parse("edit(src/**)").matches("edit_file", "tests/x.py")
    assert not Rule.parse("edit(src/**)").matches("read_file", "src/x.py")
    assert Rule.parse("read(.env)").matches("read_file", ".env")
    assert Rule.parse("read(.env)").matches("grep", "app/.env")
    assert Rule.parse("bash").matches("bash", "anything")
    assert path_matches("*.py", "a/b/c.py") and not path_matches("src/*.py", "src/a/b.py")
    with pytest.raises(ValueError):
        Rule.parse("bash(unclosed")


def test_plan_mode_refuses_writes_and_bash(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    tb = Toolbox(tmp_path, permissions=Permissions(mode="plan"))
    assert not ex(tb, "read_file", path="a.txt").is_error
    for name, args in [("write_file", {"path": "b.txt", "content": "y"}),
                       ("edit_file", {"path": "a.txt", "old_string": "x", "new_string": "y"}),
                       ("bash", {"command": "touch c.txt"})]:
        r = ex(tb, name, **args)
        assert r.is_error and "plan mode" in r.content
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_deny_beats_allow_and_every_mode(tmp_path):
    (tmp_path / ".env").write_text("KEY=secret\n")
    (tmp_path / "a.txt").write_text("KEY here too\n")
    perms = Permissions(mode="yolo", allow=["bash", "read(.env)"],
                        deny=["read(.env)", "bash(git push:*)"])
    tb = Toolbox(tmp_path, permissions=perms)
    r = ex(tb, "read_file", path=".env")
    assert r.is_error and "denied by the rule read(.env)" in r.content
    r = ex(tb, "bash", command="git push origin main")
    assert r.is_error and "bash(git push:*)" in r.content
    assert not ex(tb, "bash", command="true").is_error
    # a denied file is invisible to searches too
    assert ex(tb, "grep", pattern="KEY").content == "a.txt:1:KEY here too"
    assert ".env" not in ex(tb, "list_dir", path=".").content


def test_default_mode_asks_and_headless_refuses(tmp_path):
    tb = Toolbox(tmp_path, permissions=Permissions(mode="default"))   # no approver: headless
    r = ex(tb, "write_file", path="a.txt", content="x")
    assert r.is_error and "approval" in r.content and "headless" in r.content
    assert not (tmp_path / "a.txt").exists()
    asked = []

    def approver(tool, args, summary):
        asked.append(summary)
        return {"write_file": "yes", "bash": "always"}.get(tool, "no")

    perms = Permissions(mode="default", approver=approver)
    tb = Toolbox(tmp_path, permissions=perms)
    assert not ex(tb, "write_file", path="a.txt", content="x\n").is_error
    assert not ex(tb, "bash", command="ls").is_error
    assert not ex(tb, "bash", command="ls").is_error        # "always": not asked again
    ex(tb, "read_file", path="a.txt")
    r = ex(tb, "edit_file", path="a.txt", old_string="x", new_string="y")
    assert r.is_error and "declined" in r.content
    assert asked == ["write a.txt (2 characters)", "run: ls", "edit a.txt"]


def test_accept_edits_mode(tmp_path):
    tb = Toolbox(tmp_path, permissions=Permissions(mode="accept-edits"))
    assert not ex(tb, "write_file", path="a.txt", content="x").is_error
    assert ex(tb, "bash", command="ls").is_error
    tb = Toolbox(tmp_path, permissions=Permissions(mode="accept-edits", allow=["bash(ls:*)"]))
    assert not ex(tb, "bash", command="ls -la").is_error
