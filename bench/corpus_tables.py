"""Does the cpu preset's base model get better on Python without the stdlib's generated tables?

71 of the stdlib corpus's 734 files -- the charmap codecs in encodings/ (a 256-entry
`decoding_table` of escapes and digit runs each) and pydoc_data/topics.py (the language
reference as one string) -- are ~17% of its bytes and teach the model digit runs. This trains
the cpu preset's base model twice, tokenizer and all, with and without them
(`Preset.corpus_skip_tables`), on the same steps and seed, and measures both on the same
held-out Python files (a seeded 4% of the other files, in neither training set): bits per byte,
which does not depend on the tokenizer. Both runs take the same number of steps of the same
size, so the same step count is also the same wall time.

    python bench/corpus_tables.py --out /tmp/corpus_tables [--steps 160] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch


def heldout_bpb(model_dir: Path, files: list[Path], seq: int = 512) -> float:
    """Bits per byte of the model on the files: each file from <bos>, windows of `seq` tokens."""
    from groundup.model import load_model
    from groundup.tokenizer import load_tokenizer
    tok = load_tokenizer(model_dir)
    model = load_model(model_dir).float().eval()
    nats, n_bytes = 0.0, 0
    with torch.no_grad():
        for f in files:
            text = f.read_text(encoding="utf-8", errors="replace")
            ids = torch.tensor([tok.bos_id] + list(tok.encode(text)))
            n_bytes += len(text.encode("utf-8"))
            for s in range(0, len(ids) - 1, seq):
                x, y = ids[s:s + seq][None], ids[s + 1:s + seq + 1][None]
                nats += float(model(x[:, :y.shape[1]], targets=y))
    return nats / math.log(2) / n_bytes


def main() -> None:
    from groundup.speedrun.pipeline import corpus_files
    from groundup.speedrun.presets import PRESETS
    from groundup.tokenizer import GPT4_PATTERN, train_tokenizer
    from groundup.tokenizer.corpus import is_generated_table
    from groundup.train.trainer import TrainConfig, pretrain
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=None, help="pretraining steps (default: the preset's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None, help="model and data-order seed (default: the preset's)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = PRESETS["cpu"]
    steps = a.steps or p.pretrain_steps
    out = Path(a.out)
    allf = corpus_files(p)
    rest = [f for f in allf if not is_generated_table(f)]
    rng = np.random.default_rng(1234)
    held = sorted(rest[i] for i in rng.permutation(len(rest))[: len(rest) // 25])
    held_set = set(held)
    results = {}
    for name, skip in (("with_tables", False), ("without_tables", True)):
        files = [f for f in allf if f not in held_set and not (skip and is_generated_table(f))]
        run = out / name
        t0 = time.monotonic()
        if not (run / "tokenizer" / "tokenizer.json").exists():
            train_tokenizer(files, vocab_size=p.vocab_size, pattern=GPT4_PATTERN, progress=False).save(run / "tokenizer")
        base = pretrain(TrainConfig(
            out=str(run / "base"), data=[str(f) for f in files], tokenizer=str(run / "tokenizer"),
            data_dir=str(run / "data"), depth=p.depth, steps=steps, context_len=max(p.pretrain_seq, p.sft_seq),
            batch_size=p.pretrain_batch, seq_len=p.pretrain_seq, eval_every=0, save_every=steps,
            seed=p.seed if a.seed is None else a.seed, tie_embeddings=p.tie_embeddings, wire_induction=p.wire_induction,
            induction_match=p.induction_match, optimizer=p.optimizer, quiet=True))
        bpb = heldout_bpb(base, held)
        results[name] = {"files": len(files), "bytes": sum(f.stat().st_size for f in files),
                         "heldout_bpb": round(bpb, 4), "wall_s": round(time.monotonic() - t0, 1)}
        print(name, json.dumps(results[name]), flush=True)
    print(f"held out: {len(held)} files, {sum(f.stat().st_size for f in held):,} bytes; steps {steps}; "
          f"bpb without / with tables: {results['without_tables']['heldout_bpb'] / results['with_tables']['heldout_bpb']:.3f}")
    (out / "results.json").write_text(json.dumps({"steps": steps, "seed": a.seed, "heldout_files": [str(f) for f in held],
                                                  **results}, indent=1))


if __name__ == "__main__":
    main()
