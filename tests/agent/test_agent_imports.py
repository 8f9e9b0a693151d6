"""The agent package imports no module in a circle (function-level imports count too: a lazy
import still ties two files together), and never imports a layer above it."""

import ast
from pathlib import Path

import groundup

PACKAGE = Path(groundup.__file__).parent


def module_imports() -> dict[str, set[str]]:
    """groundup module name -> the groundup modules it imports anywhere in its source."""
    mods = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found.update(t for t in targets if t in mods and t != name)
        edges[name] = found
    return edges


def reaches(edges: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A path of imports from start to goal, or None."""
    stack, seen = [(start, [start])], {start}
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == goal:
                return path + [nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_no_import_cycle_in_the_agent():
    edges = module_imports()
    agent = sorted(m for m in edges if m.startswith("groundup.agent."))
    assert "groundup.agent.tui" in agent and "groundup.agent.cli" in agent
    for m in agent:
        for dep in edges[m]:
            back = reaches(edges, dep, m)
            assert back is None, f"import cycle: {m} -> {' -> '.join(back)}"


def test_lower_layers_never_import_the_agent():
    edges = module_imports()
    lower = ("groundup.providers", "groundup.chat", "groundup.engine", "groundup.model",
             "groundup.tokenizer", "groundup.io", "groundup.errors")
    for m, deps in edges.items():
        if m.startswith(lower):
            assert not any(d.startswith("groundup.agent") for d in deps), (m, deps)
