"""Rollouts: the model practises on training tasks through the real agent harness.

    attempts = rollout(model, jobs, workers=16)          # jobs: (task, group, index, seed)

One *attempt* is exactly an evaluation run (tasks/evaluate.py): a fresh copy of the task's
repository, the real `Agent` (yolo mode, a step limit, the compact prompt our small models
were trained with), the real tools and test runs; then the task's test files are restored and
every fail_to_pass and pass_to_pass test runs for real (tasks/check.py). On top of what the
evaluation keeps, an attempt keeps what training needs:

- **the ids the model actually produced.** The agent's model is a `RecordingModel` around the
  shared LocalModel; every turn's `Finish` carries the prompt ids the model was shown and the
  ids it generated (stop id included), and those are what the update trains on -- never a
  re-rendering of the transcript, whose tokenisation can differ from what was sampled (a JSON
  argument re-serialised, a word split another way). `stitch` joins the turns into rows: a
  turn whose prompt starts with the row so far extends it, anything else (a compacted view, a
  re-tokenised turn) starts a new row, so each generated token is scored in exactly the
  context it was sampled in. The mask is 1 on the generated ids and 0 on everything else.
- **the reward**: 1 when every fail_to_pass test passes and every pass_to_pass test still
  passes, else 0 -- the verifier, with the tests restored first, so an agent that edits the
  tests earns nothing. Two shaping terms are measured for every attempt and reported apart
  (`format`: the share of its tool calls that were well-formed; `read`: it read a file the fix
  is in), and added to the reward only with a weight (`shaping`, default none).
- **recovery**: whether the run made a failed edit (the edit tool refused it, or the test run
  after an applied edit still failed) and whether it solved the task anyway.

Design choices:
- Each attempt samples with its own seeds (one per turn, from the job's seed), so a group of
  attempts at one task explores, and rerunning an attempt gives the same tokens -- what makes
  a killed run resume to the same numbers. For that the prompt must be the same too, and the
  working copy's path is in it (the system prompt, every traceback): an attempt works in
  /tmp/groundup-XXXXXXXX/repo like the oracle and the evaluation, with the X's drawn from its
  seed instead of at random (`scratch_for`).
- Threads over one LocalModel(batch=N) (engine/scheduler.py): while one attempt waits for its
  test run, the others' tokens decode in the same batched step -- the CPU's time goes to the
  model. An attempt's row is written the moment it ends (`on_done`), so a kill loses at most
  the attempts in flight.
- Never a held-out task: `load_training_tasks` refuses a directory that holds one.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from groundup.agent.loop import Agent
from groundup.errors import UserError
from groundup.providers.base import Finish
from groundup.tasks.check import (TaskInfo, check, fresh_copy, load_tasks, python_on_path,
                                  remove_scratch, scratch_copy)
from groundup.tasks.evaluate import failed_edit

def load_training_tasks(path: str | Path) -> list[TaskInfo]:
    """Tasks to practise on: any directory of tasks, as long as none of them is held out."""
    tasks = load_tasks(path)
    held = [t.id for t in tasks if t.record.get("split") == "heldout"]
    if held:
        raise UserError(f"{path} holds {len(held)} held-out task(s) ({held[0]}, ...): reinforcement "
                        "learning practises on training tasks only, so that the held-out evaluation "
                        "measures what it learned -- point --tasks at the training split")
    return tasks


def mix_seed(*parts: Any) -> int:
    """A 62-bit seed from any parts (run seed, step, task, attempt, turn): distinct, stable."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 2


NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"      # what tempfile.mkdtemp draws from


def scratch_for(task: TaskInfo, seed: int, owner: str) -> Path:
    """A working copy at /tmp/groundup-XXXXXXXX/repo whose X's come from `seed`. `owner` (the
    run directory) is written beside repo/: a copy that a killed run of the same owner left
    behind is replaced; a name in use by anyone else is skipped for the next one."""
    for k in range(1000):
        h = mix_seed(seed, "scratch", k)
        parent = Path(tempfile.gettempdir()) / ("groundup-" + "".join(
            NAME_CHARS[(h >> (6 * i)) % len(NAME_CHARS)] for i in range(8)))
        mark = parent / "owner"
        try:
            parent.mkdir(mode=0o700)
        except FileExistsError:
            if not (mark.is_file() and mark.read_text() == owner):
                continue
            shutil.rmtree(parent, ignore_errors=True)       # our own, left by a kill
            try:
                parent.mkdir(mode=0o700)
            except FileExistsError:
                continue
        mark.write_text(owner)
        return fresh_copy(task, parent / "repo")
    raise RuntimeError(f"no free scratch directory in {tempfile.gettempdir()}")


@dataclass
class Turn:
    prompt_ids: list[int]          # what the model was shown
    token_ids: list[int]           # what it produced (its stop id included)


class RecordingModel:
    """The agent's model for one attempt: the shared model, sampled with this attempt's seeds,
    keeping every turn's ids."""

    def __init__(self, model: Any, temperature: float, seed: int):
        self.model, self.temperature, self.seed = model, temperature, seed
        self.name = model.name
        self.compact_prompt = model.compact_prompt
        self.turns: list[Turn] = []

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               *, max_tokens: int | None = None) -> Iterator[Any]:
        sampling = {"temperature": self.temperature, "seed": mix_seed(self.seed, len(self.turns))}
        for ev in self.model.stream(messages, tools, max_tokens=max_tokens, sampling=sampling):
            if isinstance(ev, Finish):
                if ev.token_ids is None:
                    raise UserError(f"{self.name} does not report its token ids: reinforcement "
                                    "learning needs a local model (local:DIR)")
                self.turns.append(Turn(list(ev.prompt_ids), list(ev.token_ids)))
            yield ev


def stitch(turns: Sequence[Turn]) -> list[tuple[list[int], list[int]]]:
    """Turns -> rows of (ids, mask): mask 1 exactly on the ids the model generated, each in
    the context it was generated in."""
    rows: list[tuple[list[int], list[int]]] = []
    ids: list[int] = []
    mask: list[int] = []
    for t in turns:
        if ids and t.prompt_ids[:len(ids)] == ids:        # the prompt continues this row
            new = t.prompt_ids[len(ids):]
        else:                                              # a different context: a new row
            if ids:
                rows.append((ids, mask))
            ids, mask, new = [], [], t.prompt_ids
        ids = ids + list(new) + list(t.token_ids)
        mask = mask + [0] * len(new) + [1] * len(t.token_ids)
    if ids:
        rows.append((ids, mask))
    return rows


# ----------------------------------------------------------------------------- what a run did

def _results(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {m.get("tool_call_id"): str(m.get("content", "")) for m in messages if m.get("role") == "tool"}


def _calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []]


def measure_terms(task: TaskInfo, messages: list[dict[str, Any]]) -> dict[str, float]:
    """The shaping terms: `format` the share of tool calls that parsed and fit their tool
    (0 without calls); `read` 1 if a read_file of a file the fix is in returned its text."""
    calls = _calls(messages)
    results = _results(messages)
    fix_files = {Path(g["path"]).as_posix() for g in task.record.get("gold", [])}
    read = any(c.get("name") == "read_file" and not c.get("error")
               and Path(str((c.get("arguments") or {}).get("path", ""))).as_posix().lstrip("./") in
               {f.lstrip("./") for f in fix_files}
               and not results.get(c.get("id"), "error").startswith("error")
               for c in calls)
    well_formed = sum(1 for c in calls if not c.get("error"))
    return {"format": well_formed / len(calls) if calls else 0.0, "read": float(read)}


def recovery_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Over attempt or evaluation rows with `failed_edit` and `solved`: how many runs made a
    failed edit, and how many of those solved their task anyway."""
    failed = [r for r in rows if r.get("failed_edit")]
    return {"failed_edit": len(failed), "recovered": sum(1 for r in failed if r.get("solved"))}


# ----------------------------------------------------------------------------- attempts

@dataclass
class Job:
    task: TaskInfo
    group: int                     # which group of this step
    index: int                     # which attempt of its group
    seed: int


@dataclass
class Attempt:
    task_id: str
    group: int
    index: int
    seed: int
    reward: float
    solved: bool
    terms: dict[str, float]
    failed_edit: bool
    stop_reason: str
    steps: int
    gen_tokens: int
    seconds: float
    rows: list[tuple[list[int], list[int]]] = field(default_factory=list)   # (ids, mask)
    turns: int = 0                 # model turns
    drift: int = 0                 # turns that could not extend their row (rows - 1)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Attempt":
        d = dict(d)
        d["rows"] = [(list(i), list(m)) for i, m in d.get("rows", [])]
        return cls(**d)


def run_attempt(model: Any, job: Job, temperature: float, max_steps: int = 12,
                max_repeats: int | None = 3, shaping: dict[str, float] | None = None,
                max_output_tokens: int | None = None, owner: str | None = None) -> Attempt:
    """One attempt at one task through the real agent; its reward from the real tests.
    owner: the run directory, for a working copy whose path follows the seed (None: random)."""
    rec = RecordingModel(model, temperature, job.seed)
    work = scratch_copy(job.task) if owner is None else scratch_for(job.task, job.seed, owner)
    start = time.monotonic()
    try:
        agent = Agent(rec, work, permission_mode="yolo", max_steps=max_steps, compact_prompt=True,
                      max_repeats=max_repeats, max_output_tokens=max_output_tokens)
        res = agent.run(job.task.problem_statement)
        if res.stop_reason == "interrupted":
            raise KeyboardInterrupt
        solved = check(job.task, work).solved
    finally:
        remove_scratch(work)
    terms = measure_terms(job.task, res.messages)
    reward = float(solved) + sum(w * terms[k] for k, w in (shaping or {}).items() if w)
    rows = stitch(rec.turns)
    return Attempt(job.task.id, job.group, job.index, job.seed, reward, solved, terms,
                   failed_edit(res.messages), res.stop_reason, res.num_steps,
                   sum(len(t.token_ids) for t in rec.turns), round(time.monotonic() - start, 3),
                   rows, len(rec.turns), max(0, len(rows) - 1), res.messages)


def rollout(model: Any, jobs: Sequence[Job], temperature: float, workers: int = 1,
            on_done: Callable[[Attempt], None] | None = None, **attempt_kw: Any) -> list[Attempt]:
    """Run every job (in threads when workers > 1, sharing `model`); returns the attempts in
    job order. on_done(attempt) is called as each one ends (under a lock: one at a time)."""
    import threading
    lock = threading.Lock()

    def one(job: Job) -> Attempt:
        a = run_attempt(model, job, temperature, **attempt_kw)
        if on_done is not None:
            with lock:
                on_done(a)
        return a

    with python_on_path():
        if workers <= 1:
            return [one(j) for j in jobs]
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            return list(pool.map(one, jobs))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
