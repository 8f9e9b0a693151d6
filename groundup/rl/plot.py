"""An RL run's curves, from its metrics.jsonl, to a PNG (OUT/rl.png).

Top: the rollouts' reward and solve rate per step, raw (faint) and as a moving average -- a
step's few groups make single points noisy. Bottom: the KL from the starting model and the
policy's entropy per token, the two numbers that say whether the model is drifting or
collapsing. The Agg backend: no display needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from groundup.errors import UserError
from groundup.io import read_jsonl


def _ema(xs: list[float], alpha: float) -> list[float]:
    out, m = [], None
    for x in xs:
        m = x if m is None else alpha * m + (1 - alpha) * x
        out.append(m)
    return out


def plot_rl(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(run_dir) / "metrics.jsonl"
    recs = [r for r in read_jsonl(path) if "reward" in r] if path.exists() else []
    if not recs:
        raise UserError(f"{run_dir} has no RL metrics yet -- run `groundup train rl` for a step first")
    out = Path(output) if output else Path(run_dir) / "rl.png"
    steps = [r["step"] for r in recs]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    alpha = 0.8 if len(recs) > 10 else 0.0
    for key, color, label in (("reward", "tab:blue", "reward"), ("solved", "tab:green", "solve rate")):
        ys = [r[key] for r in recs]
        ax.plot(steps, ys, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, _ema(ys, alpha), color=color, label=f"{label} (EMA)")
    ax.set_ylabel("per attempt")
    ax.set_title(f"{Path(run_dir).name}: rollouts on training tasks")
    ax.grid(alpha=0.3)
    ax.legend()
    ax2.plot(steps, [r["kl"] for r in recs], color="tab:red", label="KL to the starting model")
    ax2.set_ylabel("nats / token")
    ent = ax2.twinx()
    ent.plot(steps, [r["entropy"] for r in recs], color="tab:gray", linestyle="--", linewidth=0.8)
    ent.set_ylabel("entropy (nats / token)", color="tab:gray")
    ax2.set_xlabel("step")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper left")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out
