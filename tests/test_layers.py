"""groundup's structure, checked: lower layers never import higher ones, and no module imports
another in a circle.

LAYERS below is the one place the layer order is written, bottom first; docs/README.md draws it.
The rules, for every `groundup` import in every module (imports inside functions included: a
lazy import is a dependency all the same):

1. Each module has its place: the most specific entry of LAYERS that names it -- a package and
   everything in it ("agent"), or one module ("mcp.server"). So one package may span layers:
   groundup/mcp/ holds the protocol and the client (below the agent, which takes tools from
   them) and the server (above it: it serves the agent's tools).
2. A module imports anything under its own entry and anything on a lower line. Entries that
   share a line are independent: neither imports the other -- unless both are parts of one
   package (mcp.server and mcp.http_server: the two halves of the MCP server).
3. Command modules -- groundup/cli.py, any <package>/cli.py or *_cli.py, and __main__.py --
   wire layers together for the command line: they sit above every layer and may import any of
   them, and only another command module imports them (their logic stays in the layer it
   belongs to, where a test or another layer can reach it). A command still lives in the
   package of the layer it serves, so that its path says where its logic is:
   `groundup chat` talks to providers, and lives in providers/chat_cli.py.
4. No cycle among modules, command modules included.

A new package or a module placed on its own: add it to LAYERS, on the line its imports allow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "groundup"

# bottom first; one line per layer; a name is a package or a module under groundup/
LAYERS: list[list[str]] = [
    ["errors"],
    ["io"],
    ["argtypes", "gitignore"],                   # small helpers shared by every layer above
    ["tokenizer"],
    ["chat"],                                    # the chat format, tool calls, HF templates
    ["model"],                                   # the network (a GGUF export embeds the template)
    ["engine", "rag"],                           # inference; retrieval (chunks, BM25, encoder)
    ["train"],                                   # pretraining and SFT (its samples use the engine)
    ["providers", "mcp"],                        # model APIs | MCP protocol + client
    ["agent"],
    ["tasks", "serve", "mcp.server", "mcp.http_server"],   # evals | HTTP server | MCP server
    ["rl"],                                      # practises on tasks through the agent
    ["speedrun"],
]


def is_command(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module == "groundup.cli" or last in ("cli", "__main__") or last.endswith("_cli")


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file} for every module of the package"""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """the groundup modules that `name` imports, resolved to module names (`from groundup.x
    import y` is module x.y when y is a module, else module x)"""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "groundup"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # relative: from . import x
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "groundup":
                continue
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in found if m != name}


def place(module: str) -> tuple[int, str] | None:
    """(line, entry) of the most specific LAYERS entry naming `module`; None if none does"""
    rel = module.removeprefix("groundup.")
    best = None
    for line, entries in enumerate(LAYERS):
        for entry in entries:
            if (rel == entry or rel.startswith(entry + ".")) and (best is None or len(entry) > len(best[1])):
                best = (line, entry)
    return best


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(root)
    return {m: imports(m, f, known) for m, f in known.items()}


def unplaced(g: dict[str, set[str]]) -> list[str]:
    return [m for m in g if m != "groundup" and not is_command(m) and place(m) is None]


def violations(g: dict[str, set[str]]) -> list[str]:
    """one line per import that breaks rules 2 or 3"""
    bad = []
    for m, targets in sorted(g.items()):
        mine = place(m)
        for t in sorted(targets - {"groundup"}):
            if is_command(t) and not is_command(m):
                bad.append(f"{m} imports the command module {t} (move what it needs into a layer)")
                continue
            theirs = place(t)
            if is_command(m) or m == "groundup" or mine is None or theirs is None or theirs[1] == mine[1]:
                continue                          # commands wire anything; unplaced: reported apart
            if theirs[0] > mine[0]:
                bad.append(f"{m} (layer {mine[1]!r}) imports {t}, from the higher layer {theirs[1]!r}")
            elif theirs[0] == mine[0] and theirs[1].split(".")[0] != mine[1].split(".")[0]:
                bad.append(f"{m} ({mine[1]!r}) imports {t} ({theirs[1]!r}): entries on one line "
                           "are independent -- put one above the other in LAYERS")
    return bad


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """one import cycle of g, as a path that returns to its start; None if there is none"""
    state: dict[str, int] = {}                               # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(g.get(m, set()) - {"groundup"}):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (c := visit(t)):
                return c
        state[m] = 2
        path.pop()
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_every_module_has_a_place_in_the_layers():
    loose = unplaced(graph())
    assert not loose, f"{loose}: not in LAYERS -- add each to the line its imports allow (tests/test_layers.py)"


def test_no_module_imports_a_higher_layer_or_a_command():
    bad = violations(graph())
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_layers_name_each_entry_once():
    entries = [e for line in LAYERS for e in line]
    assert len(entries) == len(set(entries))


# the checker itself: it must see what it claims to see

def test_the_checker_finds_cycles_upward_imports_and_lazy_ones(tmp_path):
    pkg = tmp_path / "groundup"
    files = {"__init__.py": "", "errors.py": "",
             "tokenizer/__init__.py": "",
             "tokenizer/a.py": "from groundup.tokenizer import b\n",
             "tokenizer/b.py": "def f():\n    from groundup.tokenizer.a import x\n",   # lazy
             "model/__init__.py": "from . import net\n",                                  # relative
             "model/net.py": "import groundup.train.loop\n",                               # upward
             "chat/__init__.py": "",
             "serve/__init__.py": "from groundup.tasks import gen\n",                     # same line
             "tasks/__init__.py": "", "tasks/gen.py": "",
             "chat/cli.py": "from groundup.agent import loop\n",                          # a command
             "agent/__init__.py": "", "agent/loop.py": "from groundup.agent.cli import run\n",
             "agent/cli.py": "",
             "train/__init__.py": "", "train/loop.py": "",
             "mcp/__init__.py": "", "mcp/server.py": "from groundup.agent import loop\n",
             "mcp/client.py": "from groundup.errors import UserError\n",
             "newpkg/__init__.py": ""}
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    g = graph(pkg)
    assert g["groundup.tokenizer.b"] == {"groundup.tokenizer.a"}
    assert g["groundup.model"] == {"groundup.model.net"}
    assert find_cycle(g) == ["groundup.tokenizer.a", "groundup.tokenizer.b", "groundup.tokenizer.a"]
    assert unplaced(g) == ["groundup.newpkg"]
    bad = violations(g)
    assert len(bad) == 3, bad
    assert "groundup.agent.loop imports the command module groundup.agent.cli" in bad[0]
    assert "groundup.model.net (layer 'model') imports groundup.train.loop" in bad[1]
    assert "groundup.serve ('serve') imports groundup.tasks.gen ('tasks')" in bad[2]
    # the MCP server sits above the agent, the MCP client below it; commands wire anything
    assert place("groundup.mcp.server")[0] > place("groundup.agent.loop")[0] > place("groundup.mcp.client")[0]
    assert is_command("groundup.chat.cli") and is_command("groundup.tasks.eval_cli")
    assert is_command("groundup.cli") and not is_command("groundup.agent.client")
