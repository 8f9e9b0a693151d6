"""Speedrun presets: one dataclass, a few named sizes.

Every number that shapes a speedrun lives here, so a reader sees the whole recipe at once.
The model itself follows the `depth` dial (groundup/model/config.py derives width, heads and
the MLP from it); the rest is how much data and time each stage gets.

- smoke: the whole pipeline in about three minutes on 2 CPU cores. It proves that every
  stage works (the tests run it); its model is too small to solve much.
- cpu:   the default. A 2-core laptop, at most ~30 minutes for everything.
- gpu:   one GPU, the same code with a bigger model and more steps (also under torchrun).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Preset:
    name: str
    # tokenizer
    vocab_size: int = 4096
    corpus_files: int | None = None      # None: the whole embedded corpus; N: every k-th file
    tokenizer_split: str = "gpt4"        # pre-tokenization: "gpt4" (a word takes any one character
                                         # before it) or "gpt2" (at most a space): with gpt2 an
                                         # identifier is the same tokens after '(', '"', '_' or
                                         # '/' (same compression here: 3.48 vs 3.46 bytes per
                                         # token), but its finer splits of test ids and JSON
                                         # fine-tuned worse (docs/08)
    # pretraining
    depth: int = 4
    tie_embeddings: bool = True          # one matrix in and out: depth 3 has 27% fewer parameters
                                         # and trains 16% faster (-0.17 bits/byte: docs/08)
    wire_induction: bool = True          # start from hand-written induction heads: the model can
                                         # copy from step 0 (groundup/train/circuits.py, docs/08)
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
    # evaluation on held-out tasks
    eval_tasks: dict[int, int] = field(default_factory=lambda: {1: 100, 2: 30, 3: 30})
    max_agent_steps: int = 12
    eval_turn_tokens: int = 192          # most tokens per model turn: a model caught in a
                                         # repetition loop stops there. The longest of 9,703
                                         # oracle turns is 131 tokens; at 384, runaway turns were
                                         # 71% of all generated tokens (fifteenth run, docs/08)
    eval_max_repeats: int = 3            # the same call with the same result 3 times stops a run:
                                         # a third of the fifteenth run's steps were such circles,
                                         # none in a run that solved its task (docs/08)
    eval_workers: int = 2
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
        eval_tasks={1: 2, 2: 1, 3: 1}, max_agent_steps=6, eval_workers=2,
        eval_every=20, save_every=20,
    ),
    # measured on a 2-core AVX2 CPU (fp32: bf16 is ~10x slower there, and 1.5x slower on a CPU
    # with AVX512-BF16 but no AMX; torch.compile gained <10% for 45-90 s of compiling): depth 3
    # trains at ~4.5k tokens/s, depth 4 at ~2.8k. The budget there: ~5 min pretraining, ~3 min
    # trajectories, ~9-11 min SFT, ~4 min evaluation; on a 2-core AVX-512 Xeon the whole
    # pipeline takes 11-12 min (docs/08).
    "cpu": Preset(
        name="cpu", vocab_size=4096, depth=3, pretrain_steps=160, pretrain_batch=16,
        optimizer="muon",                 # same 160 steps: 1.42 bits/byte vs 1.63 with AdamW (docs/08)
        induction_match=2,                # the second induction head matches two tokens: copies do
                                          # not jump between two `[chain` -- with the drills below,
                                          # 37 vs 29 / 100 on seed 0 (docs/08, forty-third run)
        pretrain_seq=512, sft_steps=190, sft_batch=8,
        sft_tasks={1: 1500},              # tier 1 only: this model solves no tier 2 or 3 task either
                                          # way, and 1,500 tier-1 conversations gave 12 / 100
                                          # against 8 with 1,000 + 250 + 250 (docs/08)
        sft_seq=2048, sft_lr_scale=3.0,   # the pretraining rate: val loss 0.40 vs 0.57 (docs/08)
        sft_copy_share=0.1,               # copy drills keep copying general: 29 vs 24 / 100 (seed 0),
                                          # 25 vs 13 (seed 1) on the same base and tasks (docs/08)
        eval_tasks={1: 100, 2: 20, 3: 20}, max_agent_steps=12, eval_workers=2,
        eval_every=50, save_every=25,
    ),
    # one GPU, about 7 minutes once the trajectories are recorded (the oracle's 5,000
    # trajectories take ~2 min on 16 cores, ~6 on 2): a model 14x the cpu preset's, 30x its
    # pretraining tokens and 12x its fine-tuning tokens. Measured on an H200 (forty-ninth run,
    # docs/08): pretraining 100 s, fine-tuning 89 s, evaluation 188 s (16 tasks at a time
    # through one batched engine); 64 / 100 tier 1 (65 on seed 1), 9 / 20 tier 2, 1 / 20 tier 3
    # -- with the cpu preset's two-token induction head and copy drills (without them,
    # twenty-third run on an H100: 44 / 100, 5 / 20, 1 / 20)
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
