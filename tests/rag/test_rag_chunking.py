"""Chunks: Python by syntax tree, Markdown by headings, other text by overlapping windows."""

import sysconfig
from pathlib import Path

from groundup.rag.chunking import chunk_text

PY = '''"""Module docstring."""
import os

CONSTANT = 3


@decorator
def top(a, b):
    """Add two numbers."""
    return a + b


class Parser:
    """Parses things."""
    mode = "strict"

    def parse(self, text):
        return text.split()

    async def fetch(self):
        pass

    class Inner:
        def deep(self):
            return 1


if __name__ == "__main__":
    top(1, 2)
'''


def test_python_by_syntax_tree():
    chunks = chunk_text("pkg/mod.py", PY)
    by_header = {c.header: c for c in chunks}
    top = by_header["pkg/mod.py :: top"]
    assert top.kind == "function" and top.text.startswith("@decorator") and top.start_line == 7
    assert by_header["pkg/mod.py :: Parser.parse"].text.strip().startswith("def parse(self, text)")
    assert "pkg/mod.py :: Parser.fetch" in by_header
    assert "pkg/mod.py :: Parser.Inner.deep" in by_header
    cls = by_header["pkg/mod.py :: Parser"]
    assert "Parses things" in cls.text and "def parse" not in cls.text
    module = [c for c in chunks if c.kind == "module"]
    assert any("CONSTANT = 3" in c.text for c in module)
    assert any("__main__" in c.text for c in module)
    lines = PY.split("\n")
    for c in chunks:                                         # spans are the exact lines
        assert c.text == "\n".join(lines[c.start_line - 1:c.end_line])


def test_every_line_is_in_some_chunk():
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:30]:
        text = f.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        covered = set()
        for c in chunk_text(f.name, text):
            covered.update(range(c.start_line, c.end_line + 1))
        missing = [n for n in range(1, len(lines) + 1) if lines[n - 1].strip() and n not in covered]
        assert not missing, (f.name, missing[:5])


def test_markdown_by_headings_not_in_fences():
    md = "intro line\n# Guide\ntext\n## Install\n```sh\n# not a heading\npip install x\n```\n## Use\nrun\n"
    chunks = chunk_text("README.md", md)
    assert [c.header for c in chunks] == ["README.md", "README.md :: Guide",
                                          "README.md :: Guide > Install", "README.md :: Guide > Use"]
    assert "# not a heading" in chunks[2].text


def test_windows_overlap_and_syntax_errors_fall_back():
    text = "\n".join(f"line {i}" for i in range(1, 101))
    chunks = chunk_text("notes.txt", text)
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 40), (33, 72), (65, 100)]
    broken = chunk_text("old.py", "print 'python 2'\n" * 5)
    assert [c.kind for c in broken] == ["lines"]


def test_hash_follows_content_not_position():
    a = chunk_text("m.py", "def f():\n    return 1\n")[0]
    b = chunk_text("m.py", "\n\n\ndef f():\n    return 1\n")[0]
    c = chunk_text("m.py", "def f():\n    return 2\n")[0]
    assert a.hash == b.hash != c.hash and b.start_line == 4
