"""`groundup train base|sft|rl|plot`: command-line glue over groundup.train (and groundup.rl).

Also `python -m groundup.train ...` (what `torchrun -m groundup.train` runs), and `--nproc N`,
which re-launches the same command under torchrun with N processes. This file may import the
chat layer (it is CLI glue): conversations are rendered to (ids, mask) here, so the library
below only ever sees token ids.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from groundup.argtypes import (device, existing_dir, existing_file, existing_path, float_range, int_range,
                               model_dir, nonneg_float, nonneg_int, output_dir, output_file,
                               positive_float, positive_int)
from groundup.errors import UserError

VAL_FRACTION = float_range(0, 1, high_open=True)     # 0: no validation split; 1 would leave no training data

EPILOG = """examples:
  groundup train base --depth 4 --steps 500 --out runs/base          # embedded stdlib corpus
  groundup train base --data mycode/ --tokenizer runs/base --out runs/b2 --steps 200
  groundup train base ... --out runs/base --resume                   # continue a killed run
  groundup train base ... --nproc 2                                  # 2 processes (torchrun)
  groundup train sft --init runs/base --data chats.jsonl --out runs/sft --steps 200
  groundup train rl --init runs/sft --tasks runs/cpu/tasks/train --out runs/rl --steps 20
  groundup train plot runs/base                                      # -> runs/base/loss.png
"""


def _loop_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=output_dir,
                   help="run directory (becomes a model directory when done)")
    p.add_argument("--steps", type=positive_int, default=500, help="optimizer steps (default 500)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="global batch: sequences per optimizer step over all processes (default 32)")
    p.add_argument("--micro-batch", type=positive_int, default=None,
                   help="sequences per forward pass per process; the rest is gradient accumulation "
                        "(default: batch-size / processes)")
    p.add_argument("--seq-len", type=int_range(2), default=256, help="tokens per training sequence (default 256)")
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default: derived from width)")
    p.add_argument("--warmup-steps", type=nonneg_int, default=None, help="linear warmup steps (default 5%% of steps)")
    p.add_argument("--weight-decay", type=nonneg_float, default=None, help="AdamW weight decay on matrices")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "muon"],
                   help="adamw (default) or muon: orthogonalised momentum for the matrices inside "
                        "the blocks, AdamW for embeddings and norms (train/muon.py)")
    p.add_argument("--grad-clip", type=positive_float, default=1.0, help="clip the gradient norm (default 1.0)")
    p.add_argument("--eval-every", type=nonneg_int, default=100,
                   help="validation loss, bits/byte and a sample every N steps (default 100; 0: at the end only)")
    p.add_argument("--eval-tokens", type=positive_int, default=32768, help="validation tokens per evaluation")
    p.add_argument("--save-every", type=nonneg_int, default=100,
                   help="checkpoint every N steps (default 100; 0: at the end only)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last good checkpoint (same settings)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed for weights, data order and sampling")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="auto: bf16 autocast on a GPU or a CPU with AMX, else float32")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--device", default="auto", type=device, help="auto | cpu | cuda")
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="data-parallel processes on this machine, launched with torchrun "
                        "(gloo on CPU, NCCL on GPU)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="verb", metavar="{base,sft,rl,plot}")
    sub.required = True
    b = sub.add_parser("base", help="pretrain a model from scratch on text (resumable)",
                       description="Pretrain a Llama-style model from scratch. Without --tokenizer a "
                                   "byte-level BPE tokenizer is trained on the data first and kept "
                                   "in the run directory.")
    b.add_argument("--data", nargs="+", default=None, metavar="PATH", type=existing_path,
                   help="text files or directories (default: the Python standard library)")
    b.add_argument("--data-dir", default=None, type=output_dir, help="where token shards go (default OUT/data)")
    b.add_argument("--tokenizer", default=None, type=existing_path,
                   help="tokenizer directory (default: train one)")
    b.add_argument("--vocab-size", type=int_range(288), default=4096,
                   help="vocabulary of the trained tokenizer (at least 288: 256 bytes + 32 special)")
    b.add_argument("--depth", type=int_range(1, 64), default=4,
                   help="model size dial: depth layers of width 64*depth")
    b.add_argument("--context-len", type=int_range(2), default=None,
                   help="the model's context window (default: --seq-len); set it to the SFT length "
                        "if fine-tuning will use longer sequences")
    b.add_argument("--val-fraction", type=VAL_FRACTION, default=0.02, help="documents held out for validation")
    b.add_argument("--tie-embeddings", action="store_true",
                   help="the output head shares the token embedding matrix")
    b.add_argument("--wire-induction", action="store_true",
                   help="start from hand-written induction heads, so the model copies from its "
                        "context from step 0 (groundup/train/circuits.py)")
    b.add_argument("--induction-match", type=int, choices=(1, 2), default=1,
                   help="with --wire-induction: the second induction head matches the last 1 or 2 "
                        "tokens (2 tells apart repeated tokens; needs >= 3 heads, depth >= 3)")
    _loop_args(b)
    s = sub.add_parser("sft", help="fine-tune a model on chat conversations (loss on assistant tokens)",
                       description="Supervised fine-tuning. --data is a JSONL file: one conversation "
                                   "per line, {\"messages\": [...], \"tools\": [...]} in groundup's "
                                   "chat format (or pre-rendered {\"ids\": [...], \"mask\": [...]}).")
    s.add_argument("--init", required=True, type=model_dir,
                   help="model directory to start from (e.g. a `train base` run)")
    s.add_argument("--data", required=True, type=existing_file, help="conversations, JSONL")
    s.add_argument("--val-fraction", type=VAL_FRACTION, default=0.05, help="conversations held out")
    _loop_args(s)
    from groundup.rl.cli import add_arguments as rl_arguments
    rl_arguments(sub.add_parser("rl", help="reinforcement learning on bug-fix tasks, rewarded when "
                                           "the tests pass (GRPO-style; resumable)"))
    pl = sub.add_parser("plot", help="draw a run's loss curves to PNG",
                        description="Plot training loss, validation loss and bits/byte of a run; "
                                    "of an RL run, its reward, solve rate, KL and entropy.")
    pl.add_argument("run_dir", type=existing_dir, help="a run directory (holding metrics.jsonl)")
    pl.add_argument("-o", "--output", default=None, type=output_file,
                    help="PNG path (default RUN_DIR/loss.png; RUN_DIR/rl.png for an RL run)")


def _common(args) -> dict:
    kw = dict(out=args.out, steps=args.steps, batch_size=args.batch_size, micro_batch=args.micro_batch,
              seq_len=args.seq_len, lr=args.lr, warmup_steps=args.warmup_steps, grad_clip=args.grad_clip,
              eval_every=args.eval_every, eval_tokens=args.eval_tokens, save_every=args.save_every,
              resume=args.resume, seed=args.seed, dtype=args.dtype, compile=args.compile,
              optimizer=args.optimizer,
              device=args.device, quiet=args.quiet, val_fraction=args.val_fraction)
    if args.weight_decay is not None:
        kw["weight_decay"] = args.weight_decay
    return kw


def _argv_for(args) -> list[str]:
    """This command's arguments, rebuilt from the parsed namespace (minus --nproc)."""
    argv = [args.verb]
    for k, v in vars(args).items():
        if k in ("verb", "nproc") or v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif isinstance(v, list):
            argv += [flag, *map(str, v)]
        else:
            argv += [flag, str(v)]
    return argv


def _launch_torchrun(args) -> int:
    """Re-run this very command under torchrun: N processes of `python -m groundup.train`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={args.nproc}", "-m", "groundup.train", *_argv_for(args)]
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:   # split the cores between the processes
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.nproc))
    return subprocess.call(cmd, env=env)


def render_conversations(path: str | os.PathLike, tokenizer):
    """(ids, mask) for each line of a conversations JSONL (or pre-rendered ids/mask lines)."""
    import json

    from groundup.chat.format import render_conversation

    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: not JSON ({e.msg}) -- one conversation per line") from None
            if isinstance(r, dict) and "ids" in r and "mask" in r:
                yield r["ids"], r["mask"]
                continue
            msgs = r.get("messages") if isinstance(r, dict) else r
            if not isinstance(msgs, list):
                raise UserError(f"{path}:{lineno}: expected {{\"messages\": [...], \"tools\": [...]}}")
            try:
                yield render_conversation(msgs, r.get("tools") if isinstance(r, dict) else None, tokenizer)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise UserError(f"{path}:{lineno}: bad conversation ({e})") from None


def _sample_prompt(path: str, tokenizer) -> list[int] | None:
    """The first conversation up to its first assistant turn, as a generation prompt."""
    import json

    from groundup.chat.format import render_prompt

    try:
        with open(path, encoding="utf-8") as f:
            r = json.loads(next(line for line in f if line.strip()))
        msgs = r["messages"]
        cut = next(i for i, m in enumerate(msgs) if m.get("role") == "assistant")
        return render_prompt(msgs[:cut], r.get("tools"), tokenizer) if cut else None
    except (StopIteration, KeyError, TypeError, ValueError, AttributeError):
        return None   # pre-rendered ids or an odd first line: no sample, not an error


def run(args) -> int:
    if args.verb == "plot":
        if (Path(args.run_dir) / "rl_config.json").is_file():     # an RL run: its own curves
            from groundup.rl.plot import plot_rl
            print(plot_rl(args.run_dir, args.output))
            return 0
        from groundup.train.plot import plot_run
        print(plot_run(args.run_dir, args.output))
        return 0
    if args.verb == "rl":
        from groundup.rl.cli import run as run_rl
        return run_rl(args)
    if args.micro_batch and args.batch_size % (args.micro_batch * args.nproc):
        raise UserError(f"--batch-size {args.batch_size} is not a multiple of --micro-batch "
                        f"{args.micro_batch} x {args.nproc} processes -- pick sizes that divide")
    if args.resume and not (Path(args.out) / "train_config.json").is_file():
        raise UserError(f"--resume: {args.out} holds no training run to continue -- drop --resume "
                        "to start a new run there")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args)
    if args.verb == "base":
        from groundup.train.trainer import TrainConfig, pretrain
        cfg = TrainConfig(data=args.data, data_dir=args.data_dir, tokenizer=args.tokenizer,
                          vocab_size=args.vocab_size, depth=args.depth,
                          context_len=args.context_len, tie_embeddings=args.tie_embeddings,
                          wire_induction=args.wire_induction,
                          induction_match=args.induction_match, **_common(args))
        out = pretrain(cfg)
    else:
        from groundup.tokenizer import load_tokenizer
        from groundup.train.trainer import SFTConfig, sft
        if not Path(args.init).is_dir():
            raise UserError(f"--init {args.init} is not a model directory")
        if not Path(args.data).is_file():
            raise UserError(f"--data {args.data} is not a file -- give a conversations JSONL")
        tok = load_tokenizer(args.init)
        cfg = SFTConfig(init=args.init, data=str(args.data), sample_prompt_ids=_sample_prompt(args.data, tok),
                        **_common(args))
        # render every conversation first: a bad line is reported before anything is written
        examples = list(render_conversations(args.data, tok))
        if not examples:
            raise UserError(f"{args.data} has no conversations")
        out = sft(cfg, examples)
    if int(os.environ.get("RANK", 0)) == 0:
        print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m groundup.train VERB ...` (torchrun's entry): the same as `groundup train`."""
    from groundup.argtypes import Parser
    from groundup.errors import guard
    parser = Parser(prog="groundup train", description="pretrain or fine-tune a model")
    add_arguments(parser)
    return guard(lambda: run(parser.parse_args(argv)), signals=argv is None)
