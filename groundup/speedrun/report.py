"""The speedrun's report card: report.md, PNG plots beside it, and summary.json.

Design choices: everything here is read back from files the stages wrote (stages/*.json,
metrics.jsonl of each training run, the evaluation's results.jsonl and transcripts), so the
report can be rebuilt at any time (`groundup speedrun` reruns only this when all stages are
done) and never disagrees with the artefacts it describes.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from groundup.io import atomic_write_json, atomic_write_text, read_jsonl
from groundup.tasks import TIER_MEANING

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- pieces

def environment() -> dict[str, Any]:
    import torch
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "platform": platform.platform(), "cpus": os.cpu_count(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    return env


def code_size() -> dict[str, Any]:
    """Lines and files of the package, and its declared runtime dependencies."""
    pkg = REPO / "groundup"
    files = sorted(pkg.rglob("*.py"))
    lines = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
    by_layer: dict[str, int] = {}
    for f in files:
        layer = f.relative_to(pkg).parts[0] if len(f.relative_to(pkg).parts) > 1 else "(top)"
        by_layer[layer] = by_layer.get(layer, 0) + len(f.read_text(encoding="utf-8").splitlines())
    deps: list[str] = []
    pyproject = REPO / "pyproject.toml"
    if pyproject.exists():
        try:
            import tomllib   # Python >= 3.11
            deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
        except ImportError:  # 3.10: the report simply omits the list
            pass
    return {"files": len(files), "lines": lines, "by_layer": by_layer, "dependencies": deps}


def solved_transcript(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A solved held-out task and its transcript: the lowest tier, then the fewest steps."""
    path = out / "eval" / "results.jsonl"
    if not path.exists():
        return None
    rows = [r for r in read_jsonl(path) if r.get("solved")]
    if not rows:
        return None
    row = min(rows, key=lambda r: (r.get("tier", 0), r.get("steps", 0), r["id"]))
    tpath = out / "eval" / "transcripts" / f"{row['id']}.jsonl"
    if not tpath.exists():
        return None
    return row, list(read_jsonl(tpath))


def format_transcript(messages: list[dict[str, Any]], max_lines: int = 14) -> str:
    """Turn by turn, as plain text: what the model said, which tools it called, what came back."""
    out: list[str] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "user":
            out.append(f"USER: {m.get('content', '')}")
        elif role == "assistant":
            if m.get("content"):
                out.append(f"MODEL: {m['content']}")
            for c in m.get("tool_calls") or []:
                args = json.dumps(c.get("arguments", {}), ensure_ascii=False)
                out.append(f"MODEL calls {c.get('name')}({args})")
        elif role == "tool":
            lines = str(m.get("content", "")).splitlines()
            shown = lines[:max_lines] + ([f"... ({len(lines) - max_lines} more lines)"]
                                         if len(lines) > max_lines else [])
            out.append("TOOL " + (m.get("name") or "") + ":\n" + "\n".join("    " + l for l in shown))
    return "\n".join(out)


def failure_table(ev: dict[str, Any]) -> list[str]:
    """Markdown lines: per bug kind, solved / total and what the other runs did
    (groundup/tasks/failures.py says what each word means)."""
    from groundup.tasks.failures import FAILURES
    kinds = ev.get("by_kind", {})
    seen = [f for f in FAILURES if any(f in (s.get("failures") or {}) for s in kinds.values())]
    if not seen:
        return []
    L = ["What the unsolved runs did (the last applied edit decides; without one, the attempt "
         "that got furthest -- `groundup/tasks/failures.py`):", "",
         "| bug kind | solved | " + " | ".join(f.replace("_", " ") for f in seen) + " |",
         "|---|---:|" + "---:|" * len(seen)]
    for name, s in list(kinds.items()) + [("**all**", ev)]:
        f = s.get("failures") or {}
        L.append(f"| {name} | {s['solved']} / {s['total']} | "
                 + " | ".join(str(f.get(k, 0)) for k in seen) + " |")
    return L + [""]


# ----------------------------------------------------------------------------- plots

def plot_success(summary: dict[str, Any], path: Path) -> Path | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = [("tier", summary.get("by_tier", {})), ("bug kind", summary.get("by_kind", {}))]
    if not any(g for _, g in groups):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 3]})
    for ax, (label, g) in zip(axes, groups):
        names = list(g)
        rates = [100 * g[n]["rate"] for n in names]
        ax.bar(range(len(names)), rates, color="#4c72b0")
        ax.set_xticks(range(len(names)), [f"{n}\n{g[n]['solved']}/{g[n]['total']}" for n in names],
                      fontsize=7, rotation=0 if label == "tier" else 45, ha="center" if label == "tier" else "right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("% solved")
        ax.set_title(f"held-out tasks solved, by {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the card

def headline(results: dict[str, dict]) -> dict[str, Any]:
    by_tier = (results.get("eval") or {}).get("by_tier", {})
    return {t: {"solved": s["solved"], "total": s["total"]} for t, s in by_tier.items()}


def write_report(out: Path, preset_name: str, results: dict[str, dict]) -> dict[str, Any]:
    from groundup.train.plot import plot_run

    env = environment()
    code = code_size()
    wall_s = round(sum(r.get("stage_s", 0) for r in results.values()), 1)
    plots: dict[str, str] = {}
    for run, name in (("base", "pretrain_loss.png"), ("model", "sft_loss.png")):
        if (out / run / "metrics.jsonl").exists():
            plot_run(out / run, out / name, title=f"{run}: {'pretraining' if run == 'base' else 'fine-tuning'}")
            plots[run] = name
    rl = results.get("rl") or {}
    if rl.get("ran") and (out / "rl" / "metrics.jsonl").exists():
        from groundup.rl.plot import plot_rl
        plots["rl"] = plot_rl(out / "rl", out / "rl_reward.png").name
    ev = results.get("eval") or {}
    if ev and plot_success(ev, out / "success_by_kind.png"):
        plots["success"] = "success_by_kind.png"

    summary = {"preset": preset_name, "heldout": headline(results), "wall_s": wall_s,
               "stages": results, "environment": env,
               "code": {k: v for k, v in code.items() if k != "by_layer"}}
    atomic_write_json(out / "summary.json", summary)

    tk, pt, tr, st = (results.get(k) or {} for k in ("tokenizer", "pretrain", "trajectories", "sft"))
    L: list[str] = [f"# groundup speedrun — report card (`{preset_name}` preset)", ""]
    L += ["## Headline", ""]
    meaning = {f"tier{t}": m for t, m in TIER_MEANING.items()}      # summary.json's keys
    for tier, s in headline(results).items():
        pct = 100 * s["solved"] / s["total"] if s["total"] else 0
        L.append(f"- **{tier}**: {s['solved']} / {s['total']} held-out tasks solved ({pct:.0f}%)"
                 + (f" -- {meaning[tier]}" if tier in meaning else ""))
    L += [f"- whole pipeline: {wall_s / 60:.1f} minutes of stage time", ""]
    L += ["## Environment", "", "| | |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in env.items()]
    L += ["", "## Corpus and tokenizer", ""]
    if tk:
        L += [f"{tk['files']} files of the Python standard library, {tk['bytes'] / 1e6:.1f} MB -> "
              f"{tk['tokens']:,} tokens with a {tk['vocab_size']}-token vocabulary: "
              f"**{tk['bytes_per_token']} bytes per token**; trained in {tk['train_s']} s.", ""]
    L += ["## Pretraining", ""]
    if pt:
        L += [f"- model: depth {pt.get('depth')}, **{pt.get('params', 0) / 1e6:.2f}M parameters**"
              + (f", optimizer {pt['optimizer']}" if pt.get("optimizer") else ""),
              f"- {pt.get('steps')} steps x {pt.get('batch_size')} x {pt.get('seq_len')} tokens = "
              f"{pt.get('tokens') or 0:,} tokens in {pt.get('stage_s', 0):.0f} s "
              f"({pt.get('tokens_per_s', 0):,.0f} tokens/s)"
              + (f"; the corpus here: {pt['corpus_files']} files, {pt['corpus_train_tokens']:,} "
                 f"training tokens, read {pt['passes']} times" if pt.get("corpus_files") else ""),
              f"- final training loss {pt.get('final_loss')}, validation loss {pt.get('val_loss')}, "
              f"**validation {pt.get('val_bpb')} bits per byte**"]
        if pt.get("copy_acc") is not None:
            L += [f"- copying from the context (a random sequence written twice, greedy accuracy on "
                  f"the second copy): **{100 * pt['copy_acc']:.0f}%** -- an agent copies test ids, "
                  f"paths and lines all the time; near 0% it cannot"]
        if pt.get("wired_induction"):
            two = pt.get("induction_match") == 2
            L += ["- induction heads written into the initial weights and pinned through training "
                  f"{'(the second one matches the last two tokens) ' if two else ''}"
                  "(`groundup/train/circuits.py`; docs/04-training.md explains the circuit): the "
                  "model can copy from step 0, and learns the language faster"]
        L += [""]
        if pt.get("sample"):
            prompt = pt.get("sample_prompt") or "def "
            # the trainer's sample holds its prompt (train/trainer.py decodes prompt + continuation)
            text = str(pt["sample"])
            cont = text[len(prompt):] if text.startswith(prompt) else text
            L += ["A sample from the pretrained model (temperature 0.8, top 40), continuing the "
                  "prompt above the marked line: Python-shaped text from a 2M-parameter model "
                  "that has read a third of its corpus once, not working code:", "", "```python",
                  prompt.removesuffix("def ").rstrip("\n"), "", "# ---- the model, from here ----",
                  ("def " if prompt.endswith("def ") else "") + cont, "```", ""]
        if "base" in plots:
            L += [f"![pretraining loss]({plots['base']})", ""]
    L += ["## Fine-tuning on agent trajectories", ""]
    if tr:
        L += [f"- {tr['trajectories']} oracle trajectories (avg {tr['avg_messages']} messages; "
              f"{tr['with_tool_errors']} include a tool error and the recovery)"]
    if st:
        L += [f"- {st.get('examples')} conversations, median {st.get('median_tokens')} tokens, "
              f"{st.get('loss_tokens') or 0:,} tokens carry the loss"
              f"{', ' + str(st['truncated']) + ' truncated' if st.get('truncated') else ''}"
              + (f"; plus {st['copy_drills']} copy drills (random spans written twice) in the "
                 "training rows" if st.get("copy_drills") else "")
              + (f" and {st['name_drills']} name drills (a wrong name fixed: "
                 "`groundup/tasks/drills.py`)" if st.get("name_drills") else ""),
              f"- {st.get('steps')} steps in {st.get('stage_s', 0):.0f} s; final loss {st.get('final_loss')}, "
              f"validation loss {st.get('val_loss')}"
              + (f"; copying {100 * st['copy_acc']:.0f}%" if st.get("copy_acc") is not None else "")]
        if st.get("val_turn_acc") is not None:
            L += [f"- assistant turns of held-out conversations that greedy decoding reproduces exactly "
                  f"(teacher-forced): **{100 * st['val_turn_acc']:.0f}%**"]
        L += [""]
        if "model" in plots:
            L += [f"![fine-tuning loss]({plots['model']})", ""]
    L += ["## Reinforcement learning on training tasks", ""]
    if rl.get("ran"):
        L += [f"- {rl['steps']} steps, {rl['attempts']} attempts ({rl['group']} per task, sampled at "
              f"temperature {rl['temperature']:g}) through the real agent harness, rewarded 1 when the "
              f"task's tests pass; {rl['rollout_s']:.0f} s of rollouts ({rl['gen_tokens']:,} tokens "
              f"generated), {rl['update_s']:.0f} s of updates",
              f"- the rollouts' solve rate: {100 * rl['solved_first']:.0f}% over the first quarter of the "
              f"steps, {100 * rl['solved_last']:.0f}% over the last; KL from the fine-tuned model at the "
              f"end {rl['kl_last']} nats/token", "- the evaluation below runs this model", ""]
        if "rl" in plots:
            L += [f"![RL reward]({plots['rl']})", ""]
    else:
        L += ["Off in this preset: the evaluation runs the fine-tuned model (docs/12-rl.md has what "
              "RL bought where it was measured).", ""]
    L += ["## Evaluation on held-out tasks", ""]
    if ev:
        L += [f"The trained model as the agent's model (`local:`), at most {ev.get('max_steps')} steps "
              f"per task, real files and real test runs; {ev.get('wall_s', 0):.0f} s.", "",
              "How far the runs got before that: *read* counts runs in which a `read_file` returned "
              "a file, *edited* runs in which an edit applied.", "",
              "| | solved | total | rate | avg steps | read | edited |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        rows = [("**all**", ev)] + list(ev.get("by_tier", {}).items()) + \
               [(f"kind: {k}", v) for k, v in ev.get("by_kind", {}).items()]
        L += [f"| {n} | {s['solved']} | {s['total']} | {100 * s['rate']:.0f}% | {s['avg_steps']} "
              f"| {s.get('read_ok', '-')} | {s.get('edit_ok', '-')} |" for n, s in rows]
        if ev.get("varied"):
            v = ev["varied"]
            L += ["", f"The same tier-1 bugs in layouts and wording no training task has "
                      f"(`groundup/tasks/variants.py`: src/ packages, flat modules with a tests/ "
                      f"folder; a user's sentence instead of test ids): **{v['solved']} / {v['total']}**."]
        L += [""] + failure_table(ev)
        if "failed_edit" in ev:
            L += [f"Recovery: {ev['failed_edit']} runs made an edit that failed (the edit tool refused "
                  f"it, or the tests after it still failed); {ev['recovered']} of them solved the task "
                  "anyway.", ""]
        if "success" in plots:
            L += [f"![success by tier and kind]({plots['success']})", ""]
    sol = solved_transcript(out)
    L += ["## A solved transcript", ""]
    if sol:
        row, msgs = sol
        L += [f"Task `{row['id']}` (tier {row.get('tier')}, {row.get('bug_kind')}), "
              f"solved in {row.get('steps')} steps:", "", "```", format_transcript(msgs), "```", ""]
    else:
        L += ["No held-out task was solved in this run.", ""]
    L += ["## The code that did all this", "",
          f"{code['lines']:,} lines of Python in {code['files']} files; runtime dependencies: "
          + ", ".join(f"`{d}`" for d in code["dependencies"]) + ".", "",
          "| layer | lines |", "|---|---:|"]
    L += [f"| {k} | {v:,} |" for k, v in sorted(code["by_layer"].items())]
    atomic_write_text(out / "report.md", "\n".join(L) + "\n")
    return summary
