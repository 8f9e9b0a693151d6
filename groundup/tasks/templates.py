"""The building blocks of generated repositories: function and class templates.

Design choices:
- A template is ordinary Python source with `{slot}` holes for identifiers; each slot is filled
  with a noun from the split's vocabulary (groundup/tasks/vocab.py), so the same structure
  appears under many names and the held-out split under names never seen in training.
- Each docstring states exactly what the code computes ("Return how many tiles are greater
  than cap"). A bug is then a line that disagrees with its docstring, which is what a reader
  (human or a model of a few million parameters) can actually check.
- Templates are written in `ast.unparse` style (single quotes, canonical spacing), so a line
  can be parsed, mutated and unparsed again without changing anything but the bug.
- No `while` loops: every mutation of a `for` over a finite list still terminates, and the
  generator guards against the rest (a loop appending to the list it walks).
- Test cases are argument tuples chosen to reach every branch; the expected values are not
  written here but computed by running the correct code (groundup/tasks/generate.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from groundup.tasks.vocab import camel, plural


@dataclass(frozen=True)
class Case:
    setup: tuple[str, ...]   # statements run before the assertion (class tests build an object)
    expr: str                # the expression whose value the test asserts
    label: str               # the function or method it exercises (names the test method)


@dataclass(frozen=True)
class Template:
    key: str
    name: str                # pattern of the function or class name
    source: str
    cases: Callable[[random.Random], list]   # functions: argument tuples; classes: Cases
    params: tuple[str, ...] = ()             # slot names of a function's parameters
    methods: tuple[str, ...] = ()            # classes: method name patterns, as m1, m2


@dataclass
class Unit:
    """One template filled in: a function or a class, and the test cases that exercise it."""
    template: Template
    name: str
    code: str
    cases: list[Case]
    slots: dict[str, str] = field(default_factory=dict)
    calls: tuple[str, ...] = ()              # helper functions it calls (tier-2 wrappers)


def _ints(rng: random.Random, n: int, lo: int = 0, hi: int = 9) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(n)]


def _lists(rng: random.Random, k: int, lo: int = 1, hi: int = 9, nmin: int = 2, nmax: int = 5):
    return [_ints(rng, rng.randint(nmin, nmax), lo, hi) for _ in range(k)]


_WORDS = ["ab", "xy", "go", "tic", "dot", "hum", "zip"]
_KEYS = ["x", "y", "z", "w"]

FUNCTIONS: list[Template] = [
    Template("scaled_sum", "total_{a_s}", '''\
def {f}({a_s}, {b}):
    """Return the sum of every {a} in {a_s} multiplied by {b}."""
    {c} = 0
    for {a} in {a_s}:
        {c} = {c} + {a} * {b}
    return {c}
''', lambda r: [(xs, r.randint(2, 5)) for xs in _lists(r, 3)], ("a_s", "b")),
    Template("count_above", "count_{a_s}_above", '''\
def {f}({a_s}, {b}):
    """Return how many {a_s} are greater than {b}."""
    {c} = 0
    for {a} in {a_s}:
        if {a} > {b}:
            {c} = {c} + 1
    return {c}
''', lambda r: [(xs, r.randint(3, 6)) for xs in _lists(r, 3, 0, 9, 4, 6)] + [([5, 6, 7], 6)],
        ("a_s", "b")),
    Template("clamp", "clamp_{a}", '''\
def {f}({a}, {b}, {c}):
    """Return {a} limited to the range from {b} to {c}."""
    if {a} < {b}:
        return {b}
    if {a} > {c}:
        return {c}
    return {a}
''', lambda r: [(r.randint(0, 2), 3, 12), (r.randint(15, 30), 3, 12), (r.randint(4, 11), 3, 12)],
        ("a", "b", "c")),
    Template("largest", "largest_{a}", '''\
def {f}({a_s}):
    """Return the largest {a} in {a_s}, or 0 when {a_s} is empty."""
    {b} = 0
    for {a} in {a_s}:
        if {a} > {b}:
            {b} = {a}
    return {b}
''', lambda r: [(xs,) for xs in _lists(r, 2, 1, 20, 3, 5)] + [([],)], ("a_s",)),
    Template("mean", "mean_{a}", '''\
def {f}({a_s}):
    """Return the mean of {a_s} rounded down, or 0 when {a_s} is empty."""
    if not {a_s}:
        return 0
    return sum({a_s}) // len({a_s})
''', lambda r: [(xs,) for xs in _lists(r, 2, 1, 30, 2, 5)] + [([],)], ("a_s",)),
    Template("gaps", "{a}_gaps", '''\
def {f}({a_s}):
    """Return the difference between each {a} and the one before it."""
    {b} = []
    for {c} in range(1, len({a_s})):
        {b}.append({a_s}[{c}] - {a_s}[{c} - 1])
    return {b}
''', lambda r: [(xs,) for xs in _lists(r, 3, 1, 20, 3, 5)], ("a_s",)),
    Template("last_n", "last_{a_s}", '''\
def {f}({a_s}, {b}):
    """Return the last {b} items of {a_s}."""
    return {a_s}[len({a_s}) - {b}:]
''', lambda r: [(xs, r.randint(1, 3)) for xs in _lists(r, 3, 1, 9, 4, 6)], ("a_s", "b")),
    Template("percent", "{a}_percent", '''\
def {f}({a}, {b}):
    """Return {a} as a whole percentage of {b}, or 0 when {b} is 0."""
    if {b} == 0:
        return 0
    return {a} * 100 // {b}
''', lambda r: [(r.randint(1, 40), r.randint(41, 90)), (r.randint(5, 9), 0),
                (r.randint(1, 20), r.randint(21, 60))], ("a", "b")),
    Template("evens", "even_{a_s}", '''\
def {f}({a_s}):
    """Return the {a_s} that are even, in their original order."""
    {b} = []
    for {a} in {a_s}:
        if {a} % 2 == 0:
            {b}.append({a})
    return {b}
''', lambda r: [(xs,) for xs in _lists(r, 3, 1, 20, 3, 6)], ("a_s",)),
    Template("find_index", "find_{a}", '''\
def {f}({a_s}, {b}):
    """Return the position of the first {a} equal to {b}, or -1 when there is none."""
    for {c}, {a} in enumerate({a_s}):
        if {a} == {b}:
            return {c}
    return -1
''', lambda r: [([4, 7, 1, 9], r.choice([7, 1, 9])), ([3, 5, 8], r.choice([3, 5])),
                (_ints(r, 3, 1, 5), 6)], ("a_s", "b")),
    Template("repeat", "repeat_{a}", '''\
def {f}({a}, {b}):
    """Return {a} repeated {b} times, joined by dashes."""
    return '-'.join([{a}] * {b})
''', lambda r: [(r.choice(_WORDS), r.randint(2, 4)) for _ in range(2)] + [(r.choice(_WORDS), 1)],
        ("a", "b")),
    Template("tally", "tally_{a_s}", '''\
def {f}({a_s}):
    """Return a dict mapping each {a} to the number of times it appears in {a_s}."""
    {b} = {{}}
    for {a} in {a_s}:
        {b}[{a}] = {b}.get({a}, 0) + 1
    return {b}
''', lambda r: [(xs,) for xs in _lists(r, 3, 1, 3, 3, 6)], ("a_s",)),
    Template("sum_to", "sum_to_{a}", '''\
def {f}({a}):
    """Return the sum of the whole numbers from 1 to {a}, inclusive."""
    {b} = 0
    for {c} in range(1, {a} + 1):
        {b} = {b} + {c}
    return {b}
''', lambda r: [(r.randint(2, 9),) for _ in range(3)], ("a",)),
    Template("floor_minus", "reduce_{a}", '''\
def {f}({a}, {b}):
    """Return {a} minus {b}, but never less than 0."""
    return max({a} - {b}, 0)
''', lambda r: [(r.randint(10, 20), r.randint(1, 9)), (r.randint(1, 5), r.randint(6, 9)),
                (r.randint(10, 20), r.randint(2, 8))], ("a", "b")),
    Template("ends", "{a}_ends", '''\
def {f}({a_s}):
    """Return the first and the last {a} as a pair, or None when {a_s} is empty."""
    if not {a_s}:
        return None
    return ({a_s}[0], {a_s}[-1])
''', lambda r: [(xs,) for xs in _lists(r, 2, 1, 20, 3, 5)] + [([],)], ("a_s",)),
    Template("running", "running_{a}", '''\
def {f}({a_s}):
    """Return the running totals of {a_s}: each is the sum of the {a_s} up to it."""
    {b} = []
    {c} = 0
    for {a} in {a_s}:
        {c} = {c} + {a}
        {b}.append({c})
    return {b}
''', lambda r: [(xs,) for xs in _lists(r, 3, 1, 9, 3, 5)], ("a_s",)),
    Template("is_sorted", "{a_s}_sorted", '''\
def {f}({a_s}):
    """Return True when {a_s} is in ascending order."""
    for {b} in range(len({a_s}) - 1):
        if {a_s}[{b}] > {a_s}[{b} + 1]:
            return False
    return True
''', lambda r: [(sorted(_ints(r, 4, 1, 20)),), ([5, 2, 8, 9],), ([1, 4, 4, 3],),
                (sorted(_ints(r, 3, 1, 9)),)], ("a_s",)),
    Template("between", "{a}_in_range", '''\
def {f}({a}, {b}, {c}):
    """Return True when {a} is at least {b} and less than {c}."""
    return {b} <= {a} and {a} < {c}
''', lambda r: [(5, 5, 9), (9, 5, 9), (r.randint(0, 4), 5, 9), (r.randint(6, 8), 5, 9)],
        ("a", "b", "c")),
    Template("prepend", "prepend_{a}", '''\
def {f}({a_s}, {b}):
    """Return a copy of {a_s} with {b} added at the front."""
    {c} = list({a_s})
    {c}.insert(0, {b})
    return {c}
''', lambda r: [(xs, r.randint(10, 30)) for xs in _lists(r, 3, 1, 9, 2, 4)], ("a_s", "b")),
    Template("divide", "split_{a}", '''\
def {f}({a}, {b}):
    """Return how many whole {b}s fit in {a} and what is left over, as a pair."""
    return ({a} // {b}, {a} % {b})
''', lambda r: [(r.randint(20, 60), r.randint(3, 7)) for _ in range(3)], ("a", "b")),
    Template("dot", "weigh_{a_s}", '''\
def {f}({a_s}, {b_s}):
    """Return the sum of each {a} times the {b} at the same position."""
    {c} = 0
    for {d} in range(len({a_s})):
        {c} = {c} + {a_s}[{d}] * {b_s}[{d}]
    return {c}
''', lambda r: [(_ints(r, n, 1, 9), _ints(r, n, 1, 5)) for n in (2, 3, 4)], ("a_s", "b_s")),
    Template("both_positive", "{a}_and_{b}_positive", '''\
def {f}({a}, {b}):
    """Return True when both {a} and {b} are greater than 0."""
    return {a} > 0 and {b} > 0
''', lambda r: [(r.randint(1, 9), r.randint(1, 9)), (0, r.randint(1, 9)), (r.randint(1, 9), -2),
                (-1, -3)], ("a", "b")),
    Template("second", "second_{a}", '''\
def {f}({a_s}):
    """Return the second {a} in {a_s}, or None when there are fewer than two."""
    if len({a_s}) < 2:
        return None
    return {a_s}[1]
''', lambda r: [(xs,) for xs in _lists(r, 2, 1, 20, 3, 5)] + [([r.randint(1, 9)],), ([4, 7],)],
        ("a_s",)),
    Template("initials", "{a}_initials", '''\
def {f}({a_s}):
    """Return the first letter of each of {a_s}, joined into one string."""
    {b} = ''
    for {a} in {a_s}:
        {b} = {b} + {a}[0]
    return {b}
''', lambda r: [(r.sample(_WORDS, 3),), (["a"] + r.sample(_WORDS, 2),), (r.sample(_WORDS, 2),)],
        ("a_s",)),
    Template("last_word", "last_{a}", '''\
def {f}({a}):
    """Return the last word of the text {a}."""
    {b_s} = {a}.split()
    return {b_s}[-1]
''', lambda r: [(" ".join(r.sample(_WORDS, 3)),), (r.choice(_WORDS),),
                (" ".join(r.sample(_WORDS, 2)),)], ("a",)),
    Template("label", "{a}_label", '''\
def {f}({a}, {b}):
    """Return the text {a}, a dash, and the number {b}: 'ab-3' for 'ab' and 3."""
    return {a} + '-' + str({b})
''', lambda r: [(r.choice(_WORDS), r.randint(1, 9)) for _ in range(2)], ("a", "b")),
    Template("pair_sums", "{a}_pair_sums", '''\
def {f}({a_s}):
    """Return the sum of each {a} and the one after it, for every neighbouring pair."""
    {b} = []
    for {c} in range(len({a_s}) - 1):
        {b}.append({a_s}[{c}] + {a_s}[{c} + 1])
    return {b}
''', lambda r: [(xs,) for xs in _lists(r, 2, 1, 9, 3, 5)] + [([r.randint(1, 9)] * 2,)],
        ("a_s",)),
    Template("lookup", "lookup_{a}", '''\
def {f}({a_s}, {b}):
    """Return the value stored under {b} in {a_s}, or 0 when it is missing."""
    return {a_s}.get({b}, 0)
''', lambda r: [({k: r.randint(1, 9) for k in _KEYS[:3]}, r.choice(_KEYS[:3])),
                ({k: r.randint(1, 9) for k in _KEYS[1:]}, _KEYS[0])], ("a_s", "b")),
]


CLASSES: list[Template] = [
    Template("tally_class", "{A}", '''\
class {C}:
    """Keep a running {a} that starts at {b}."""

    def __init__(self, {b}):
        self.{a} = {b}

    def {m1}(self, {c}):
        """Add {c} to the {a} and return the new {a}."""
        self.{a} = self.{a} + {c}
        return self.{a}

    def {m2}(self, {c}):
        """Take {c} away from the {a}, but never below 0, and return the new {a}."""
        self.{a} = max(self.{a} - {c}, 0)
        return self.{a}
''', lambda r: [Case((f"{{o}} = {{C}}({r.randint(1, 9)})",), f"{{o}}.{{m1}}({r.randint(2, 9)})", "m1"),
                Case((f"{{o}} = {{C}}({r.randint(10, 20)})",), f"{{o}}.{{m2}}({r.randint(2, 9)})", "m2"),
                Case((f"{{o}} = {{C}}({r.randint(1, 5)})",), f"{{o}}.{{m2}}({r.randint(6, 9)})", "m2")],
        methods=("add_{c}", "remove_{c}")),
    Template("bag_class", "{A}", '''\
class {C}:
    """Hold at most {b} {a_s}."""

    def __init__(self, {b}):
        self.{b} = {b}
        self.{a_s} = []

    def {m1}(self, {a}):
        """Add {a} unless {b} {a_s} are held already; return True when it was added."""
        if len(self.{a_s}) >= self.{b}:
            return False
        self.{a_s}.append({a})
        return True

    def {m2}(self):
        """Return how many more {a_s} fit."""
        return self.{b} - len(self.{a_s})
''', lambda r: [Case(("{o} = {C}(2)", "{o}.{m1}(4)"), "{o}.{m1}(5)", "m1"),
                Case(("{o} = {C}(1)", "{o}.{m1}(4)"), "{o}.{m1}(5)", "m1"),
                Case((f"{{o}} = {{C}}({r.randint(3, 6)})", "{o}.{m1}(1)"), "{o}.{m2}()", "m2")],
        methods=("put_{a}", "{a}_room")),
    Template("named_class", "{A}List", '''\
class {C}:
    """A list of {a_s} with a name."""

    def __init__(self, {b}):
        self.{b} = {b}
        self.{a_s} = []

    def {m1}(self, {a}):
        """Add {a} and return how many {a_s} there are."""
        self.{a_s}.append({a})
        return len(self.{a_s})

    def {m2}(self):
        """Return the name, a colon, and how many {a_s} there are: 'ab:2'."""
        return self.{b} + ':' + str(len(self.{a_s}))
''', lambda r: [Case((f"{{o}} = {{C}}({r.choice(_WORDS)!r})", f"{{o}}.{{m1}}({r.randint(1, 9)})"),
                     f"{{o}}.{{m1}}({r.randint(1, 9)})", "m1"),
                Case((f"{{o}} = {{C}}({r.choice(_WORDS)!r})", f"{{o}}.{{m1}}({r.randint(1, 9)})"),
                     "{o}.{m2}()", "m2")],
        methods=("add_{a}", "{a}_summary")),
    Template("log_class", "{A}Log", '''\
class {C}:
    """Record {a_s} and remember the biggest one."""

    def __init__(self):
        self.{a_s} = []

    def {m1}(self, {a}):
        """Record {a} and return how many {a_s} are recorded."""
        self.{a_s}.append({a})
        return len(self.{a_s})

    def {m2}(self):
        """Return the biggest recorded {a}, or None when nothing is recorded."""
        if not self.{a_s}:
            return None
        return max(self.{a_s})
''', lambda r: [Case(("{o} = {C}()", f"{{o}}.{{m1}}({r.randint(1, 9)})"), f"{{o}}.{{m1}}({r.randint(1, 9)})", "m1"),
                Case(("{o} = {C}()", f"{{o}}.{{m1}}({r.randint(1, 5)})", f"{{o}}.{{m1}}({r.randint(6, 9)})"),
                     "{o}.{m2}()", "m2"),
                Case(("{o} = {C}()",), "{o}.{m2}()", "m2")],
        methods=("record_{a}", "top_{a}")),
    Template("rect_class", "{A}", '''\
class {C}:
    """A rectangle that is {b} wide and {c} tall."""

    def __init__(self, {b}, {c}):
        self.{b} = {b}
        self.{c} = {c}

    def {m1}(self):
        """Return the area: {b} times {c}."""
        return self.{b} * self.{c}

    def {m2}(self):
        """Return the distance around the edge: twice {b} plus twice {c}."""
        return 2 * self.{b} + 2 * self.{c}
''', lambda r: [Case((f"{{o}} = {{C}}({r.randint(2, 9)}, {r.randint(2, 9)})",), "{o}.{m1}()", "m1"),
                Case((f"{{o}} = {{C}}({r.randint(2, 9)}, {r.randint(10, 20)})",), "{o}.{m2}()", "m2"),
                Case((f"{{o}} = {{C}}({r.randint(2, 9)}, {r.randint(2, 9)})",), "{o}.{m2}()", "m2")],
        methods=("{a}_area", "{a}_edge")),
]

# Tier-2 wrappers: a function in one module that calls a helper from another module, so the
# failing test names the wrapper while the bug sits in the helper.
WRAPPERS: list[Template] = [
    Template("report_dict", "report_{k}", '''\
def {f}({params}):
    """Return a dict with the result of {h} under the key '{k}'."""
    return {{'{k}': {h}({params})}}
''', lambda r: []),
    Template("report_pair", "describe_{k}", '''\
def {f}({params}):
    """Return the result of {h} paired with the label '{k}'."""
    {v} = {h}({params})
    return ('{k}', {v})
''', lambda r: []),
    Template("report_str", "show_{k}", '''\
def {f}({params}):
    """Return the result of {h} as text."""
    return str({h}({params}))
''', lambda r: []),
]


def _slots(nouns: list[str]) -> dict[str, str]:
    """a, b, c, d (+ plural a_s and CamelCase A) from a list of distinct nouns."""
    names: dict[str, str] = {}
    for letter, noun in zip("abcd", nouns):
        names[letter] = noun
        names[letter + "_s"] = plural(noun)
        names[letter.upper()] = camel(noun)
    return names


def instantiate(t: Template, nouns: list[str], rng: random.Random) -> Unit:
    """Fill a function or class template with nouns (at least 5 distinct ones)."""
    s = _slots(nouns)
    if t in CLASSES:
        s["C"] = t.name.format(**s)
        s["m1"], s["m2"] = (m.format(**s) for m in t.methods)
        s["o"] = nouns[4]
        code = t.source.format(f=s["C"], **s)
        cases = [Case(tuple(line.format(**s) for line in c.setup), c.expr.format(**s), s[c.label])
                 for c in t.cases(rng)]
        return Unit(t, s["C"], code, cases, s)
    name = t.name.format(**s)
    code = t.source.format(f=name, **s)
    cases = [Case((), f"{name}({', '.join(map(repr, args))})", name) for args in t.cases(rng)]
    return Unit(t, name, code, cases, s)


def wrap(t: Template, helper: Unit, key: str, var: str, rng: random.Random) -> Unit:
    """A tier-2 wrapper around `helper` (a function Unit), exercised by the helper's own cases."""
    params = ", ".join(helper.slots[p] for p in helper.template.params)
    name = t.name.format(k=key)
    code = t.source.format(f=name, params=params, h=helper.name, k=key, v=var)
    cases = [Case((), name + c.expr[len(helper.name):], name) for c in helper.cases]
    return Unit(t, name, code, cases, {"k": key, "v": var}, calls=(helper.name,))
