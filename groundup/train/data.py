"""Training data on disk: token shards for pretraining, packed rows for fine-tuning, one loader.

Design choices:
- A corpus becomes two flat token files, `train.bin` and `val.bin` (numpy uint16 when the
  vocabulary fits, else uint32), read back with `np.memmap`, so a corpus larger than memory
  costs nothing to open. Each document starts with BOS, which both separates documents and
  tells the model "a new file starts here". `*.idx.npy` holds every document's start offset
  (the index), `meta.json` the dtype, counts and a fingerprint of the inputs.
- The split is by *document* (seeded shuffle), never by position: a validation file is one the
  model has not seen any part of, so validation loss measures generalisation, not recall.
- `token_bytes.npy` maps every token id to the number of UTF-8 bytes it stands for (0 for
  special tokens). Bits per byte = sum(loss) / ln 2 / sum(bytes of the targets): a number that
  does not depend on the tokenizer, so runs with different vocabularies compare.
- `meta.json` is written last and atomically: a data directory with a matching `meta.json` is
  complete and is reused (the speedrun re-runs `prepare_data` for free); anything else is rebuilt.
- Fine-tuning examples are (ids, mask) pairs, already rendered by the chat layer (train sits below
  chat, so it never sees a conversation). They are packed whole into rows of T+1 tokens
  (first-fit over a seeded shuffle), padded with masked tokens; the loss sees only mask=1 targets.
- One loader for both: a dataset is "N items, each a (T+1)-token row". Each epoch visits the
  items in a permutation drawn from (seed, epoch); step s takes the next G = global batch rows.
  Row j of a global batch goes to micro-step j // (B*world), rank (j // B) % world -- so the
  same global batch is the same set of rows whatever the number of processes or micro-steps.
  The loader's whole state is (epoch, cursor): two ints in the checkpoint make resume exact.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from groundup.errors import UserError
from groundup.io import atomic_write_json
from groundup.tokenizer.corpus import expand_paths

IGNORE = -1  # target id that carries no loss (cross_entropy ignore_index)
DATA_VERSION = 1


# ----------------------------------------------------------------------------- corpus -> shards

def _fingerprint(files: list[Path], tokenizer, val_fraction: float, seed: int) -> str:
    """Identity of (inputs, tokenizer, split): sizes and mtimes stand in for content."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(json.dumps([tokenizer_fingerprint(tokenizer), val_fraction, seed, DATA_VERSION]).encode())
    return h.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """A short id of a tokenizer: the ids it gives a probe text that exercises many merges."""
    probe = "def __init__(self, value):\n    return self.value + 1  # é ✓\n\tif x is None:\n"
    ids = tokenizer.encode(probe)
    return hashlib.sha256(json.dumps([tokenizer.vocab_size, list(map(int, ids))]).encode()).hexdigest()[:16]


def token_byte_lengths(tokenizer) -> np.ndarray:
    """(V,) int32: UTF-8 bytes each token id stands for; 0 for special tokens."""
    n = tokenizer.vocab_size
    out = np.zeros(n, dtype=np.int32)
    special = set(getattr(tokenizer, "special_tokens", {}).values()) if isinstance(
        getattr(tokenizer, "special_tokens", None), dict) else set()
    for i in range(n):
        if i in special:
            continue
        if hasattr(tokenizer, "decode_bytes"):
            b = tokenizer.decode_bytes([i])
        else:  # fall back to text: exact except for tokens that end inside a UTF-8 character
            b = tokenizer.decode([i]).encode("utf-8")
        out[i] = len(b)
    for sid in (getattr(tokenizer, "bos_id", None), getattr(tokenizer, "eos_id", None)):
        if sid is not None and 0 <= sid < n:
            out[sid] = 0
    return out


def _progress(done: int, total: int, label: str, t0: float) -> None:
    import time
    if not sys.stderr.isatty() and done not in (total,):
        return
    el = time.time() - t0
    rate = done / el if el > 0 else 0.0
    end = "\n" if done == total else ""
    print(f"\r{label}: {done}/{total} files ({rate:.0f}/s)", end=end, file=sys.stderr, flush=True)


def prepare_data(paths: Sequence[str | os.PathLike], tokenizer, out_dir: str | os.PathLike,
                 val_fraction: float = 0.02, seed: int = 0, progress: bool = True) -> Path:
    """Tokenize text files/directories into `out_dir` (train/val shards). Reuses a complete one."""
    import time

    out = Path(out_dir)
    files = expand_paths(paths)
    if not files:
        raise UserError(f"no text files found in {', '.join(map(str, paths)) or '(nothing)'} "
                        "-- give files or directories containing text")
    fp = _fingerprint(files, tokenizer, val_fraction, seed)
    meta_path = out / "meta.json"
    if meta_path.exists():
        try:
            if json.loads(meta_path.read_text())["fingerprint"] == fp:
                return out
        except (ValueError, KeyError):
            pass  # unreadable meta: rebuild
    out.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)  # the directory is incomplete until meta.json is back

    # split by document, before tokenizing (a seeded shuffle of file indices)
    order = np.random.default_rng(seed).permutation(len(files))
    n_val = int(round(len(files) * val_fraction))
    if len(files) >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), len(files) - 1)
    is_val = np.zeros(len(files), dtype=bool)
    is_val[order[:n_val]] = True

    dtype = np.uint16 if tokenizer.vocab_size <= 65536 else np.uint32
    bos = tokenizer.bos_id
    writers = {s: open(out / f".{s}.bin.tmp", "wb") for s in ("train", "val")}
    starts: dict[str, list[int]] = {"train": [], "val": []}
    counts = {"train": 0, "val": 0}
    nbytes = {"train": 0, "val": 0}
    skipped = 0
    t0 = time.time()
    batch: list[tuple[int, str]] = []

    def flush() -> None:
        texts = [t for _, t in batch]
        enc = tokenizer.encode_batch(texts) if hasattr(tokenizer, "encode_batch") else [
            tokenizer.encode(t) for t in texts]
        for (i, text), ids in zip(batch, enc):
            split = "val" if is_val[i] else "train"
            arr = np.asarray([bos, *ids], dtype=dtype)
            starts[split].append(counts[split])
            writers[split].write(arr.tobytes())
            counts[split] += len(arr)
            nbytes[split] += len(text.encode("utf-8"))
        batch.clear()

    try:
        for i, f in enumerate(files):
            try:  # invalid bytes replaced, as the tokenizer reads its corpus
                text = f.read_bytes().decode("utf-8", errors="replace")
            except OSError:
                skipped += 1
                continue
            if text.strip():
                batch.append((i, text))
            if len(batch) >= 64:
                flush()
            if progress and (i % 50 == 0 or i == len(files) - 1):
                _progress(i + 1, len(files), "tokenizing", t0)
        flush()
    finally:
        for w in writers.values():
            w.close()
    if counts["train"] == 0:
        raise UserError(f"the corpus in {', '.join(map(str, paths))} has no text to train on "
                        "(empty or undecodable files) -- give UTF-8 text files")
    for s in ("train", "val"):
        os.replace(out / f".{s}.bin.tmp", out / f"{s}.bin")
        np.save(out / f"{s}.idx.npy", np.asarray(starts[s], dtype=np.int64))
    np.save(out / "token_bytes.npy", token_byte_lengths(tokenizer))
    atomic_write_json(meta_path, {
        "version": DATA_VERSION, "fingerprint": fp, "dtype": np.dtype(dtype).name,
        "vocab_size": tokenizer.vocab_size, "bos_id": bos, "files": len(files), "skipped": skipped,
        "docs": {s: len(starts[s]) for s in starts}, "tokens": counts, "bytes": nbytes,
        "seed": seed, "val_fraction": val_fraction, "kind": "pretrain",
    })
    return out


def read_meta(data_dir: str | os.PathLike) -> dict:
    p = Path(data_dir) / "meta.json"
    if not p.exists():
        raise UserError(f"{data_dir} is not a prepared data directory (no meta.json) -- "
                        "run prepare_data / `groundup train base --data ...` first")
    return json.loads(p.read_text())


# ----------------------------------------------------------------------------- datasets

class TokenWindows:
    """Non-overlapping (T+1)-token windows of a flat token file: item i = tokens[i*T : i*T+T+1]."""

    def __init__(self, data_dir: str | os.PathLike, split: str, seq_len: int):
        meta = read_meta(data_dir)
        self.tokens = np.memmap(Path(data_dir) / f"{split}.bin", dtype=meta["dtype"], mode="r")
        self.seq_len = seq_len
        self.n_items = max(0, (len(self.tokens) - 1) // seq_len)

    def rows(self, items: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.seq_len
        buf = np.stack([np.asarray(self.tokens[i * T: i * T + T + 1], dtype=np.int64) for i in items])
        buf = torch.from_numpy(buf)                          # (B, T+1)
        return buf[:, :-1].contiguous(), buf[:, 1:].contiguous()  # x (B, T), y (B, T)


class PackedRows:
    """Fine-tuning rows packed by `prepare_sft_data`: y is IGNORE where the mask is 0."""

    def __init__(self, data_dir: str | os.PathLike, split: str, seq_len: int):
        meta = read_meta(data_dir)
        if meta.get("kind") != "sft":
            raise UserError(f"{data_dir} holds pretraining shards, not fine-tuning data")
        if meta["seq_len"] != seq_len:
            raise UserError(f"{data_dir} was packed for seq_len {meta['seq_len']}, not {seq_len} "
                            "-- re-run prepare_sft_data with this sequence length")
        self.ids = np.load(Path(data_dir) / f"{split}.ids.npy", mmap_mode="r")    # (N, T+1)
        self.mask = np.load(Path(data_dir) / f"{split}.mask.npy", mmap_mode="r")  # (N, T+1)
        self.seq_len = seq_len
        self.n_items = len(self.ids)

    def rows(self, items: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.from_numpy(np.asarray(self.ids[items], dtype=np.int64))    # (B, T+1)
        mask = torch.from_numpy(np.asarray(self.mask[items], dtype=np.bool_))  # (B, T+1)
        y = ids[:, 1:].masked_fill(~mask[:, 1:], IGNORE)    # a target is learned iff it is masked in
        return ids[:, :-1].contiguous(), y.contiguous()


def open_dataset(data_dir: str | os.PathLike, split: str, seq_len: int):
    kind = read_meta(data_dir).get("kind", "pretrain")
    return PackedRows(data_dir, split, seq_len) if kind == "sft" else TokenWindows(data_dir, split, seq_len)


# ----------------------------------------------------------------------------- SFT packing

def pack_examples(examples: Iterable[tuple[Sequence[int], Sequence[int]]], seq_len: int, pad_id: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """First-fit pack whole (ids, mask) examples into rows of T+1. Returns ids, mask, n_truncated."""
    L = seq_len + 1
    exs = []
    truncated = 0
    for ids, mask in examples:
        if len(ids) != len(mask):
            raise UserError(f"an example has {len(ids)} ids but {len(mask)} mask values")
        if len(ids) > L:
            truncated += 1
            ids, mask = ids[:L], mask[:L]
        if sum(mask[1:]) > 0:  # an example with nothing to learn would only dilute the batch
            exs.append((np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.uint8)))
    if not exs:
        raise UserError("no fine-tuning example has any assistant token to learn from")
    order = np.random.default_rng(seed).permutation(len(exs))
    rows: list[list[int]] = []   # example indices per row
    free: list[int] = []         # free slots per row
    for k in order:
        n = len(exs[k][0])
        for r, f in enumerate(free):
            if f >= n:
                rows[r].append(k)
                free[r] -= n
                break
        else:
            rows.append([k])
            free.append(L - n)
    ids = np.full((len(rows), L), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), L), dtype=np.uint8)
    for r, ks in enumerate(rows):
        pos = 0
        for k in ks:
            e_ids, e_mask = exs[k]
            ids[r, pos:pos + len(e_ids)] = e_ids
            mask[r, pos:pos + len(e_ids)] = e_mask
            pos += len(e_ids)
    return ids, mask, truncated


def prepare_sft_data(examples: Iterable[tuple[Sequence[int], Sequence[int]]], out_dir: str | os.PathLike,
                     seq_len: int, pad_id: int, val_fraction: float = 0.05, seed: int = 0,
                     vocab_size: int | None = None, token_bytes: np.ndarray | None = None,
                     train_extra: Sequence[tuple[Sequence[int], Sequence[int]]] = ()) -> Path:
    """Pack pre-rendered (ids, mask) examples into `out_dir` (train/val rows + meta.json).
    `train_extra`: examples for the training rows only (copy drills: validation measures the
    conversations)."""
    out = Path(out_dir)
    exs = list(examples)
    if not exs:
        raise UserError("the fine-tuning data has no examples")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(exs))
    n_val = int(round(len(exs) * val_fraction))
    if len(exs) >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), len(exs) - 1)
    val = [exs[i] for i in perm[:n_val]]
    train = [exs[i] for i in perm[n_val:]] + list(train_extra)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    info = {}
    for split, part in (("train", train), ("val", val)):
        if part:
            ids, mask, trunc = pack_examples(part, seq_len, pad_id, seed)
        else:
            ids, mask, trunc = np.zeros((0, seq_len + 1), np.int64), np.zeros((0, seq_len + 1), np.uint8), 0
        dtype = np.uint16 if (vocab_size or int(ids.max(initial=0)) + 1) <= 65536 else np.uint32
        np.save(out / f"{split}.ids.npy", ids.astype(dtype))
        np.save(out / f"{split}.mask.npy", mask)
        info[split] = {"examples": len(part), "rows": len(ids), "truncated": trunc,
                       **({"extra_examples": len(train_extra)} if split == "train" else {}),
                       "loss_tokens": int(mask[:, 1:].sum()), "tokens": int(sum(len(e[0]) for e in part))}
    if token_bytes is not None:
        np.save(out / "token_bytes.npy", token_bytes)
    atomic_write_json(out / "meta.json", {"version": DATA_VERSION, "kind": "sft", "seq_len": seq_len,
                                          "pad_id": pad_id, "seed": seed, **info})
    return out


# ----------------------------------------------------------------------------- the loader

@dataclass
class LoaderState:
    epoch: int = 0
    cursor: int = 0   # rows of this epoch's permutation already consumed


class Loader:
    """Deterministic global batches of rows, split across micro-steps and ranks.

    `next_step()` returns this rank's micro-batches for one optimizer step:
    a list of `accum` (x, y) pairs, each (B, T).
    """

    def __init__(self, dataset, micro_batch: int, accum: int, seed: int, rank: int = 0, world: int = 1):
        if dataset.n_items < micro_batch * accum * world:
            raise UserError(f"the training data has {dataset.n_items} rows of {dataset.seq_len + 1} "
                            f"tokens, fewer than one global batch of {micro_batch * accum * world} "
                            "-- use more data, a smaller --batch-size or a shorter --seq-len")
        self.ds, self.B, self.accum, self.seed = dataset, micro_batch, accum, seed
        self.rank, self.world = rank, world
        self.state = LoaderState()
        self._perm_epoch, self._perm = -1, np.zeros(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.ds.n_items)
            self._perm_epoch = epoch
        return self._perm

    def _take(self, n: int) -> np.ndarray:
        """The next n row indices of the global order (crossing into the next epoch if needed)."""
        got = []
        while n > 0:
            perm = self._permutation(self.state.epoch)
            chunk = perm[self.state.cursor: self.state.cursor + n]
            got.append(chunk)
            n -= len(chunk)
            self.state.cursor += len(chunk)
            if self.state.cursor >= len(perm):
                self.state = LoaderState(self.state.epoch + 1, 0)
        return np.concatenate(got)

    def next_step(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        B, W = self.B, self.world
        rows = self._take(B * W * self.accum)  # the global batch, same whatever (accum, world)
        out = []
        for m in range(self.accum):
            base = (m * W + self.rank) * B
            out.append(self.ds.rows(rows[base: base + B]))
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.state.epoch, "cursor": self.state.cursor}

    def load_state_dict(self, d: dict) -> None:
        self.state = LoaderState(int(d["epoch"]), int(d["cursor"]))


def eval_batches(dataset, batch: int, max_rows: int, rank: int = 0, world: int = 1
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first `max_rows` rows of a split, in order, this rank's share: the same every eval."""
    n = min(dataset.n_items, max_rows)
    mine = np.arange(rank, n, world)
    for i in range(0, len(mine), batch):
        yield dataset.rows(mine[i: i + batch])
