"""Evaluate any model as a coding agent: the real agent, real files, real tests.

    summary = evaluate("local:runs/cpu/model", load_tasks("tasks/heldout"), "runs/eval")

Design choices:
- Each task runs the real `Agent` (groundup/agent/loop.py) headless, in `yolo` mode (no one is
  there to approve), with a step limit, inside a fresh copy of the task's repository. Then the
  task's test files are restored from the original and every fail_to_pass and pass_to_pass
  test is run for real (groundup/tasks/check.py): editing the tests never counts as a fix.
- Results are appended to `results.jsonl` the moment a task ends, and a rerun skips the tasks
  already there: a killed evaluation resumes. Each transcript (the agent's message list) is
  written to `transcripts/<id>.jsonl`, one message per line, like a session file.
- Workers are threads: the time goes to the model and to test subprocesses. A model *spec*
  gives each running task a model of its own (at most `workers` are loaded, then reused) --
  except a spec whose model can serve several threads (`local:` with model_options batch=N, a
  continuous-batching engine of N slots): one is loaded and shared. On a GPU that is what makes
  parallel evaluation fast; on 2 CPU cores two separate models were faster (24 tasks: 34 s
  against 43 s) until the scheduler kept a prefix cache: now one engine of 8 slots solves the
  same tasks 1.2-1.45x faster (docs/lab/2026-12-03-speedrun-second-push.md). A model *object* is shared by all workers, so pass one only when it is safe to
  share (or use workers=1).
- `python` in the agent's shell is this interpreter (check.python_on_path), so the agent's
  test runs and the final check use the same Python.
"""

from __future__ import annotations

import json
import queue
import shutil
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from groundup.agent.cost import price_for
from groundup.agent.loop import Agent
from groundup.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from groundup.providers import load_model
from groundup.tasks.check import (TaskInfo, check, load_tasks, python_on_path, remove_scratch,
                                  scratch_copy)
from groundup.tasks.failures import classify


def run_task(model: Any, task: TaskInfo, out_dir: Path, max_steps: int = 12,
             compact_prompt: bool | None = None, max_seconds: float | None = None,
             keep_work: bool = False, max_repeats: int | None = None) -> dict[str, Any]:
    """Run the agent on one task and check the result; returns the results.jsonl row."""
    work = scratch_copy(task)
    start = time.monotonic()
    row: dict[str, Any] = {"id": task.id, "tier": task.tier, "bug_kind": task.bug_kind}
    messages: list[dict[str, Any]] = []
    try:
        agent = Agent(model, work, permission_mode="yolo", max_steps=max_steps,
                      compact_prompt=compact_prompt, max_seconds=max_seconds,
                      max_repeats=max_repeats, price=price_for(model.name))
        res = agent.run(task.problem_statement)
        if res.stop_reason == "interrupted":
            # the agent turns Ctrl-C into a result; here it means "stop the evaluation", and
            # the task is not recorded, so a rerun does it again
            remove_scratch(work)
            raise KeyboardInterrupt
        messages = res.messages
        row.update(steps=res.num_steps, stop_reason=res.stop_reason,
                   prompt_tokens=res.usage.prompt_tokens,
                   completion_tokens=res.usage.completion_tokens,
                   tokens=res.usage.prompt_tokens + res.usage.completion_tokens,
                   cache_read_tokens=res.usage.cache_read_tokens, cost_usd=res.cost_usd,
                   answer=res.result[:500])
    except Exception as e:  # a crash in one task must not end the evaluation; it is recorded
        row.update(steps=0, stop_reason="crash", tokens=0, answer=f"{type(e).__name__}: {e}")
    agent_s = time.monotonic() - start
    # how far the run got, before any solve: did a read_file return code, did an edit apply
    # (for a model still learning, these move long before `solved` does)
    done = {m.get("name") for m in messages
            if m.get("role") == "tool" and not str(m.get("content", "")).startswith("error")}
    row.update(read_ok="read_file" in done, edit_ok=bool(done & {"edit_file", "write_file"}),
               failed_edit=failed_edit(messages))
    result = check(task, work)
    if not result.solved:           # what the run did instead (failures.py)
        row["failure"] = classify(task.record.get("gold") or [], messages, row.get("stop_reason"))
    row.update(solved=result.solved, time_s=round(agent_s, 3),
               fail_to_pass=result.fail_to_pass, pass_to_pass=result.pass_to_pass,
               transcript=f"transcripts/{task.id}.jsonl")
    atomic_write_text(out_dir / row["transcript"],
                      "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages))
    if keep_work:   # for debugging: the repository as the agent left it
        dest = out_dir / "work" / task.id
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(work, dest)
    remove_scratch(work)
    return row


def failed_edit(messages: list[dict[str, Any]]) -> bool:
    """Did the run make an edit that failed: one the edit tool refused, or an applied one after
    which the next test run (a bash call) still exited non-zero?"""
    results = {m.get("tool_call_id"): str(m.get("content", "")) for m in messages
               if m.get("role") == "tool"}
    pending = False                 # an applied edit whose test run has not come yet
    calls = [c for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
    for c in calls:
        out = results.get(c.get("id"), "")
        if c.get("name") in ("edit_file", "write_file"):
            if out.startswith("error"):
                return True
            pending = True
        elif c.get("name") == "bash" and pending:
            if not out.rstrip().endswith("[exit code 0]"):
                return True
            pending = False
    return False


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Success overall, by tier and by bug kind, with average steps."""
    def group(key: Callable[[dict[str, Any]], str]) -> dict[str, dict[str, Any]]:
        buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            buckets[key(r)].append(r)
        return {k: _stats(v) for k, v in sorted(buckets.items())}
    return {**_stats(rows), "by_tier": group(lambda r: f"tier{r.get('tier', 0)}"),
            "by_kind": group(lambda r: str(r.get("bug_kind", "unknown")))}


def _stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    solved = sum(1 for r in rows if r.get("solved"))
    failures: dict[str, int] = {}
    for r in rows:
        if r.get("failure"):
            failures[r["failure"]] = failures.get(r["failure"], 0) + 1
    return {"solved": solved, "total": n, "rate": round(solved / n, 4) if n else 0.0,
            "failures": dict(sorted(failures.items(), key=lambda kv: -kv[1])),
            "read_ok": sum(1 for r in rows if r.get("read_ok")),
            "edit_ok": sum(1 for r in rows if r.get("edit_ok")),
            # runs that made an edit that failed (refused, or the tests after it still failed),
            # and those of them that solved the task anyway
            "failed_edit": sum(1 for r in rows if r.get("failed_edit")),
            "recovered": sum(1 for r in rows if r.get("failed_edit") and r.get("solved")),
            "avg_steps": round(sum(r.get("steps", 0) for r in rows) / n, 2) if n else 0.0,
            "avg_tokens": round(sum(r.get("tokens", 0) for r in rows) / n, 1) if n else 0.0,
            **_cost(rows, solved)}


def _cost(rows: Sequence[dict[str, Any]], solved: int) -> dict[str, Any]:
    """Total cost, and cost per solved task (agent/cost.py); None when a run's is unknown."""
    costs = [r.get("cost_usd") for r in rows if r.get("stop_reason") != "crash"]
    if not costs or any(c is None for c in costs):
        return {"cost_usd": None, "cost_per_solved_usd": None}
    total = round(sum(costs), 6)
    return {"cost_usd": total, "cost_per_solved_usd": round(total / solved, 6) if solved else None}


def evaluate(model: Any, tasks: Sequence[TaskInfo] | str | Path, out_dir: str | Path,
             workers: int = 1, max_steps: int = 12, compact_prompt: bool | None = None,
             max_seconds: float | None = None, resume: bool = True, progress: bool = True,
             on_result: Callable[[dict[str, Any]], None] | None = None,
             model_options: dict[str, Any] | None = None,
             max_repeats: int | None = None) -> dict[str, Any]:
    """Evaluate `model` (a spec like "local:DIR" or a Model object) on tasks; writes
    out_dir/results.jsonl, transcripts/ and summary.json, and returns the summary.
    max_repeats: stop a run whose model made the same call with the same result that often."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(tasks, (list, tuple)):
        tasks = load_tasks(tasks)
    results_path = out_dir / "results.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if resume and results_path.exists():
        done = {r["id"]: r for r in read_jsonl(results_path) if isinstance(r, dict) and "id" in r}
    elif results_path.exists():
        results_path.unlink()
    todo = [t for t in tasks if t.id not in done]
    wanted = {t.id for t in tasks}

    # a spec gives each worker its own model: a free list holds at most `workers` of them,
    # the first loaded here so a bad spec fails before any task starts
    free: queue.SimpleQueue = queue.SimpleQueue()
    own = None                      # a model loaded here, closed at the end
    if isinstance(model, str):
        own = load_model(model, **(model_options or {}))
        if getattr(own, "shareable", False):
            model = own             # one batched model, shared by every worker
        else:
            free.put(own)

    def borrow() -> Any:
        if not isinstance(model, str):
            return model
        try:
            return free.get_nowait()
        except queue.Empty:
            return load_model(model, **(model_options or {}))

    lock = threading.Lock()
    start = time.monotonic()
    bar = _Progress(len(tasks), sum(1 for i in done if i in wanted), enabled=progress)

    def one(task: TaskInfo) -> dict[str, Any]:
        m = borrow()
        try:
            row = run_task(m, task, out_dir, max_steps, compact_prompt, max_seconds,
                           max_repeats=max_repeats)
        finally:
            if isinstance(model, str):
                free.put(m)
        with lock:
            append_jsonl(results_path, row)
            bar.advance(row)
            if on_result is not None:
                on_result(row)
        return row

    try:
        with python_on_path():
            if workers <= 1:
                new_rows = [one(t) for t in todo]
            else:
                pool = ThreadPoolExecutor(max_workers=workers)
                try:
                    new_rows = list(pool.map(one, todo))
                finally:
                    # on Ctrl-C, drop the tasks not started; running ones finish their task
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
        if own is not None and model is own:
            own.close()
    try:
        (out_dir / "work").rmdir()   # the working copies are gone; drop their empty parent
    except OSError:
        pass
    rows = [r for r in done.values() if r["id"] in wanted] + new_rows
    rows.sort(key=lambda r: r["id"])
    summary = {"model": getattr(model, "name", str(model)), "max_steps": max_steps,
               "max_repeats": max_repeats,
               **summarize(rows), "wall_s": round(time.monotonic() - start, 1)}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


class _Progress:
    """A one-line progress display on stderr: a rich bar on a terminal, nothing otherwise."""

    def __init__(self, total: int, done: int, enabled: bool = True):
        self.solved = 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
                TimeRemainingColumn
            self.bar = Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[solved]} solved"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=False)
            self.bar.start()
            self.task = self.bar.add_task("eval", total=total, completed=done, solved=0)

    def advance(self, row: dict[str, Any]) -> None:
        self.solved += bool(row.get("solved"))
        if self.bar is not None:
            self.bar.update(self.task, advance=1, solved=self.solved)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a plain-text table (the CLI prints it; the report card can too). `read`
    and `edited`: runs in which a read_file returned a file, and an edit was applied."""
    lines = [f"{'':<22} {'solved':>8} {'total':>6} {'rate':>7} {'steps':>6}   {'read':>5} {'edited':>6}"]

    def row(name: str, s: dict[str, Any]) -> None:
        lines.append(f"{name:<22} {s['solved']:>8} {s['total']:>6} {100 * s['rate']:>6.1f}% "
                     f"{s['avg_steps']:>6.1f}   {s.get('read_ok', 0):>5} {s.get('edit_ok', 0):>6}")
    row("all", summary)
    for k, s in summary["by_tier"].items():
        row(k, s)
    lines.append("by bug kind:")
    for k, s in summary["by_kind"].items():
        row("  " + k, s)
    if summary.get("cost_usd"):                    # a model with a price (not our local one)
        per = summary.get("cost_per_solved_usd")
        lines.append(f"cost: ${summary['cost_usd']:.4f}"
                     + (f", ${per:.4f} per solved task" if per is not None else ", nothing solved"))
    return "\n".join(lines)
