"""Retrieval-augmented generation: retrieved chunks in front of a model, answers with citations.

    question ──search──> k chunks ──prompt──> [1] path:12-30 ```code```  [2] ...  Question: ...
             ──model───> "Members are erased by `delete_account` [1], which also ... [2]."
             ──parse───> cited: [1] accounts.py:1-4, [2] audit.py:10-22

The model sees only what retrieval found, numbered; asking it to cite by number makes every
claim checkable -- a reader opens `path:start-end` -- and a number that is not in the list
is an invention we can point at (`uncited` / `unknown` below).

Design choices:
- The instructions go in the system message and the sources in the user message, each in a
  fenced block under its `[n] path:start-end` line: the same shape for any provider.
- The prompt says what to do when the sources do not answer the question (say so), because
  a model given context tends to answer from it regardless.
- Citations are parsed from the answer text (`[2]`, `[1, 3]`, `[1][2]`), in first-cited order.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from groundup.rag.search import Result

SYSTEM = ("You answer questions about a codebase. Use only the numbered sources the user gives "
          "you. Cite the sources you use inline by number, like [1] or [2, 3]. If the sources "
          "do not contain the answer, say that they do not, and say what you would look for.")

_CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def format_sources(results: Sequence[Result]) -> str:
    blocks = []
    for n, r in enumerate(results, 1):
        fence = "````" if "```" in r.text else "```"
        blocks.append(f"[{n}] {r.source}\n{fence}\n{r.text}\n{fence}")
    return "\n\n".join(blocks)


def build_messages(question: str, results: Sequence[Result]) -> list[dict[str, Any]]:
    sources = format_sources(results) if results else "(no sources were found)"
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Sources:\n\n{sources}\n\nQuestion: {question}"}]


def citations(answer: str, n_sources: int) -> tuple[list[int], list[int]]:
    """(valid source numbers cited, in first-cited order; numbers cited that do not exist)."""
    cited, unknown = [], []
    for m in _CITE.finditer(answer):
        for num in (int(x) for x in m.group(1).split(",")):
            target = cited if 1 <= num <= n_sources else unknown
            if num not in target:
                target.append(num)
    return cited, unknown
