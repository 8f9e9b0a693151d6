"""Chunking: cutting a workspace into the pieces that retrieval ranks and returns.

A chunk is what one search result is: a span of one file (`path`, `start_line`, `end_line`,
1-based and inclusive), its text, and a `header` that says where it sits (`pkg/mod.py ::
Parser.parse`). The header is indexed with the text -- a method's class name and its file's
path are often the words a query uses -- but a result prints the exact lines.

    Python     by its syntax tree: one chunk per function or method (decorators, signature
               and docstring included; a method's header names its class), one per class
               for the lines before its first method, module-level code in line windows;
               a function longer than MAX_LINES is cut into overlapping windows.
    Markdown   by headings: a section runs to the next heading of any level; its header is
               the heading path (`Install > From source`); fenced code is not a heading.
    other text line windows of WINDOW lines overlapping by OVERLAP.

Design choices:
- Every line of a file belongs to at least one chunk, so no text is unreachable (a test
  checks the union of spans).
- A file that does not parse (Python 2, a template) falls back to line windows.
- The content hash covers header and text: the index re-embeds a chunk only when the string
  it would embed changed, so an edit far away in the file costs nothing.
- What is skipped, and counted: binary files (a NUL byte in the first 8 KiB), files over
  MAX_FILE_BYTES, unreadable files. The walk itself honours .gitignore (groundup/gitignore.py).
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 1_000_000
WINDOW, OVERLAP = 40, 8          # plain-text windows
MAX_LINES = 150                  # a function longer than this is windowed
LONG_WINDOW, LONG_OVERLAP = 80, 16
MARKDOWN_SUFFIXES = (".md", ".markdown", ".rst")  # rst headings are not parsed: windows


@dataclass(frozen=True)
class Chunk:
    path: str            # posix, relative to the indexed root
    start_line: int      # 1-based, inclusive
    end_line: int
    kind: str            # function | class | module | section | lines
    header: str          # "path :: Class.method" -- where the chunk sits
    text: str            # the exact lines start..end

    @property
    def indexed_text(self) -> str:
        """What BM25 and the embedder see: the header line, then the code."""
        return f"{self.header}\n{self.text}"

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.indexed_text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Skipped(Exception):
    """A file that is not indexed; the message says why (binary, too large, unreadable)."""


def read_text_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise Skipped(f"larger than {max_bytes // 1000} kB")
        data = path.read_bytes()
    except OSError as e:
        raise Skipped(f"unreadable: {e.strerror or e}") from None
    if b"\x00" in data[:8192]:
        raise Skipped("binary")
    return data.decode("utf-8", errors="replace")


def _windows(path: str, lines: list[str], lo: int, hi: int, kind: str, header: str,
             size: int = WINDOW, overlap: int = OVERLAP) -> list[Chunk]:
    """Chunks of lines lo..hi (1-based, inclusive), `size` lines each, `overlap` shared."""
    out = []
    start = lo
    while start <= hi:
        end = min(hi, start + size - 1)
        text = "\n".join(lines[start - 1:end])
        if text.strip():
            out.append(Chunk(path, start, end, kind, header, text))
        if end == hi:
            break
        start = end + 1 - overlap
    return out


def chunk_lines(path: str, text: str) -> list[Chunk]:
    lines = text.split("\n")
    return _windows(path, lines, 1, len(lines), "lines", path)


def chunk_markdown(path: str, text: str) -> list[Chunk]:
    lines = text.split("\n")
    heads: list[tuple[int, int, str]] = []        # (line, level, title)
    fence = None
    for i, line in enumerate(lines, 1):
        m = re.match(r"\s{0,3}(`{3,}|~{3,})", line)
        if m:
            if fence is None:
                fence = m.group(1)[0]
            elif m.group(1)[0] == fence:
                fence = None
            continue
        m = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line) if fence is None else None
        if m:
            heads.append((i, len(m.group(1)), m.group(2)))
    if not heads:
        return chunk_lines(path, text)
    out, trail = [], []                           # trail: the open headings, outermost first
    starts = [1] + [h[0] for h in heads] if heads[0][0] > 1 else [h[0] for h in heads]
    for n, start in enumerate(starts):
        end = (starts[n + 1] - 1) if n + 1 < len(starts) else len(lines)
        head = next((h for h in heads if h[0] == start), None)
        if head:
            trail = [t for t in trail if t[0] < head[1]] + [(head[1], head[2])]
        title = " > ".join(t for _, t in trail)
        header = f"{path} :: {title}" if title else path
        out += _windows(path, lines, start, end, "section", header, LONG_WINDOW, LONG_OVERLAP)
    return out


def chunk_python(path: str, text: str) -> list[Chunk]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return chunk_lines(path, text)
    lines = text.split("\n")
    out: list[Chunk] = []
    covered = [False] * (len(lines) + 2)

    def span(node: ast.AST) -> tuple[int, int]:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return start, node.end_lineno or node.lineno

    def emit(lo: int, hi: int, kind: str, name: str) -> None:
        for i in range(lo, hi + 1):
            covered[i] = True
        header = f"{path} :: {name}"
        if hi - lo + 1 > MAX_LINES:
            out.extend(_windows(path, lines, lo, hi, kind, header, LONG_WINDOW, LONG_OVERLAP))
        else:
            out.append(Chunk(path, lo, hi, kind, header, "\n".join(lines[lo - 1:hi])))

    def visit_class(node: ast.ClassDef, prefix: str) -> None:
        name = prefix + node.name
        lo, hi = span(node)
        inner = [n for n in node.body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        own_end = (span(inner[0])[0] - 1) if inner else hi
        emit(lo, max(lo, own_end), "class", name)      # class line, docstring, attributes
        for child in inner:
            if isinstance(child, ast.ClassDef):
                visit_class(child, name + ".")
            else:
                emit(*span(child), "function", f"{name}.{child.name}")
        # statements between or after methods belong to the class too
        for child in node.body:
            if child not in inner and child.lineno > own_end:
                c_lo, c_hi = span(child)
                if not all(covered[c_lo:c_hi + 1]):
                    emit(c_lo, c_hi, "class", name)

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            emit(*span(node), "function", node.name)
        elif isinstance(node, ast.ClassDef):
            visit_class(node, "")
    # module-level code: the runs of lines no definition covers, in windows
    run_start = None
    for i in range(1, len(lines) + 2):
        free = i <= len(lines) and not covered[i]
        if free and run_start is None:
            run_start = i
        elif not free and run_start is not None:
            out.extend(_windows(path, lines, run_start, i - 1, "module", f"{path} :: <module>"))
            run_start = None
    out.sort(key=lambda c: (c.start_line, c.end_line))
    return out


def chunk_text(path: str, text: str) -> list[Chunk]:
    """Chunks of one file's text, by the file's kind (its suffix)."""
    if path.endswith((".py", ".pyi")):
        return chunk_python(path, text)
    if path.endswith(MARKDOWN_SUFFIXES[:2]):
        return chunk_markdown(path, text)
    return chunk_lines(path, text)
