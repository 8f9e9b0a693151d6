"""Tools from outside the core set (MCP servers, the retrieval index, subagents) plug into the
Toolbox as a ToolSource and pass through the same argument checks and permission rules."""

from __future__ import annotations

from pathlib import Path

from groundup.agent.permissions import Permissions, Rule
from groundup.agent.tools import Toolbox, ToolError, ToolResult
from groundup.chat.types import ToolCall


class NotesSource:
    """A real tool source: `count_lines` reads a file, `append_note` writes one."""

    def __init__(self, root: Path):
        self.root = root

    def schemas(self):
        return [
            {"name": "count_lines", "description": "count a file's lines",
             "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                            "required": ["path"]}},
            {"name": "append_note", "description": "append a line to NOTES",
             "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                            "required": ["text"]}},
        ]

    def is_read_only(self, name):
        return name == "count_lines"

    def call(self, name, args):
        if name == "count_lines":
            p = self.root / args["path"]
            if not p.exists():
                raise ToolError(f"{args['path']} does not exist")
            return ToolResult(str(len(p.read_text().splitlines())))
        with open(self.root / "NOTES", "a") as f:
            f.write(args["text"] + "\n")
        return ToolResult("noted")


def _call(tb, name, **args):
    return tb.execute(ToolCall(id="c1", name=name, arguments=args))


def test_a_source_is_offered_checked_and_run(tmp_path):
    (tmp_path / "a.txt").write_text("1\n2\n3\n")
    tb = Toolbox(tmp_path, sources=[NotesSource(tmp_path)])
    names = [s["name"] for s in tb.schemas()]
    assert names[-2:] == ["count_lines", "append_note"] and "read_file" in names
    assert _call(tb, "count_lines", path="a.txt").content == "3"
    missing = _call(tb, "count_lines", path="nope.txt")
    assert missing.is_error and "nope.txt does not exist" in missing.content
    bad = _call(tb, "count_lines", path=3)
    assert bad.is_error and "must be of type string" in bad.content
    assert _call(tb, "count_lines").is_error
    assert tb.is_read_only("count_lines") and not tb.is_read_only("append_note")
    assert tb.is_read_only("grep") and not tb.is_read_only("bash")


def test_a_source_obeys_modes_and_deny_rules(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    plan = Toolbox(tmp_path, permissions=Permissions(mode="plan"), sources=[NotesSource(tmp_path)])
    assert _call(plan, "count_lines", path="a.txt").content == "1"      # read-only runs
    refused = _call(plan, "append_note", text="hi")
    assert refused.is_error and "plan mode" in refused.content
    assert not (tmp_path / "NOTES").exists()

    headless = Toolbox(tmp_path, permissions=Permissions(mode="default"),
                       sources=[NotesSource(tmp_path)])
    asked = _call(headless, "append_note", text="hi")
    assert asked.is_error and "approval" in asked.content and not (tmp_path / "NOTES").exists()

    denied = Toolbox(tmp_path, permissions=Permissions(mode="yolo", deny=[Rule.parse("count_lines")]),
                     sources=[NotesSource(tmp_path)])
    r = _call(denied, "count_lines", path="a.txt")
    assert r.is_error and "denied by the rule count_lines" in r.content
    assert _call(denied, "append_note", text="hi").content == "noted"
    assert (tmp_path / "NOTES").read_text() == "hi\n"
