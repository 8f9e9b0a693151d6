"""`groundup chat --model DIR`: talk to a model in the terminal, its answer streamed.

A model directory uses its own chat template (HF models) or groundup's chat format (our
models); `--model` also takes any provider spec (openai:NAME, anthropic:NAME, replay:FILE).
It lives with the providers, not the chat format: that is what it talks to (any provider the
agent can use, without tools). Design choice: plain `input()` -- it works the same in a
terminal, through a pipe (one line per turn, handy for scripts and tests) and under pexpect;
readline gives line editing when available. The conversation is the message list; /reset empties it, /exit (or Ctrl-D) leaves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groundup.argtypes import nonneg_float, nonneg_int, positive_int, probability
from groundup.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Chat with a model in the terminal. The model's answer streams as it is "
                     "generated. Type /reset to start over, /exit or Ctrl-D to quit.")
    p.add_argument("--model", required=True,
                   help="a model directory (ours or a HF Llama/Qwen2/Qwen3 one), or a provider "
                        "spec: local:DIR, openai:NAME, anthropic:NAME, replay:FILE")
    p.add_argument("--system", default=None, help="a system prompt for the conversation")
    p.add_argument("--max-tokens", type=positive_int, default=512, help="the most tokens per answer (default 512)")
    p.add_argument("--temperature", type=nonneg_float, default=0.7, help="sampling temperature, 0 = greedy (default 0.7)")
    p.add_argument("--top-p", type=probability, default=0.95, help="nucleus sampling (default 0.95)")
    p.add_argument("--top-k", type=nonneg_int, default=0, help="keep the k most likely tokens, 0 = off")
    p.add_argument("--seed", type=nonneg_int, default=None, help="random seed, for reproducible answers")
    p.add_argument("--base-url", default=None, help="for openai:/anthropic: models, the API's URL")


def open_model(args: argparse.Namespace):
    from groundup.providers import PROVIDERS, load_model

    spec = args.model
    prefix = spec.partition(":")[0]
    if prefix not in PROVIDERS or Path(spec).exists():
        spec = f"local:{spec}"
    if spec.startswith("local:"):
        path = Path(spec[len("local:"):])
        if not path.is_dir():
            what = "is a file, not a model directory" if path.is_file() else "not found"
            raise UserError(f"model directory {path} {what}: give a directory with config.json "
                            "(or a spec such as openai:gpt-4o-mini)")
        return load_model(spec, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                          seed=args.seed, max_tokens=args.max_tokens)
    model = load_model(spec, base_url=args.base_url, temperature=args.temperature)
    model.check()                            # fail now, in one line, if the endpoint is wrong
    return model


def run(args: argparse.Namespace) -> int:
    from groundup.providers import Finish, TextDelta, ToolCallEvent

    if sys.stderr.isatty():            # a progress note for a person, not for a script's log
        print(f"loading {args.model} ...", file=sys.stderr, flush=True)
    model = open_model(args)
    tty = sys.stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        print("type a message; /reset starts over, /exit quits", file=sys.stderr)
    system = [{"role": "system", "content": args.system}] if args.system else []
    messages: list[dict] = list(system)
    while True:
        try:
            line = input("> " if tty else "")
        except EOFError:
            break
        if not line.strip():
            continue
        if line.strip() in ("/exit", "/quit"):
            break
        if line.strip() == "/reset":
            messages = list(system)
            print("(conversation cleared)", file=sys.stderr)
            continue
        messages.append({"role": "user", "content": line})
        text, finish = [], None
        for ev in model.stream(messages, [], max_tokens=args.max_tokens):
            if isinstance(ev, TextDelta):
                text.append(ev.text)
                sys.stdout.write(ev.text)
                sys.stdout.flush()
            elif isinstance(ev, ToolCallEvent):   # no tools are offered, but a model may try
                sys.stdout.write(f"\n[tool call {ev.call.name} {json.dumps(ev.call.arguments)}]")
            elif isinstance(ev, Finish):
                finish = ev
        sys.stdout.write("\n")
        sys.stdout.flush()
        if finish is not None:
            print(f"({finish.usage.completion_tokens} tokens, {finish.reason})", file=sys.stderr)
        # a tool call with no tool to answer it is left out of the history: APIs reject that
        messages.append({"role": "assistant", "content": "".join(text)})
    return 0
