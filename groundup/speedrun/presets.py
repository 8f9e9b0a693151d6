"""Speedrun presets: one dataclass, a few named sizes.

Every number that shapes a speedrun lives here, so a reader sees the whole recipe at once.
The model itself follows the `depth` dial (groundup/model/config.py derives width, heads and
the MLP from it); the rest is how much data and time each stage gets.

- smoke: the whole pipeline in about three minutes on 2 CPU cores. It proves that every
  stage works (the tests run it); its model is too small to solve much.
- cpu:   the default. A 2-core laptop, at most ~30 minutes for everything.
- gpu:   one GPU, the same code with a bigger model and more steps (also under torchrun).

The comments below give each choice's reason in a line; the measurements behind them ("docs/lab")
are in docs/lab/2026-12-03-measurements-behind-the-code.md and the run records it links.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Preset:
    name: str
    # tokenizer
    vocab_size: int = 4096
    corpus_files: int | None = None      # None: the whole embedded corpus; N: every k-th file
    corpus_skip_tables: bool = False     # leave out the generated tables (codec charmaps,
                                         # pydoc topics: 17% of the bytes; tokenizer/corpus.py):
                                         # the base model 0.044-0.057 bits/byte better on held-out
                                         # Python (two seeds); tasks not yet measured (docs/lab)
    tokenizer_split: str = "gpt4"        # pre-tokenization: "gpt4" (a word takes any one character
                                         # before it) or "gpt2" (at most a space): with gpt2 an
                                         # identifier is the same tokens after '(', '"', '_' or
                                         # '/' at the same compression, but its finer splits of
                                         # test ids and JSON fine-tuned worse (docs/lab)
    # pretraining
    depth: int = 4
    tie_embeddings: bool = True          # one matrix in and out: fewer parameters, faster steps,
                                         # and better bits/byte at these sizes (docs/lab)
    wire_induction: bool = True          # start from hand-written induction heads: the model can
                                         # copy from step 0 (groundup/train/circuits.py)
    induction_match: int = 1             # the second induction head matches the last 1 or 2 tokens
    optimizer: str = "adamw"             # pretraining and fine-tuning: adamw | muon (train/muon.py)
    pretrain_steps: int = 600
    pretrain_batch: int = 16
    pretrain_seq: int = 512
    # supervised fine-tuning on oracle trajectories
    sft_tasks: dict[int, int] = field(default_factory=lambda: {1: 2000, 2: 600, 3: 400})
    sft_steps: int = 800
    sft_batch: int = 8
    sft_seq: int = 2048
    sft_lr_scale: float = 1.0            # x the default fine-tuning rate (a third of pretraining's)
    sft_copy_share: float = 0.0          # copy drills mixed in, as a share of the conversations'
                                         # tokens (train/copy_data.py)
    sft_name_drills: int = 0             # short conversations ending in a wrong-name fix, in the
                                         # training rows (tasks/drills.py)
    sft_varied: float = 0.0              # share of training tasks in other layouts and words
                                         # (tasks/variants.py: flat, tests beside the code...)
    eval_varied: int = 0                 # tier-1 held-out tasks also run as held-out variants:
                                         # layouts and wording training never has
    oracle_diagnostics: bool = False     # the oracle reads the file's diagnostics before each edit
                                         # (agent/diagnostics.py: an unused name is usually the fix)
    oracle_test_lines: int = 0           # > 0: the oracle's test runs show only their first N lines
                                         # (`| head -n N`: the first traceback, not every one)
    # (a setting added later defaults to the behaviour before it: runs started earlier resume)
    # evaluation on held-out tasks
    eval_tasks: dict[int, int] = field(default_factory=lambda: {1: 100, 2: 30, 3: 30})
    max_agent_steps: int = 12
    eval_turn_tokens: int = 192          # most tokens per model turn: above the longest oracle
                                         # turn, so only a model caught in a repetition loop
                                         # stops there (and stops wasting the budget: docs/lab)
    eval_max_repeats: int = 3            # the same call with the same result 3 times stops a run:
                                         # such circles never ended in a solved task (docs/lab)
    eval_workers: int = 2
    eval_shared_engine: bool = False     # the workers share one continuous-batching engine of
                                         # eval_workers slots (always so on a GPU); off: a model
                                         # per worker on CPU
    # reinforcement learning on training tasks between sft and eval (groundup/rl/, docs/12);
    # 0 steps: the stage is skipped and the eval runs the fine-tuned model. Off in cpu and gpu:
    # on the cpu preset 12 steps (13-17 min on 2 loaded cores) cost 3-13 of 40 tier-1 solves
    # in three settings (docs/12)
    rl_steps: int = 0
    rl_group: int = 8                    # attempts per task, compared with each other
    rl_tasks_per_step: int = 2
    rl_temperature: float = 1.0
    rl_lr: float | None = None           # None: RL's default, a hundredth of pretraining's rate
    rl_kl_coef: float = 0.02             # the KL penalty towards the fine-tuned model
    # shared
    eval_every: int = 200
    save_every: int = 100
    seed: int = 0
    compile: bool = False
    dtype: str = "auto"

    def to_dict(self) -> dict:
        d = asdict(self)
        # JSON keys are strings; keep the tier maps readable in summary.json
        d["sft_tasks"] = {f"tier{k}": v for k, v in self.sft_tasks.items()}
        d["eval_tasks"] = {f"tier{k}": v for k, v in self.eval_tasks.items()}
        return d


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke", vocab_size=512, corpus_files=40, optimizer="muon",
        depth=2, pretrain_steps=40, pretrain_batch=8, pretrain_seq=256,
        sft_tasks={1: 24, 2: 8, 3: 8}, sft_steps=30, sft_batch=4, sft_seq=1536, sft_copy_share=0.1,
        sft_name_drills=20, sft_varied=0.25, oracle_diagnostics=True,   # every path, once
        eval_tasks={1: 2, 2: 1, 3: 1}, eval_varied=1, max_agent_steps=6, eval_workers=2,
        eval_shared_engine=True,
        rl_steps=1, rl_group=2, rl_tasks_per_step=1,     # one step: the stage's wiring, proved
        eval_every=20, save_every=20,
    ),
    # a 2-core laptop, float32, no torch.compile (each measured slower there than it gains); the
    # budget, stage by stage, is in docs/08 and its measurements in docs/lab
    "cpu": Preset(
        name="cpu", vocab_size=4096, depth=3, pretrain_steps=160, pretrain_batch=16,
        optimizer="muon",                 # same 160 steps: better bits/byte than AdamW (docs/04)
        induction_match=2,                # the second induction head matches two tokens: copies do
                                          # not jump between two `[chain` (more tasks solved with
                                          # the drills below: docs/lab)
        pretrain_seq=512, sft_steps=190, sft_batch=8,
        sft_tasks={1: 1500},              # tier 1 only: this model solves no tier 2 or 3 task either
                                          # way, and more tier-1 conversations solved more (docs/lab)
        sft_seq=2048, sft_lr_scale=3.0,   # the pretraining rate: a lower validation loss (docs/lab)
        sft_copy_share=0.1,               # copy drills keep copying general: more solved on the same
                                          # base and tasks, on two seeds (docs/lab)
        eval_tasks={1: 100, 2: 20, 3: 20}, max_agent_steps=12,
        eval_workers=8, eval_shared_engine=True,  # one engine, 8 slots: the same tasks solved,
                                          # 1.2-1.45x faster than a model per worker (docs/lab)
        oracle_diagnostics=False,         # measured on seed 0: 36 / 100 against 40, names 0 either
                                          # way (docs/lab/2026-12-03-speedrun-second-push.md)
        sft_name_drills=0,                # measured with the above: 32 / 100, names 0 (same file)
        sft_varied=0.0,                   # not yet measured end to end on this preset
        eval_every=50, save_every=25,
    ),
    # one GPU, minutes once the trajectories are recorded: a model 14x the cpu preset's, 30x its
    # pretraining tokens and 12x its fine-tuning tokens, the same recipe (docs/08; the runs that
    # shaped it: docs/lab)
    "gpu": Preset(
        name="gpu", vocab_size=8192, depth=8, pretrain_steps=600, pretrain_batch=64,
        optimizer="muon",                 # as the cpu preset; sft_lr_scale 3 gave 37 / 100 here
        pretrain_seq=1024, sft_tasks={1: 3000, 2: 1000, 3: 1000}, sft_steps=600,
        sft_batch=32, sft_seq=2048, eval_tasks={1: 100, 2: 20, 3: 20}, eval_workers=16,
        induction_match=2,                # as the cpu preset: depth 8 has heads to spare in layer 0
        sft_copy_share=0.1,               # pretraining reads its corpus ~15 times and copying falls
                                          # to 4%; the drills bring it back to 99% (docs/08)
        eval_every=200, save_every=200,
    ),
}
