"""`groundup train rl`: command-line glue over groundup.rl (wired into `groundup train`)."""

from __future__ import annotations

import argparse

from groundup.errors import UserError

DESCRIPTION = """\
Reinforcement learning from verifiable rewards (GRPO-style). The model runs as the agent on
training tasks -- the real loop, tools, files and test runs -- several attempts per task (a
group), sampled at a temperature through one batched engine. An attempt earns 1 when the
task's tests pass (test files restored first), 0 otherwise; each attempt's advantage is its
reward minus its group's mean, and one optimizer step raises the probability of the tokens the
model produced in the better attempts and lowers it in the worse ones, with a KL penalty
towards the starting model. Held-out tasks are refused. Resumable: rerun with --resume."""

EPILOG = """examples:
  groundup train rl --init runs/cpu/model --tasks runs/cpu/tasks/train --out runs/rl --steps 20
  groundup train rl --init runs/cpu/model --generate 200 --out runs/rl --group 8 --temperature 1.0
  groundup train rl ... --out runs/rl --resume                       # continue a killed run
  groundup eval agent --model local:runs/rl --tasks runs/cpu/tasks/heldout --out runs/rl-eval
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from groundup.rl.config import RLConfig
    d = RLConfig(init="", out="")
    p.description = DESCRIPTION
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--init", required=True, help="the model to start from (a fine-tuned model directory)")
    p.add_argument("--out", required=True, help="run directory (becomes a model directory when done)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tasks", help="a directory of training tasks (never held-out ones)")
    src.add_argument("--generate", type=int, metavar="N",
                     help="generate N fresh training-split tasks into OUT/tasks and practise on them")
    p.add_argument("--tier", type=int, choices=(1, 2, 3), default=d.generate_tier,
                   help=f"the tier of generated tasks (default {d.generate_tier})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    p.add_argument("--group", type=int, default=d.group,
                   help=f"attempts per task, compared with each other (default {d.group})")
    p.add_argument("--tasks-per-step", type=int, default=d.tasks_per_step,
                   help=f"tasks (groups) per step (default {d.tasks_per_step})")
    p.add_argument("--temperature", type=float, default=d.temperature,
                   help=f"sampling temperature of the rollouts (default {d.temperature:g})")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: a hundredth of the pretraining rate for this "
                        "width; a tenth broke the tool-call format within two steps: docs/12)")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear warmup steps (default 0)")
    p.add_argument("--optimizer", choices=("adamw", "muon"), default=d.optimizer,
                   help=f"default {d.optimizer}")
    p.add_argument("--kl", type=float, default=d.kl_coef, dest="kl_coef",
                   help=f"KL penalty coefficient towards the starting model (default {d.kl_coef:g}; 0: none)")
    p.add_argument("--std-norm", action="store_true",
                   help="divide advantages by their group's standard deviation")
    p.add_argument("--format-bonus", type=float, default=0.0,
                   help="add this x the share of well-formed tool calls to the reward (default 0)")
    p.add_argument("--read-bonus", type=float, default=0.0,
                   help="add this to the reward when the attempt read a file the fix is in (default 0)")
    p.add_argument("--max-agent-steps", type=int, default=d.max_agent_steps,
                   help=f"the agent's step limit per attempt (default {d.max_agent_steps})")
    p.add_argument("--turn-tokens", type=int, default=d.turn_tokens,
                   help=f"most tokens per model turn (default {d.turn_tokens})")
    p.add_argument("--batch", type=int, default=d.batch,
                   help=f"attempts running at once through one continuous-batching engine (default {d.batch})")
    p.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every N steps (default 1)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the task order and the sampling")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (same settings)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from groundup.rl.config import RLConfig
    from groundup.rl.trainer import rl_train
    if args.generate is not None and args.generate < 1:
        raise UserError(f"--generate must be at least 1, got {args.generate}")
    shaping = {k: w for k, w in (("format", args.format_bonus), ("read", args.read_bonus)) if w}
    cfg = RLConfig(init=args.init, out=args.out, tasks=args.tasks, generate=args.generate or 0,
                   generate_tier=args.tier, steps=args.steps, group=args.group,
                   tasks_per_step=args.tasks_per_step, temperature=args.temperature, lr=args.lr,
                   warmup_steps=args.warmup_steps, optimizer=args.optimizer, kl_coef=args.kl_coef,
                   std_norm=args.std_norm, shaping=shaping, max_agent_steps=args.max_agent_steps,
                   turn_tokens=args.turn_tokens, batch=args.batch, save_every=args.save_every,
                   seed=args.seed, device=args.device, resume=args.resume, quiet=args.quiet)
    print(rl_train(cfg))
    return 0
