"""`search_code`: the retrieval index (groundup/rag/) as an agent tool.

    search_code(query, k?, path_glob?)  ->  the k chunks that best match the query's *meaning*
                                            (hybrid BM25 + embeddings), each as numbered lines

grep finds the words you type; search_code also finds code that means the same thing in other
words ("remove a user" -> `def delete_account`). The agent gets it when the workspace has an
index (`groundup index`), next to grep, and chooses.

Design choices:
- A `ToolSource` (tools.py): the Toolbox checks its arguments and asks permissions exactly as
  for a core tool; it is read-only, so it runs without asking in every mode.
- The index is refreshed incrementally before the first search of a session (files edited
  since `groundup index` are re-chunked and re-embedded), then reused (rag/search.py).
- Results print like read_file (`{n:>6}\\t{line}`), so the model can edit from them after a
  read; a chunk past MAX_LINES is cut with a note saying how to read the rest. Files that
  the permission rules hide from reading (`read(.env)` denied) are hidden here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from groundup.agent.tools import READ_MAX_CHARS, ToolError, ToolResult
from groundup.errors import UserError
from groundup.rag.search import index_path, search_code

MAX_K = 20
MAX_LINES = 60

SCHEMA = {
    "name": "search_code",
    "description": "Search the workspace by meaning, not only exact words: returns the code "
                   "chunks (functions, classes, doc sections) that best match a natural-language "
                   "query, with path and line numbers. Use it when you do not know the names "
                   "used in the code; use grep for an exact identifier or string.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["query"],
                   "properties": {
                       "query": {"type": "string",
                                 "description": "what you are looking for, in words"},
                       "k": {"type": "integer", "description": f"how many results (default 5, "
                                                                f"at most {MAX_K})"},
                       "path_glob": {"type": "string",
                                     "description": "only paths matching this glob, e.g. src/**/*.py"}}},
}


def format_results(results: list[dict[str, Any]]) -> str:
    if not results:
        return "no results"
    out: list[str] = []
    for r in results:
        lines = r["text"].split("\n")
        shown = lines[:MAX_LINES]
        body = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(shown, r["start_line"]))
        more = ""
        if len(lines) > MAX_LINES:
            more = (f"\n[{len(lines) - MAX_LINES} more lines: read_file {r['path']} "
                    f"offset={r['start_line'] + MAX_LINES}]")
        out.append(f"{r['path']}:{r['start_line']}-{r['end_line']}\n{body}{more}")
    text = "\n\n".join(out)
    if len(text) > READ_MAX_CHARS:
        text = text[:READ_MAX_CHARS] + "\n[output cut: ask for fewer results (k)]"
    return text


class SearchCode:
    """The ToolSource; `visible(rel_path)` hides what the permission rules forbid reading."""

    def __init__(self, root: Path, db: Path | None = None,
                 visible: Callable[[str], bool] | None = None):
        self.root, self.db = Path(root), db or index_path(root)
        self.visible = visible or (lambda rel: True)

    def schemas(self) -> list[dict[str, Any]]:
        return [SCHEMA]

    def is_read_only(self, name: str) -> bool:
        return True

    def call(self, name: str, args: dict[str, Any]) -> ToolResult:
        k = args.get("k", 5)
        if not 1 <= k <= MAX_K:
            raise ToolError(f"k must be between 1 and {MAX_K}")
        if not args["query"].strip():
            raise ToolError("the query is empty: say what you are looking for")
        try:
            # ask for a few more, in case the permission rules hide some
            results = search_code(self.root, args["query"], k=k + 5, glob=args.get("path_glob"),
                                  db=self.db)
        except UserError as e:
            raise ToolError(str(e)) from None
        results = [r for r in results if self.visible(r["path"])][:k]
        return ToolResult(format_results(results))


def search_code_sources(root: Path, visible: Callable[[str], bool] | None = None) -> tuple:
    """(SearchCode,) when the workspace has an index, else () -- for Agent(tool_sources=...)
    and for `groundup mcp serve` (McpServer(sources=...))."""
    return (SearchCode(root, visible=visible),) if index_path(root).is_file() else ()
