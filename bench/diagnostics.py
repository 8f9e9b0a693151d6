"""The agent's diagnostics (groundup/agent/diagnostics.py) against pyflakes, in-process.

Anchor: pyflakes (pure Python, the checker flake8 runs), on the same files in the same run,
alternating rounds, best of 3. Ours does more (unused arguments, loop variables, attributes)
and runs after every edit of a .py file, so it has to stay in pyflakes' range: prints the
time per file for the largest standard-library module and for 60 ordinary ones, and the ratio.
"""

from __future__ import annotations

import sysconfig
import time
from pathlib import Path

from groundup.agent.diagnostics import check


def pyflakes_check(source: str, name: str) -> int:
    from pyflakes.api import check as pf_check
    from pyflakes.reporter import Reporter
    import io
    return pf_check(source, name, Reporter(io.StringIO(), io.StringIO()))


def best(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    std = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(std.glob("*.py"))
    big = max(files, key=lambda f: f.stat().st_size)
    texts = {f: f.read_text(encoding="utf-8", errors="replace") for f in files[:60] + [big]}
    for label, group in ((f"{big.name} ({texts[big].count(chr(10)):,} lines)", [big]),
                         ("60 modules", files[:60])):
        ours = best(lambda: [check(texts[f]) for f in group])
        anchor = best(lambda: [pyflakes_check(texts[f], str(f)) for f in group])
        lines = sum(texts[f].count("\n") for f in group)
        print(f"{label:<32} ours {ours * 1e3:8.1f} ms   pyflakes {anchor * 1e3:8.1f} ms   "
              f"ratio {anchor / ours:5.2f}x   ({lines / ours / 1e3:.0f}k lines/s)")


if __name__ == "__main__":
    main()
