"""The settings of an RL run, in one dataclass (light to import: `groundup train --help` reads
its defaults without loading torch or the agent)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class RLConfig:
    init: str                       # the model to start from (an SFT run directory)
    out: str                        # run directory (a model directory when done)
    tasks: str | None = None        # a directory of training tasks...
    generate: int = 0               # ...or generate this many fresh training tasks into OUT/tasks
    generate_tier: int = 1
    steps: int = 20                 # optimizer steps; each one runs tasks_per_step x group attempts
    group: int = 8                  # attempts per task (the G of GRPO)
    tasks_per_step: int = 2
    temperature: float = 1.0        # rollouts sample at this temperature; the loss uses the same
    lr: float | None = None         # None: a hundredth of the pretraining rate for this width (docs/12)
    warmup_steps: int = 0
    optimizer: str = "adamw"
    grad_clip: float = 1.0
    kl_coef: float = 0.02           # β: the KL penalty towards the starting model
    std_norm: bool = False          # divide advantages by the group's std
    shaping: dict[str, float] = field(default_factory=dict)   # {"format": w, "read": w}
    max_agent_steps: int = 12       # the agent's step limit per attempt (as the eval)
    max_repeats: int = 3            # the same call with the same result this often ends an attempt
    turn_tokens: int = 192          # most tokens per model turn
    batch: int = 16                 # engine slots = attempts running at once
    save_every: int = 1
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"
    resume: bool = True
    quiet: bool = False
