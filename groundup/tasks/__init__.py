"""Agent tasks: generated bug-fix repositories, the oracle's trajectories, evaluation.

TIER_MEANING says in one line what each tier is (generate.py makes them so); the CLI's help and
the speedrun's report card print it. It lives here, not in generate.py, so that reading it does
not import the generator at every CLI start.
"""

TIER_MEANING = {
    1: "the failing test's traceback ends on the buggy line",
    2: "the bug is in a helper, in a module no test names",
    3: "two bugs, or a function to implement from its docstring",
}
