"""The examples of docs/00-how-a-coding-agent-works.md, produced by running the code.

    python docs/examples/agent_request.py [--tokenizer runs/cpu/tokenizer]   (without one: a tiny one)

A two-file repository whose `add` subtracts; a replayed model (providers/replay.py) whose five
scripted turns fix it through the agent's real loop, tools and session file (`groundup -p`);
then the first model request of that run three ways: the system prompt, the request an
OpenAI-compatible server receives, and the tokens our own model reads (the compact prompt and
its four tool lines, rendered by chat/format.py with a speedrun's tokenizer).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from groundup.agent.prompt import system_prompt
from groundup.agent.tools import CORE_TOOLS, Toolbox
from groundup.chat.format import render_conversation, render_text
from groundup.providers.openai import to_openai_messages, to_openai_tools
from groundup.tokenizer import load_tokenizer

TURNS = [
    {"content": "I'll run the tests first.", "tool_calls": [{"name": "bash", "arguments": {"command": "python3 test_calc.py"}}]},
    {"content": "`add` returns the wrong value. Let me read it.", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc.py"}}]},
    {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}}]},
    {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "python3 test_calc.py"}}]},
    {"content": "Fixed `add` in calc.py: it subtracted instead of adding. `python3 test_calc.py` now passes."},
]


def run_demo(work: Path) -> list[dict]:
    repo = work / "demo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n")
    (repo / "test_calc.py").write_text("from calc import add, mul\n\nassert add(2, 3) == 5, add(2, 3)\n"
                                       "assert mul(2, 3) == 6\nprint('all tests passed')\n")
    (repo / "AGENTS.md").write_text("Run the tests with `python3 test_calc.py`.\n")
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    script = work / "demo.jsonl"
    script.write_text("".join(json.dumps(t) + "\n" for t in TURNS))
    argv = ["-p", "The tests fail. Fix the bug.", "--model", f"replay:{script}", "--permission-mode",
            "accept-edits", "--allow", "bash(python3 test_calc.py)", "--output-format", "json"]
    p = subprocess.run([sys.executable, "-m", "groundup", *argv], cwd=repo, capture_output=True, text=True)
    print("$ groundup " + " ".join(argv[:1] + [json.dumps(argv[1])] + argv[2:]) + "\n" + p.stdout)
    session = sorted((repo / ".groundup" / "sessions").glob("*.jsonl"))[-1]
    return [json.loads(line) for line in session.read_text().splitlines() if line.strip()]


def tiny_tokenizer():
    """No speedrun here yet: a tiny tokenizer trained on 40 standard-library files (a second) --
    the same text, more and shorter tokens than the speedrun's 4,096."""
    import dataclasses

    from groundup.speedrun.pipeline import corpus_files
    from groundup.speedrun.presets import PRESETS
    from groundup.tokenizer import train_tokenizer
    print("== (no speedrun tokenizer here: a tiny one, 1,024 tokens, trained on 40 files -- the token counts below are its)")
    return train_tokenizer(corpus_files(dataclasses.replace(PRESETS["cpu"], corpus_files=40)),
                           vocab_size=1024, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="runs/cpu/tokenizer", help="a tokenizer directory (a speedrun's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        msgs = run_demo(Path(tmp))
        root = Path(tmp) / "demo"
        print(f"== {len(msgs)} messages:", " ".join(m["role"] for m in msgs))
        print("== the system prompt:\n" + msgs[0]["content"])
        schemas = Toolbox(root).schemas()
        print("== to an OpenAI-compatible server: one of the tools")
        print(json.dumps(next(t for t in to_openai_tools(schemas) if t["function"]["name"] == "bash"), indent=2))
        print("== ... and the history after the first tool call")
        for m in to_openai_messages(msgs)[1:4]:
            print(json.dumps(m))
        tok = tiny_tokenizer() if not Path(args.tokenizer).exists() else load_tokenizer(args.tokenizer)
        core = [s for s in schemas if s["name"] in CORE_TOOLS]
        conv = [{"role": "system", "content": system_prompt(Path("/tmp/demo"), compact=True)}] + msgs[1:4]
        ids, mask = render_conversation(conv, core, tok, add_generation_prompt=True)
        print("== to our own model: the same request in our chat format\n" + render_text(conv, core, add_generation_prompt=True))
        print(f"== {len(ids)} tokens, {sum(mask)} of them written by the assistant")

        def piece(i: int) -> str:
            s = tok.decode([i])
            return f"[{s}]" if i in tok.special_tokens.values() else repr(s)[1:-1]

        first = mask.index(1)
        last = first + mask[first:].index(0) if 0 in mask[first:] else len(mask)
        print("== the assistant's first turn, token by token:\n" + " | ".join(piece(i) for i in ids[first - 1:last]))
        a = ids.index(tok.special_tokens["<|tools|>"])
        b = ids.index(tok.special_tokens["<|end_of_turn|>"], a)
        print(f"== the tool lines, {b - a + 1} tokens:\n" + " | ".join(piece(i) for i in ids[a:b + 1]))


if __name__ == "__main__":
    main()
