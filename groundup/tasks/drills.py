"""Name drills: short conversations that end in the one decision a wrong-name fix needs.

    name_drills(n, seed) -> [messages, ...]     render each with chat.format.render_conversation

A wrong-variable or wrong-attribute bug is fixed by a line that differs from the buggy one in a
single name, and that name is elsewhere in the function: `self.deck.append(timber)` needs
`self.timbers`. In a whole oracle trajectory that decision is one token among ~1,200, once per
conversation; a drill is the tail of such a trajectory and nothing else -- the function as
read_file shows it, its diagnostics (agent/diagnostics.py), the buggy line read alone, and the
edit that fixes it -- ~250 tokens, the loss on the edit only. Thousands of them cost no test
run (the bug is checked in-process, as the generator checks its own) and mostly fit in the
padding of the rows that hold the conversations (train/data.py pack_examples).

Design choices:
- The same templates and made-up names as the training tasks (tasks/generate.py, vocab.py), so
  a drill teaches the decision, not a vocabulary; any kind of function or class, not only those
  whose bug raises (the decision is the same whether or not the traceback points at it).
- The shape of the real turns, so what is learned transfers: the same tool calls and results,
  the same fixed prose; the earlier turns are context (`train: false`).
- A mutation is kept only when it changes the result of one of the template's cases (a real
  bug), and when its line is unique in the file (the edit's old_string then matches once).
"""

from __future__ import annotations

import random
from typing import Any

from groundup.agent.diagnostics import report
from groundup.tasks import bugs
from groundup.tasks.generate import _evaluate, _Names
from groundup.tasks.templates import CLASSES, FUNCTIONS, instantiate
from groundup.tasks.vocab import camel

NAME_KINDS = ("wrong_variable", "wrong_attribute")


def _call(i: int, name: str, text: str, train: bool, **arguments: Any) -> list[dict[str, Any]]:
    msg: dict[str, Any] = {"role": "assistant", "content": text,
                           "tool_calls": [{"id": f"d{i}", "name": name, "arguments": arguments}]}
    if not train:
        msg["train"] = False
    return [msg]


def _numbered(lines: list[str], start: int = 1) -> str:
    return "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(lines, start))


def name_drill(rng: random.Random) -> list[dict[str, Any]] | None:
    """One drill from a random template and names, or None when the draw has no usable bug."""
    names = _Names("train", rng)
    pkg, mod = names.take(2)
    unit = instantiate(rng.choice(FUNCTIONS + CLASSES), names.take(5), rng)
    muts = [m for m in bugs.mutations(unit.code) if m.kind in NAME_KINDS and m.new is not None]
    if not muts:
        return None
    m = rng.choice(muts)
    buggy = bugs.apply(unit.code, m)
    good, bad = _evaluate([unit.code], unit.cases), _evaluate([buggy], unit.cases)
    if not any(not ok or v != gv for (_, gv), (ok, v) in zip(good, bad)):
        return None                                   # the same results: not a bug
    text = f'"""{camel(mod)} helpers of the {pkg} package."""\n\n\n' + buggy
    lines = text.splitlines()
    if text.count(m.new) != 1:                       # edit_file matches substrings
        return None
    path, n = f"{pkg}/{mod}.py", lines.index(m.new) + 1
    tool = lambda i, name, content: {"role": "tool", "tool_call_id": f"d{i}", "name": name,
                                     "content": content}
    return [{"role": "user", "content": f'Fix the wrong name in "{path}".'},
            *_call(1, "read_file", "Let me read the module.", False, path=path),
            tool(1, "read_file", _numbered(lines)),
            *_call(2, "diagnostics", "Let me check the module for unused or undefined names.",
                   False, path=path),
            tool(2, "diagnostics", report(path, text)),
            *_call(3, "read_file", "Let me read the line to fix.", False, path=path, offset=n, limit=1),
            tool(3, "read_file", _numbered([m.new], n)),
            *_call(4, "edit_file", "This line disagrees with the docstring.", True,
                   path=path, old_string=m.new, new_string=m.old)]


def name_drills(n: int, seed: int = 0) -> list[list[dict[str, Any]]]:
    """n drills, deterministic from seed."""
    rng = random.Random(f"groundup-name-drills:{seed}")
    out: list[list[dict[str, Any]]] = []
    while len(out) < n:
        drill = name_drill(rng)
        if drill is not None:
            out.append(drill)
    return out
