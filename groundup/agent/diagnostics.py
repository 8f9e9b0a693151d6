"""Static diagnostics for a Python file: what an IDE underlines, in words a model can act on.

    check(source) -> [Diagnostic(line, col, code, message)]      one pass over the syntax tree
    report(path, source) -> "badge/bottle.py:7: loop variable ant is never used [unused-loop-variable]"

Aider lints after every edit, IDE-integrated agents read the editor's problems panel; both hand
a model the same hint an engineer gets: a name that is never read, or read and never defined, is
usually where a wrong name went in. The Toolbox adds this report to every edit_file and
write_file result of a .py file and offers it on request as the `diagnostics` tool (tools.py).

The kinds (each with the rule of the linters that report the same thing):
    syntax-error          the file does not parse                            (ruff E999)
    undefined-name        read here, bound nowhere in reach, not a builtin   (pyflakes/ruff F821)
    unused-variable       a local assigned and never read in its function   (F841)
    unused-loop-variable  a for-loop's variable never read in its function  (bugbear/ruff B007)
    unused-argument       a parameter the function never reads              (ruff ARG001/ARG002)
    unused-attribute      `self.x = ...` in a class, and no `.x` read anywhere in the file

Design choices:
- Scopes as Python has them (module, class, function, lambda, comprehension): a name resolves
  in its own scope, then enclosing functions (not classes), then the module, then builtins.
  Where a binding sits *in* the scope does not matter here (order-independent), so a name
  defined later in the module is defined: the checker under-reports rather than guess at flow
  -- every diagnostic it prints is a fact about the file (tests/agent/test_diagnostics.py checks
  them against ruff's on real code, and that clean standard-library modules get none).
- What is never reported: names starting with `_` (the convention for "unused on purpose"),
  `self`/`cls`, `*args`/`**kwargs`, the arguments of stubs (a body that is only a docstring,
  `pass`, `...` or a raise) and of abstract or overloaded methods, variables bound by tuple
  unpacking (`a, b = pair` where only `b` is needed is normal), anything in a function that
  calls `locals()`, and undefined names in a module with `from x import *`.
- unused-attribute is ours: an attribute is "read" if any `.x` is loaded anywhere in the file
  (on any object), the file holds the string 'x' (getattr, __slots__) or a string with `.x` in
  it (a doctest): a public attribute that
  other modules read is reported too, as an IDE's "not accessed" hint would be.
- Names are written without quotes: a byte-pair tokenizer spells `ant` after a space as it is
  spelled in `for ant in`, so a model can copy a name from the report into code token for token.
- Fast enough to run after every edit: one parse and two walks (a 10k-line file in ~0.1 s).
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field

MODULE_NAMES = {"__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__",
                "__builtins__", "__path__", "__annotations__", "__dict__", "__debug__",
                "__cached__", "WindowsError"}
CLASS_NAMES = {"__module__", "__qualname__", "__class__"}
BUILTINS = set(dir(builtins)) | MODULE_NAMES
_DOTTED = re.compile(r"\.([A-Za-z_]\w*)")
MAX_SHOWN = 20          # a report lists at most this many (the rest are counted)


@dataclass(frozen=True, order=True)
class Diagnostic:
    line: int
    col: int
    code: str
    message: str


@dataclass
class _Scope:
    kind: str                                  # module | class | function | lambda | comprehension
    node: ast.AST
    parent: "_Scope | None"
    bound: dict[str, list[tuple[str, ast.AST]]] = field(default_factory=dict)   # name -> (how, node)
    loads: list[ast.Name] = field(default_factory=list)
    read: set[str] = field(default_factory=set)     # names read here or in any nested scope
    declared: set[str] = field(default_factory=set)  # global / nonlocal
    calls_locals: bool = False

    def bind(self, name: str, how: str, node: ast.AST) -> None:
        self.bound.setdefault(name, []).append((how, node))


class _Binder(ast.NodeVisitor):
    """One walk that builds the scope tree: bindings and reads per scope."""

    def __init__(self) -> None:
        self.module = _Scope("module", None, None)
        self.scopes = [self.module]
        self.scope = self.module
        self.star_import = False
        self.guarded: set[int] = set()       # ids of Name nodes inside `try: ... except NameError`

    # -- scopes
    def _enter(self, kind: str, node: ast.AST) -> _Scope:
        s = _Scope(kind, node, self.scope)
        self.scopes.append(s)
        return s

    def _in(self, scope: _Scope, nodes) -> None:
        outer, self.scope = self.scope, scope
        for n in nodes:
            self.visit(n)
        self.scope = outer

    def _function(self, node) -> None:
        for d in getattr(node, "decorator_list", []):
            self.visit(d)
        args = node.args
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if a is not None and a.annotation is not None:
                self.visit(a.annotation)
        if getattr(node, "returns", None) is not None:
            self.visit(node.returns)
        if not isinstance(node, ast.Lambda):
            self.scope.bind(node.name, "def", node)
        inner = self._enter("lambda" if isinstance(node, ast.Lambda) else "function", node)
        for a in args.posonlyargs + args.args + args.kwonlyargs:
            inner.bind(a.arg, "arg", a)
        for a in (args.vararg, args.kwarg):
            if a is not None:
                inner.bind(a.arg, "vararg", a)
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        self._in(inner, body)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for n in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(n)
        self.scope.bind(node.name, "class", node)
        self._in(self._enter("class", node), node.body)

    def _comprehension(self, node) -> None:
        gens = node.generators
        self.visit(gens[0].iter)                 # evaluated in the enclosing scope
        inner = self._enter("comprehension", node)
        outer, self.scope = self.scope, inner
        for i, g in enumerate(gens):
            self._target(g.target, "comprehension")
            if i:
                self.visit(g.iter)
            for cond in g.ifs:
                self.visit(cond)
        for part in ("elt", "key", "value"):
            if getattr(node, part, None) is not None:
                self.visit(getattr(node, part))
        self.scope = outer

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    # -- bindings
    def _target(self, target: ast.AST, how: str) -> None:
        """Bind the names an assignment target stores; names inside a tuple are 'unpacked'."""
        if isinstance(target, ast.Name):
            self._store(target.id, how, target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._target(elt, how if how in ("loop", "comprehension") else "unpack")
        elif isinstance(target, ast.Starred):
            self._target(target.value, how)
        else:
            self.visit(target)                   # self.x = ..., a[i] = ...: reads inside

    def _store(self, name: str, how: str, node: ast.AST) -> None:
        scope = self.scope
        if scope.kind == "comprehension" and how == "walrus":
            while scope.kind == "comprehension":   # := binds in the enclosing function
                scope = scope.parent
        scope.bind(name, how, node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for t in node.targets:
            self._target(t, "assign")

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
        self._target(node.target, "assign" if node.value is not None else "annotation")

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):      # x += 1 reads x and binds it
            self._read(node.target)
            self._store(node.target.id, "augmented", node.target)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._store(node.target.id, "walrus", node.target)

    def visit_For(self, node) -> None:
        self.visit(node.iter)
        self._target(node.target, "loop")
        for n in node.body + node.orelse:
            self.visit(n)

    visit_AsyncFor = visit_For

    def visit_withitem(self, node: ast.withitem) -> None:
        self.visit(node.context_expr)
        if node.optional_vars is not None:
            self._target(node.optional_vars, "with")

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.scope.bind(node.name, "except", node)
        for n in node.body:
            self.visit(n)

    def visit_Try(self, node) -> None:
        catches = {n.id for h in node.handlers if h.type is not None
                   for n in ast.walk(h.type) if isinstance(n, ast.Name)}
        if "NameError" in catches:               # `try: x except NameError:` probes a name
            self.guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        self.generic_visit(node)

    visit_TryStar = visit_Try

    def _import(self, node) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.star_import = True
                continue
            name = alias.asname or alias.name.split(".")[0]
            self.scope.bind(name, "import", node)

    visit_Import = visit_ImportFrom = _import

    def visit_Global(self, node) -> None:
        self.scope.declared |= set(node.names)
        for name in node.names:
            self.module.bind(name, "global", node)

    def visit_Nonlocal(self, node) -> None:
        # the enclosing function's variable is shared with this one: that is a use of it
        self.scope.declared |= set(node.names)
        self.scope.loads += [ast.Name(n, ast.Load(), lineno=node.lineno, col_offset=node.col_offset)
                             for n in node.names]

    def visit_MatchAs(self, node) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.scope.bind(node.name, "match", node)

    def visit_MatchStar(self, node) -> None:
        if node.name:
            self.scope.bind(node.name, "match", node)

    def visit_MatchMapping(self, node) -> None:
        self.generic_visit(node)
        if node.rest:
            self.scope.bind(node.rest, "match", node)

    # -- reads
    def _read(self, node: ast.Name) -> None:
        self.scope.loads.append(node)
        if node.id == "locals":
            self.scope.calls_locals = True

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self._store(node.id, "assign", node)
        else:                                    # Load, or Del (which needs the name bound)
            self._read(node)

    def visit_TypeAlias(self, node) -> None:    # Python 3.12: `type X = ...`
        self._store(node.name.id, "assign", node.name)
        self.visit(node.value)


def _visible(scope: _Scope, name: str) -> bool:
    """Is `name` bound where a read in `scope` would find it (Python's LEGB, classes skipped)?"""
    s: _Scope | None = scope
    first = True
    while s is not None:
        if name in s.bound and (first or s.kind != "class"):
            return True
        if s.kind == "class" and name in CLASS_NAMES:
            return True
        if s.kind == "comprehension" and s.parent is not None and s.parent.kind == "class":
            first = True                         # the first iterable sees the class body
        else:
            first = False
        s = s.parent
    return name in BUILTINS


def _is_stub(fn: ast.AST) -> bool:
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return all(isinstance(s, (ast.Pass, ast.Raise)) for s in body)


def _decorator_names(fn: ast.AST) -> set[str]:
    out = set()
    for d in fn.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        out.add(d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", ""))
    return out


def _unused(scope: _Scope) -> list[Diagnostic]:
    """Diagnostics for a function scope's own bindings that nothing reads."""
    if scope.calls_locals:
        return []
    out = []
    fn = scope.node
    method = scope.parent is not None and scope.parent.kind == "class"
    decorators = _decorator_names(fn) if not isinstance(fn, ast.Lambda) else set()
    # a stub, an abstract method or a dunder method has the signature its protocol fixes
    skip_args = (isinstance(fn, ast.Lambda) or _is_stub(fn) or fn.name.startswith("__")
                 or decorators & {"abstractmethod", "overload", "override"})
    first_arg = (fn.args.posonlyargs + fn.args.args)[:1]
    for name, binds in scope.bound.items():
        if name in scope.read or name in scope.declared or name.startswith("_"):
            continue
        how, node = binds[0]
        kinds = {h for h, _ in binds}
        if kinds == {"arg"} and not skip_args:
            if method and "staticmethod" not in decorators and first_arg and first_arg[0] is node:
                continue                         # self / cls
            out.append(Diagnostic(node.lineno, node.col_offset, "unused-argument",
                                  f"argument {name} of {fn.name} is never used"))
        elif kinds == {"loop"}:
            out.append(Diagnostic(node.lineno, node.col_offset, "unused-loop-variable",
                                  f"loop variable {name} is never used"))
        elif kinds <= {"assign", "with", "except", "walrus"} and not kinds & {"unpack"}:
            node = binds[-1][1]
            out.append(Diagnostic(node.lineno, node.col_offset, "unused-variable",
                                  f"local variable {name} is assigned but never used"))
    return out


def _unused_attributes(nodes: list[ast.AST]) -> list[Diagnostic]:
    """`self.x = ...` in a method, and no `.x` read and no string 'x' anywhere in the file
    (`nodes`: every node of the file, from one ast.walk)."""
    read: set[str] = set()
    for n in nodes:
        if isinstance(n, ast.Attribute) and not isinstance(n.ctx, ast.Store):
            read.add(n.attr)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            read.add(n.value)                          # getattr(obj, 'x'), __slots__
            if "." in n.value:                         # code in a docstring (doctests)
                read.update(_DOTTED.findall(n.value))
        elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Attribute):
            read.add(n.target.attr)                    # self.n += 1 reads it
    out, seen = [], set()
    for cls in (n for n in nodes if isinstance(n, ast.ClassDef)):
        if any(isinstance(f, ast.FunctionDef) and f.name in ("__getattr__", "__setattr__")
               for f in cls.body):
            continue
        for fn in (f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))):
            args = fn.args.posonlyargs + fn.args.args
            if not args or "staticmethod" in _decorator_names(fn):
                continue
            me = args[0].arg
            for n in ast.walk(fn):
                if (isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                        and isinstance(n.value, ast.Name) and n.value.id == me
                        and n.attr not in read and not n.attr.startswith("_")
                        and (cls.name, n.attr) not in seen):
                    seen.add((cls.name, n.attr))
                    out.append(Diagnostic(n.lineno, n.col_offset, "unused-attribute",
                                          f"attribute self.{n.attr} is set but never read"))
    return out


def check(source: str) -> list[Diagnostic]:
    """Every diagnostic for one file's text, sorted by line."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [Diagnostic(e.lineno or 1, (e.offset or 1) - 1, "syntax-error",
                           f"invalid syntax: {e.msg}")]
    binder = _Binder()
    binder.visit(tree)
    out: list[Diagnostic] = []
    for scope in binder.scopes:                 # a read counts in its scope and every parent
        for n in scope.loads:
            s: _Scope | None = scope
            while s is not None:
                s.read.add(n.id)
                s = s.parent
    for scope in binder.scopes:
        if not binder.star_import:
            for n in scope.loads:
                if id(n) not in binder.guarded and not _visible(scope, n.id):
                    out.append(Diagnostic(n.lineno, n.col_offset, "undefined-name",
                                          f"name {n.id} is not defined"))
        if scope.kind == "function":
            out += _unused(scope)
    out += _unused_attributes(list(ast.walk(tree)))
    return sorted(set(out))


def report(path: str, source: str, limit: int = MAX_SHOWN) -> str:
    """The diagnostics as lines `path:line: message [code]`, or a line saying there are none."""
    found = check(source)
    if not found:
        return f"{path}: no problems found"
    lines = [f"{path}:{d.line}: {d.message} [{d.code}]" for d in found[:limit]]
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more")
    return "\n".join(lines)


def report_files(files: list[tuple[str, str]], limit: int = MAX_SHOWN) -> str:
    """One report for several files ((path, source) pairs): their problems, or that there are none."""
    lines: list[str] = []
    more = 0
    for path, source in files:
        for d in check(source):
            if len(lines) < limit:
                lines.append(f"{path}:{d.line}: {d.message} [{d.code}]")
            else:
                more += 1
    if not lines:
        return f"no problems found in {len(files)} Python file(s)"
    return "\n".join(lines + ([f"... and {more} more"] if more else []))


def after_edit(path: str, before: str, after: str) -> str:
    """The line an edit result ends with: the problems the edit brought in (compared without
    line numbers, which an edit shifts), or that it brought in none -- and how many it removed.
    Problems the file already had are not repeated: the model asked for a change, not a lint."""
    def keyed(source: str) -> dict[tuple[str, str], Diagnostic]:
        return {(d.code, d.message): d for d in check(source)}
    old, new = keyed(before), keyed(after)
    added = [d for k, d in sorted(new.items(), key=lambda kv: kv[1]) if k not in old]
    fixed = sum(1 for k in old if k not in new)
    gone = f"; {fixed} fixed" if fixed else ""
    if not added:
        return f"diagnostics: no new problems{gone}"
    return "\n".join([f"diagnostics: {len(added)} new{gone}"]
                     + [f"{path}:{d.line}: {d.message} [{d.code}]" for d in added[:MAX_SHOWN]])
