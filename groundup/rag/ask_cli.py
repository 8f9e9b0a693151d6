"""`groundup ask QUESTION`: retrieve from the workspace's index, answer through any model
provider with numbered citations, and print the sources the answer cites.

Wiring only: retrieval is rag/search.py, the prompt and the citation parsing rag/ask.py, the
model a provider (openai:, anthropic:, local:, replay:).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groundup.argtypes import positive_int
from groundup.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Answer a question about the workspace from its retrieval index: the best "
                     "chunks go into the prompt as numbered sources, the model's answer streams "
                     "back, and the sources it cites are listed (path:start-end).")
    p.add_argument("question")
    p.add_argument("--model", "-m", metavar="SPEC",
                   help="openai:NAME | anthropic:NAME | local:PATH | replay:FILE")
    p.add_argument("--base-url", metavar="URL", help="endpoint for openai: models")
    p.add_argument("--index", metavar="DB", help="the index (default ./.groundup/index.db)")
    p.add_argument("--k", type=positive_int, default=6, help="chunks put in the prompt (default 6)")
    p.add_argument("--mode", choices=("bm25", "dense", "hybrid"), help="retrieval ranking")
    p.add_argument("--glob", metavar="GLOB", help="only paths matching this glob")
    p.add_argument("--max-tokens", type=positive_int, default=1024, help="answer length limit")
    p.add_argument("--show-prompt", action="store_true",
                   help="print the prompt sent to the model (to stderr) before the answer")
    p.add_argument("--json", action="store_true",
                   help="print {question, chunks, answer, cited, unknown_citations} at the end "
                        "instead of streaming")


def run(args: argparse.Namespace) -> int:
    from groundup.providers import load_model
    from groundup.providers.base import Finish, TextDelta
    from groundup.rag.ask import build_messages, citations
    from groundup.rag.search import Searcher
    if not args.model:
        raise UserError("pass --model SPEC: e.g. openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, "
                        "local:runs/cpu/model")
    db = Path(args.index) if args.index else Path(".groundup") / "index.db"
    results = Searcher(db).search(args.question, k=args.k, mode=args.mode, glob=args.glob)
    messages = build_messages(args.question, results)
    if args.show_prompt:
        for m in messages:
            print(f"--- {m['role']}\n{m['content']}", file=sys.stderr)
        print("---", file=sys.stderr)
    options = {"base_url": args.base_url} if args.base_url else {}
    model = load_model(args.model, **options)
    parts: list[str] = []
    finish = None
    for ev in model.stream(messages, [], max_tokens=args.max_tokens):
        if isinstance(ev, TextDelta):
            parts.append(ev.text)
            if not args.json:
                print(ev.text, end="", flush=True)
        elif isinstance(ev, Finish):
            finish = ev
    answer = "".join(parts)
    cited, unknown = citations(answer, len(results))
    if args.json:
        print(json.dumps({"question": args.question, "model": model.name,
                          "chunks": [r.as_dict() for r in results], "answer": answer,
                          "cited": [{"n": n, "source": results[n - 1].source} for n in cited],
                          "unknown_citations": unknown,
                          "finish": finish.reason if finish else None}, ensure_ascii=False))
        return 0
    print()
    if cited:
        print("\nSources:")
        for n in cited:
            print(f"  [{n}] {results[n - 1].source}")
    else:
        print("\n(the answer cites no source)")
    if unknown:
        print(f"groundup: warning: the answer cites sources that were not given: "
              f"{', '.join(f'[{n}]' for n in unknown)}", file=sys.stderr)
    return 0
