"""The docs keep their promises: every `groundup ...` command they show parses as written, the
cheap ones run, and every link between them (and into the code) leads somewhere.

What counts as a command: inside a fenced code block, a line `$ groundup ...` (a console
transcript: the lines after it are output), or a line that starts with `groundup` or
`.venv/bin/groundup` in a block tagged bash, sh, shell or console. A trailing `\\` continues it on
the next line; `# ...` ends it; an argument written `...` (an elided part) is left out. Each is
parsed by the very parser `groundup` builds for it (groundup/cli.py), so an option that does not
exist, a wrong choice or a missing required argument fails here, with the file and line.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
SHELL_TAGS = {"bash", "sh", "shell", "console"}


def fenced_commands(path: Path) -> list[tuple[int, list[str], bool]]:
    """(line number, the words after `groundup`, whether the docs show it refused) for each command
    in `path`'s code blocks. `...` stays among the words (an elided part); a command whose console
    output starts with `groundup: error` is shown being refused."""
    out: list[tuple[int, list[str], bool]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    tag, pending, start = None, "", 0
    for n, line in enumerate(lines, 1):
        fence = re.match(r"^\s*(```+|~~~+)\s*(\S*)", line)
        if fence and not pending:
            tag = None if tag is not None else fence.group(2).lower()
            continue
        if tag is None:
            continue
        text = line.strip()
        if pending:
            text = pending + " " + text
        elif text.startswith("$ groundup") or (tag in SHELL_TAGS and re.match(r"(\.venv/bin/)?groundup(\s|$)", text)):
            text, start = text.removeprefix("$ "), n
        else:
            continue
        if text.endswith("\\"):
            pending = text[:-1]
            continue
        pending = ""
        refused = n < len(lines) and lines[n].strip().startswith("groundup: error")
        out.append((start, shlex.split(text, comments=True)[1:], refused))
    return out


def all_commands():
    return [pytest.param(argv, refused, id=f"{p.relative_to(ROOT)}:{n}") for p in DOCS
            for n, argv, refused in fenced_commands(p)]


# argument types that check the disk: a chapter's `--init runs/base` names what an earlier step
# made, so the docs are checked for the shape of each command, not for files this checkout lacks
DISK_CHECKS = {"existing_file", "existing_dir", "existing_path", "model_dir"}


def loosen(parser: argparse.ArgumentParser, required: bool) -> None:
    """in the parser and its subcommands: no check of the disk, and (an elided command, `groundup
    train base ... --nproc 2`, checked for the options it does show) nothing required"""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                loosen(sub, required)
            continue
        if getattr(action.type, "__module__", "") == "groundup.argtypes" and \
                getattr(action.type, "__name__", "") in DISK_CHECKS:
            action.type = None
        if not required:
            action.required = False


def parser_for(argv: list[str], elided: bool) -> tuple[argparse.ArgumentParser, list[str]]:
    """the parser `groundup` uses for argv, and the arguments it parses"""
    from groundup.cli import COMMANDS
    name = argv[0] if argv and argv[0] in COMMANDS else "agent"
    rest = argv[1:] if argv and argv[0] in COMMANDS else argv
    parser = argparse.ArgumentParser(prog=f"groundup {name}", exit_on_error=False)
    importlib.import_module(COMMANDS[name][0]).add_arguments(parser)
    loosen(parser, required=not elided)
    return parser, rest


def parse_error(argv: list[str], capsys) -> str | None:
    """why `groundup argv` does not parse, or None. An elided part (`...`) may stand for
    arguments (dropped) or for an option's value (a placeholder): either reading may parse."""
    elided = "..." in argv
    readings = [[w for w in argv if w != "..."], ["X" if w == "..." else w for w in argv]] if elided else [argv]
    errors = []
    for words in readings:
        parser, rest = parser_for(words, elided)
        try:
            parser.parse_args(rest)
            return None
        except SystemExit as e:
            if e.code in (0, None):
                return None
            errors.append(capsys.readouterr().err.strip())
        except argparse.ArgumentError as e:
            errors.append(str(e))
    return errors[0]


@pytest.mark.parametrize("argv,refused", all_commands())
def test_every_command_in_the_docs_parses_as_written(argv, refused, capsys):
    from groundup.cli import COMMANDS
    assert not argv or argv[0] in COMMANDS or argv[0].startswith("-"), \
        f"`groundup {argv[0]}` is not a command (groundup --help lists them)"
    if refused:
        return                                # shown being refused: its error is the point
    error = parse_error(argv, capsys)
    assert error is None, f"`groundup {' '.join(argv)}` does not parse: {error}"


def test_the_docs_show_commands_and_the_extractor_finds_them(tmp_path, capsys):
    doc = tmp_path / "x.md"
    doc.write_text("```bash\ngroundup train base --depth 2 \\\n   --steps 3   # a comment\n"
                   "make test\n```\n```\ngroundup (Python)   9.76\n$ groundup eval agent ... --workers 2\n"
                   "output line\n$ groundup train base --steps -3\ngroundup: error: argument --steps\n```\n"
                   "prose: groundup chat --nope\n")
    assert fenced_commands(doc) == [(2, ["train", "base", "--depth", "2", "--steps", "3"], False),
                                    (8, ["eval", "agent", "...", "--workers", "2"], False),
                                    (10, ["train", "base", "--steps", "-3"], True)]
    assert len(all_commands()) > 30                          # the chapters do show commands
    assert "--temperature" in parse_error(["generate", "--model", "m", "--temperature", "hot"], capsys)
    assert parse_error(["-p", "x", "--model", "..."], capsys) is None       # an elided value
    assert parse_error(["train", "base", "...", "--nproc", "2"], capsys) is None


def run_groundup(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "groundup", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_each_command_the_docs_use_explains_itself_and_the_cheap_ones_run(tmp_path):
    """`--help` for every command path the docs use (`groundup train base --help`, ...), and the
    commands that cost seconds run for real in an empty directory: they must exit 0."""
    from groundup.cli import COMMANDS
    shown = [[w for w in argv if w != "..."] for p in DOCS for _, argv, _ in fenced_commands(p)]
    paths = {tuple(a[:2]) if len(a) > 1 and not a[1].startswith("-") and a[0] in
             ("train", "tokenizer", "tasks", "eval", "mcp") else tuple(a[:1]) for a in shown if a}
    for path in sorted(p for p in paths if not p or p[0] in COMMANDS):
        r = run_groundup([*path, "--help"], tmp_path)
        assert r.returncode == 0 and "usage:" in r.stdout, (path, r.stderr[-500:])
    cheap = [a for a in shown if a[:2] == ["tasks", "generate"] and int(a[a.index("--n") + 1]) <= 2]
    assert cheap
    for argv in cheap:
        r = run_groundup(argv, tmp_path)
        assert r.returncode == 0, (argv, r.stderr[-2000:])


# ----------------------------------------------------------------------------- links

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens"""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.M)}


def test_every_link_in_the_docs_leads_somewhere():
    broken = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):
                continue                                      # http:, mailto:: not checked here
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file).resolve() if file else doc
            if not dest.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


# ----------------------------------------------------------------------------- examples

def test_the_speedrun_prompt_example_renders_what_the_agent_sends(tmp_path):
    """docs/08's prompt comes from docs/examples/speedrun_prompt.py: without a run it generates
    the cpu preset's first held-out task and trains a tiny tokenizer (about a second), and the
    tokens it prints decode back to the text it prints."""
    from groundup.agent.tools import CORE_TOOLS, Toolbox
    from groundup.chat.format import render_tool
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "speedrun_prompt.py")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "== task heldout-t1-1100000 (tier 1," in out
    for schema in Toolbox(tmp_path, tools=CORE_TOOLS).schemas():        # the real tool lines
        assert render_tool(schema) in out
    text = out.split("== rendered in our chat format (chat/format.py):\n")[1].split("\n== ")[0]
    assert text.startswith("<|begin_of_text|><|system|>You are a coding agent in /tmp/groundup-")
    assert text.endswith("<|end_of_turn|><|assistant|>")
    pieces = out.split("one by one ([...] is one special token):\n")[1].strip().split(" | ")
    ids = out.split("== the token ids:\n")[1].split("\n")[0].split()
    assert len(pieces) == len(ids) == int(re.search(r"== (\d+) tokens:", out).group(1))
    assert "".join(p[1:-1] if p.startswith("[<|") else p.encode().decode("unicode_escape")
                   for p in pieces) == text
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "speedrun_prompt.py"),
                        "--run", str(tmp_path / "nowhere")], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "is not a directory" in r.stderr and "Traceback" not in r.stderr


def test_the_agent_request_example_runs_the_real_harness_on_a_fresh_clone(tmp_path):
    """docs/00's examples: a replayed model fixes the two-file repository through `groundup -p`
    (no speedrun needed: without its tokenizer, a tiny one is trained)."""
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "agent_request.py")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"is_error": false' in r.stdout and '"stop_reason": "end_turn"' in r.stdout
    assert "== 11 messages: system user assistant tool assistant tool assistant tool assistant tool assistant" in r.stdout
    assert "<|tool_call|>bash{\"command\": \"python3 test_calc.py\"}<|end_tool_call|>" in r.stdout
