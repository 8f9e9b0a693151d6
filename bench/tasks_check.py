"""Checking a task: our one-subprocess runner against one `python -m unittest ID` per test.

Anchor: the obvious way to check a SWE-bench-style task, one interpreter per test id.
Ours (groundup/tasks/check.py): one interpreter runs every id and prints one JSON line.
Also prints generation and oracle throughput (tasks/s) for sizing the speedrun's data.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from groundup.tasks.check import load_task, run_tests
from groundup.tasks.generate import generate_task
from groundup.tasks.oracle import record

N = 12


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    t0 = time.perf_counter()
    tasks = [generate_task(s, tier, "heldout") for tier in (1, 2, 3) for s in range(N)]
    gen_s = time.perf_counter() - t0
    dirs = [t.write(tmp / "tasks") for t in tasks]
    infos = [load_task(d) for d in dirs]
    n_tests = sum(len(i.fail_to_pass) + len(i.pass_to_pass) for i in infos)

    t0 = time.perf_counter()
    ours = [run_tests(i.repo, i.fail_to_pass + i.pass_to_pass) for i in infos]
    ours_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    anchor = []
    for i in infos:
        got = {}
        for tid in i.fail_to_pass + i.pass_to_pass:
            p = subprocess.run([sys.executable, "-B", "-m", "unittest", "-q", tid], cwd=i.repo,
                               capture_output=True, text=True)
            got[tid] = "pass" if p.returncode == 0 else "fail"
        anchor.append(got)
    anchor_s = time.perf_counter() - t0
    agree = all({k: v == "pass" for k, v in a.items()} == {k: v == "pass" for k, v in o.items()}
                for a, o in zip(anchor, ours))

    t0 = time.perf_counter()
    record(dirs, tmp / "sft.jsonl", workers=1, verify=False)
    oracle_s = time.perf_counter() - t0

    print(f"{len(infos)} tasks, {n_tests} tests; outcomes agree: {agree}")
    print(f"check, one subprocess per test (anchor): {anchor_s:.2f} s")
    print(f"check, one subprocess per task (ours):   {ours_s:.2f} s  "
          f"-> {anchor_s / ours_s:.1f}x faster")
    print(f"generation: {len(tasks) / gen_s:.0f} tasks/s (validated in-process)")
    print(f"oracle trajectories, 1 worker: {len(infos) / oracle_s:.1f} /s")


if __name__ == "__main__":
    main()
