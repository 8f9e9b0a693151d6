"""The bug catalogue: every single-line mutation of a function that a generator may inject.

Design choices:
- A bug changes exactly one line (or deletes one, for `missing_return`), so the fix is one
  `edit_file` whose old text is a line the agent can read. The mutation is done on the line's
  syntax tree and unparsed (`ast.unparse`), so the buggy line is canonical Python.
- The catalogue is enumerated, not sampled: `mutations(code)` lists every candidate with its
  kind, and the generator picks a kind first (uniformly among the kinds available) and a site
  second, so rare kinds are not drowned out by common ones. Whether a candidate is a real bug
  (some test fails) is decided by running it, in groundup/tasks/generate.py.
- Kinds: arithmetic_operator, comparison_operator, off_by_one, wrong_constant,
  swapped_arguments, swapped_operands, wrong_variable, wrong_attribute, inverted_condition,
  missing_return, wrong_index, wrong_builtin, wrong_boolean.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass
from typing import Callable, Iterator

KINDS = ("arithmetic_operator", "comparison_operator", "off_by_one", "wrong_constant",
         "swapped_arguments", "swapped_operands", "wrong_variable", "wrong_attribute",
         "inverted_condition", "missing_return", "wrong_index", "wrong_builtin", "wrong_boolean")


@dataclass(frozen=True)
class Mutation:
    kind: str
    line: int                  # 0-based index of the line in the unit's code
    old: str                   # the correct line, with its indentation
    new: str | None            # the buggy line, with its indentation; None: the line is deleted


_ARITH = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Add, ast.FloorDiv],
          ast.FloorDiv: [ast.Mod, ast.Mult], ast.Mod: [ast.FloorDiv]}
_COMPARE = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt], ast.Gt: [ast.GtE, ast.Lt],
            ast.GtE: [ast.Gt], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq]}
_BUILTIN_SWAP = {"min": "max", "max": "min", "sum": "len", "len": "sum"}
_NON_COMMUTATIVE = (ast.Sub, ast.FloorDiv, ast.Mod)


def _parse_line(text: str) -> tuple[ast.stmt, bool] | None:
    """Parse one stripped line; a block header (`if x:`) is parsed with a dummy body."""
    header = text.endswith(":")
    try:
        tree = ast.parse(text + "\n    pass" if header else text)
    except SyntaxError:
        return None
    if len(tree.body) != 1:
        return None
    return tree.body[0], header


def _unparse(stmt: ast.stmt, header: bool) -> str:
    text = ast.unparse(ast.fix_missing_locations(stmt))
    return text.splitlines()[0] if header else text


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _in_range_or_slice(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    p = parents.get(id(node))
    while p is not None:
        if isinstance(p, ast.Call) and isinstance(p.func, ast.Name) and p.func.id == "range":
            return True
        if isinstance(p, (ast.Slice, ast.Subscript)):
            return True
        p = parents.get(id(p))
    return False


def _variants(node: ast.AST, parents: dict[int, ast.AST], names: set[str],
              attrs: set[str]) -> Iterator[tuple[str, Callable[[ast.AST], ast.AST | None]]]:
    """(kind, edit) pairs for one node; edit mutates a copy of the node in place or returns a
    replacement node."""
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        for op in _ARITH[type(node.op)]:
            yield "arithmetic_operator", lambda n, op=op: setattr(n, "op", op()) or n
        if isinstance(node.op, _NON_COMMUTATIVE):
            yield "swapped_operands", lambda n: ast.BinOp(n.right, n.op, n.left)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        for op in _COMPARE[type(node.ops[0])]:
            yield "comparison_operator", lambda n, op=op: setattr(n, "ops", [op()]) or n
    if isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield "wrong_boolean", lambda n, other=other: setattr(n, "op", other()) or n
    parent = parents.get(id(node))
    if isinstance(node, ast.Constant) and type(node.value) is int:
        in_subscript = isinstance(parent, ast.Subscript) or (
            isinstance(parent, ast.UnaryOp) and isinstance(parents.get(id(parent)), ast.Subscript))
        if in_subscript:
            yield "wrong_index", lambda n: ast.Constant(n.value + 1)
        elif _in_range_or_slice(node, parents):
            yield "off_by_one", lambda n: ast.Constant(n.value + 1)
            if node.value > 0:
                yield "off_by_one", lambda n: ast.Constant(n.value - 1)
        else:
            new = {0: 1, 1: 0, 2: 3, 100: 10}.get(node.value, node.value + 1)
            yield "wrong_constant", lambda n, new=new: ast.Constant(new)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value == "-":
        yield "wrong_constant", lambda n: ast.Constant("+")
    if isinstance(node, ast.Call):
        if len(node.args) >= 2 and ast.dump(node.args[0]) != ast.dump(node.args[1]):
            yield "swapped_arguments", lambda n: setattr(n, "args", [n.args[1], n.args[0]]
                                                         + n.args[2:]) or n
        if isinstance(node.func, ast.Name) and node.func.id in _BUILTIN_SWAP:
            yield "wrong_builtin", lambda n: setattr(
                n, "func", ast.Name(_BUILTIN_SWAP[n.func.id], ast.Load())) or n
        if isinstance(node.func, ast.Name) and node.func.id == "range":
            # the classic: the loop stops one item early or runs one past the end
            stop = node.args[-1]
            if not isinstance(stop, ast.Constant) and not (
                    isinstance(stop, ast.BinOp) and isinstance(stop.right, ast.Constant)):
                yield "off_by_one", lambda n: setattr(n, "args", n.args[:-1] + [
                    ast.BinOp(n.args[-1], ast.Sub(), ast.Constant(1))]) or n
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
        if not (isinstance(parent, ast.Call) and parent.func is node):
            for other in sorted(names - {node.id}):
                yield "wrong_variable", lambda n, other=other: ast.Name(other, ast.Load())
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "self" and node.attr in attrs and isinstance(node.ctx, ast.Load)):
        for other in sorted(attrs - {node.attr}):
            yield "wrong_attribute", lambda n, other=other: ast.Attribute(n.value, other, ast.Load())


def _condition_variants(stmt: ast.stmt) -> Iterator[Callable[[ast.stmt], None]]:
    if isinstance(stmt, ast.If):
        def invert(s: ast.stmt) -> None:
            if isinstance(s.test, ast.UnaryOp) and isinstance(s.test.op, ast.Not):
                s.test = s.test.operand
            else:
                s.test = ast.UnaryOp(ast.Not(), s.test)
        yield invert


def _local_names(code: str) -> tuple[set[str], set[str]]:
    """Variables (parameters and assigned names) and `self.` attributes of a unit."""
    tree = ast.parse(code)
    names: set[str] = set()
    attrs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.arg != "self":
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "self"):
            attrs.add(node.attr)
    return names - set(dir(builtins)), attrs


def mutations(code: str) -> list[Mutation]:
    """Every single-line bug that can be injected into a unit's code (a function or class)."""
    names, attrs = _local_names(code)
    lines = code.splitlines()
    out: list[Mutation] = []
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith(("def ", "class ", '"""', "@")):
            continue
        parsed = _parse_line(text)
        if parsed is None:
            continue
        stmt, header = parsed
        indent = line[: len(line) - len(line.lstrip())]
        seen: set[str] = set()

        def add(kind: str, new_text: str | None) -> None:
            if new_text is not None and (new_text == text or new_text in seen):
                return
            if new_text is not None:
                seen.add(new_text)
            out.append(Mutation(kind, i, line, None if new_text is None else indent + new_text))

        parents = _parents(stmt)
        for k, node in enumerate(list(ast.walk(stmt))):
            if header and node is stmt.body[0]:
                continue  # the dummy `pass` body
            for kind, edit in list(_variants(node, parents, names, attrs)):
                # a fresh parse is a deep copy that ast.parse makes in C, far faster
                mutant = _parse_line(text)[0]
                target = list(ast.walk(mutant))[k]
                replacement = edit(target)
                if replacement is not target:
                    _replace(mutant, target, replacement)
                add(kind, _unparse(mutant, header))
        for edit in _condition_variants(stmt):
            mutant = _parse_line(text)[0]
            edit(mutant)
            add("inverted_condition", _unparse(mutant, header))
        prev = lines[i - 1].strip() if i > 0 else ""
        if (isinstance(stmt, ast.Return) and isinstance(stmt.value, (ast.Name, ast.Attribute))
                and _indent(lines[i - 1]) >= len(indent) and not prev.startswith('"""')
                and not prev.endswith(":")):
            add("missing_return", None)
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _replace(root: ast.AST, target: ast.AST, replacement: ast.AST) -> None:
    for node in ast.walk(root):
        for fieldname, value in ast.iter_fields(node):
            if value is target:
                setattr(node, fieldname, replacement)
                return
            if isinstance(value, list):
                for j, item in enumerate(value):
                    if item is target:
                        value[j] = replacement
                        return


def apply(code: str, m: Mutation) -> str:
    lines = code.splitlines()
    assert lines[m.line] == m.old, "mutation does not match the code"
    if m.new is None:
        del lines[m.line]
    else:
        lines[m.line] = m.new
    return "\n".join(lines) + "\n"
