"""Loss curves of a run, from its metrics.jsonl, to a PNG.

Design choices: the raw per-step training loss is drawn faint with an exponential moving
average over it (single steps are noisy; the trend is what one reads), validation loss as
points joined by a line, bits per byte on a second axis-panel with the learning rate, because
bpb is the number comparable across tokenizers. The Agg backend: no display needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from groundup.errors import UserError
from groundup.io import read_jsonl


def load_metrics(run_dir: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """(training step records, evaluation records) of a run."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise UserError(f"{run_dir} has no metrics.jsonl -- is it a training run directory?")
    recs = [r for r in read_jsonl(path) if _number(r.get("step"))]
    return ([r for r in recs if _number(r.get("loss"))],
            [r for r in recs if _number(r.get("val_loss"))])


def _number(x) -> bool:
    """A usable value: records damaged by hand or by a crash are left out of the plot."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def _ema(xs: list[float], alpha: float) -> list[float]:
    out, m = [], None
    for x in xs:
        m = x if m is None else alpha * m + (1 - alpha) * x
        out.append(m)
    return out


def plot_run(run_dir: str | os.PathLike, output: str | os.PathLike | None = None,
             title: str | None = None) -> Path:
    train, evals = load_metrics(run_dir)     # checked before matplotlib starts (and writes its cache)
    if not train and not evals:
        raise UserError(f"{run_dir}/metrics.jsonl has no records yet -- train for a few steps first")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(output) if output else Path(run_dir) / "loss.png"
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1]})
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        ax.plot(steps, _ema(losses, 0.9 if len(losses) > 50 else 0.0), color="tab:blue",
                label="train loss (EMA)")
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", color="tab:orange",
                label="validation loss")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title(title or f"{Path(run_dir).name}")
    ax.grid(alpha=0.3)
    ax.legend()
    bpb = [r for r in evals if _number(r.get("val_bpb"))]
    if bpb:
        ax2.plot([r["step"] for r in bpb], [r["val_bpb"] for r in bpb], "o-", color="tab:green",
                 label="validation bits / byte")
        ax2.set_ylabel("bits / byte")
        ax2.legend(loc="upper right")
    if train:
        lr_ax = ax2.twinx()
        lr_ax.plot(steps, [r["lr"] if _number(r.get("lr")) else float("nan") for r in train], color="tab:gray", linestyle="--", linewidth=0.8)
        lr_ax.set_ylabel("learning rate", color="tab:gray")
    ax2.set_xlabel("step")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)   # a plot refreshed during a run is never seen half-written
    return out
