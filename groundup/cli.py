"""The `groundup` command: one entry point, a subcommand per layer.

Design: each layer owns its command-line code in `groundup/<layer>/cli.py`, exposing
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int
This file only knows the table below, and imports a layer's module when its command is
used -- so `groundup --help` is instant (no torch import) and no layer's CLI knows another's.

With no command (or only options such as `-p TASK`), `groundup` is the coding agent, like
`claude`: interactive in a terminal, headless with `-p`.

What goes wrong is reported in one place, `groundup.errors.guard`: a user's mistake is one line
and exit 2, a failure one line and exit 1, Ctrl-C 130, SIGTERM 143, and a bug one line naming
the log file that holds its traceback. Argument values are checked as they are parsed
(`groundup.argtypes`), before a command does anything.
"""

from __future__ import annotations

import importlib
import sys

from groundup.argtypes import Parser
from groundup.errors import UserError, guard

# name -> (module, one-line help). Order is the order of `groundup --help`, which follows
# the data flow through the layers.
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenizer": ("groundup.tokenizer.cli", "train, inspect and use byte-level BPE tokenizers"),
    "generate": ("groundup.engine.cli", "generate text from a model with the KV-cache engine"),
    "chat": ("groundup.providers.chat_cli", "chat with a model in the terminal (its chat template)"),
    "export": ("groundup.model.cli", "export a model directory (e.g. to Hugging Face format)"),
    "train": ("groundup.train.cli", "pretrain or fine-tune a model (resumable, multi-process)"),
    "agent": ("groundup.agent.cli", "the coding agent (also what `groundup` alone runs)"),
    "hooks": ("groundup.agent.hooks_cli", "list the agent's hooks here; approve the project's"),
    "rewind": ("groundup.agent.rewind_cli", "undo the agent's file edits and conversation to before a turn"),
    "tasks": ("groundup.tasks.cli", "generate bug-fix tasks for agents"),
    "mcp": ("groundup.mcp.cli", "MCP: serve the agent's tools, manage the servers it uses"),
    "index": ("groundup.rag.cli", "build or refresh a workspace's retrieval index (BM25 + embeddings)"),
    "search": ("groundup.rag.cli", "search the retrieval index: bm25, dense or hybrid"),
    "embed": ("groundup.rag.cli", "embed texts with the sentence encoder (all-MiniLM-L6-v2)"),
    "ask": ("groundup.rag.ask_cli", "answer a question from the workspace's index, with cited sources"),
    "eval": ("groundup.tasks.eval_cli", "evaluate a model as a coding agent on tasks"),
    "serve": ("groundup.serve.cli", "an OpenAI-compatible server (and web chat page) on a model"),
    "speedrun": ("groundup.speedrun", "the main job: tokenizer -> pretrain -> SFT -> agent eval -> report"),
}


def _top_help() -> str:
    width = max(len(n) for n in COMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        "usage: groundup [COMMAND] [ARGS...]\n"
        "       groundup [-p TASK] [--model SPEC] [agent options]   (the coding agent)\n\n"
        "groundup: a coding agent and every layer beneath it, built from the ground up.\n\n"
        f"commands:\n{rows}\n\n"
        "Run `groundup COMMAND --help` for a command's options, `groundup agent --help` for the\n"
        "agent's (they also apply to plain `groundup`)."
    )


def run_command(name: str, argv: list[str]) -> int:
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise UserError(f"`groundup {name}` is not built yet in this version") from None
        raise
    parser = Parser(prog=f"groundup {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return int(module.run(args) or 0)


def dispatch(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0
    if argv and argv[0] in ("-V", "--version"):
        from groundup import __version__
        print(f"groundup {__version__}")
        return 0
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    if argv and not argv[0].startswith("-"):
        raise UserError(f"unknown command {argv[0]!r}; run `groundup --help` to list them "
                        f"(to give the agent a task, use `groundup -p {argv[0]!r}`)")
    return run_command("agent", argv)


def main(argv: list[str] | None = None) -> int:
    # signal handlers only when this is the process's entry point, not a test calling main()
    return guard(lambda: dispatch(list(sys.argv[1:] if argv is None else argv)), signals=argv is None)


if __name__ == "__main__":
    sys.exit(main())
