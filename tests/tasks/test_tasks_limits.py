"""Test processes cannot take the machine down: no generated task loops while eating memory,
and `python` in the agent's shell (python_on_path) runs under memory and CPU-time caps."""

import subprocess
import time

from groundup.tasks.check import check, fresh_copy, load_task, python_on_path, run_tests
from groundup.tasks.generate import generate_task


def test_no_task_whose_bug_makes_the_tests_run_away(tmp_path):
    # seed 300016 (tier 3, train) once drew `cups.append(cup)` inside `for cup in cups`, whose
    # test grew a list until it held 9 GB; such mutations are now rejected at generation
    task_dir = generate_task(300016, tier=3, split="train").write(tmp_path / "tasks")
    task = load_task(task_dir)
    t0 = time.monotonic()
    got = run_tests(task.repo, task.fail_to_pass + task.pass_to_pass, timeout=30)
    assert "timeout" not in got.values()
    assert time.monotonic() - t0 < 30
    assert not check(task, fresh_copy(task, tmp_path / "work")).solved


def test_python_in_the_agents_shell_is_capped():
    with python_on_path():
        p = subprocess.run("python -c 'x = bytearray(6 * 2**30)'", shell=True,
                           capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "MemoryError" in p.stderr
