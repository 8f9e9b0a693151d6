"""How the engine multiplies by its weights on a CPU: layouts and kernels for decode.

A decode step multiplies one row (batch 1) or a few rows (batched and continuous-batching
decode) by every weight matrix, and which kernel does that fastest depends on the CPU and on
the matrix (bench/engine.py; docs/03-engine.md; the timings behind each choice:
docs/lab/2026-12-03-measurements-behind-the-code.md):

- One row times a *wide* matrix (more outputs than inputs: q/k/v, gate/up, the output head)
  streams much faster column-major (cpu_decode_layout).
- A few rows: oneDNN's kernel on a weight reordered once into its blocked layout ("packed")
  wins on some CPUs and shapes, the general matmul on a column-major matrix on others. Neither
  wins everywhere, so the engine *times both* once per weight shape when it loads a model (a
  few ms each) and keeps the faster -- as FFTW plans a transform or cuDNN picks a convolution
  algorithm.
- One row through a weight too big for the cache: packed streamed it faster on an AVX2 EPYC,
  plain on an AVX-512 Xeon (and on that Xeon with torch forced to AVX2: the memory system
  decides, not the vector unit), so this is timed too -- one row through every weight of the
  shape in turn, so that the timing streams them from memory as a decode step does.

All the variants give the plain product's values to float rounding; the parameters and the
state_dict never change (the extra layouts are copies held beside them).
"""

from __future__ import annotations

import time
from collections import Counter

import torch
import torch.nn.functional as F

from groundup.model.llama import is_compiling


def cpu_decode_layout(model: torch.nn.Module) -> None:
    """Store every *wide* weight (more outputs than inputs: q/k/v, gate/up, the output head)
    column-major -- same values, same shape, transposed strides. A decode step multiplies one
    row vector by each weight; on CPU that product streams a column-major wide matrix much
    faster (bench/engine.py), while the narrow ones (o_proj, down) gain nothing from it. A tied head
    moves its embedding table too (a lookup reads one strided row per token: nothing)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and m.out_features > m.in_features:
            m.weight.data = m.weight.data.t().contiguous().t()


def _best_times(a, b, rounds: int = 7) -> tuple[float, float]:
    """seconds of fn a and of fn b: the best of `rounds` alternating runs of each, so a burst
    of noise from a neighbour on a shared machine hits both"""
    a(), b()                                # warm: first-touch allocation, kernel selection
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, fn in enumerate((a, b)):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best[0], best[1]


def _packed(w: torch.Tensor, rows: int) -> torch.Tensor:
    """w reordered into oneDNN's blocked layout for products of ~`rows` rows"""
    return torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), rows)


def _colmajor(w: torch.Tensor) -> torch.Tensor:
    """w itself if it is column-major already (cpu_decode_layout's wide weights), else a copy that is"""
    return w if w.t().is_contiguous() else w.t().contiguous().t()


class PackedLinear(torch.nn.Linear):
    """A Linear that keeps, beside its weight, a copy laid out for products of several rows
    (batched decode, prefill): oneDNN's blocked layout ("packed") or a plain column-major
    matrix for the general matmul, whichever `choose_kernel` timed faster for this weight's
    shape. One row goes through the weight itself (cpu_decode_layout), or through the packed
    copy when the weight is too big for the cache and `choose_one_row_kernels` timed the
    packed copy faster for it. Training is untouched: with
    gradients on, the plain product runs (the oneDNN op has no backward), and a weight changed
    in place is laid out again before its next use."""

    ROWS_HINT = 16                  # rows to tune for (oneDNN's reorder asks for a typical count too)
    # weights of at least this many elements (2 MB in float32: more than a core's L2) may use the
    # packed copy for one row too, if timed faster (choose_one_row_kernels)
    ONE_ROW_MIN = 1 << 19
    kernels: dict[tuple, str] = {}  # (out, in, bias?) -> "packed" | "plain": timed once per process
    one_row_kernels: dict[tuple, str] = {}     # the same, for one row through a big weight
    PACKED_MARGIN = 0.9             # packed must take < 90% of plain's time to be chosen

    def pack(self) -> None:
        """lay the weight out for the kernel its shape uses (timed on the first weight of a shape)"""
        w = self.weight.detach()
        key = (*w.shape, self.bias is not None)
        if key not in self.kernels:
            self.kernels[key] = self.choose_kernel(_packed(w, self.ROWS_HINT), _colmajor(w))
        self.kernel = self.kernels[key]
        # one row: plain, unless this shape was timed faster packed (a big weight not timed yet
        # keeps a packed copy until choose_one_row_kernels has timed it)
        self.one_row = self.one_row_kernels.get(key, "plain")
        big_row = w.numel() >= self.ONE_ROW_MIN and self.one_row_kernels.get(key) != "plain"
        self.packed = _packed(w, self.ROWS_HINT) if self.kernel == "packed" or big_row else None
        self.colmajor = _colmajor(w) if self.kernel == "plain" else None
        self.packed_version = self.weight._version      # an in-place update (an optimizer step) bumps it
        # the transposed views rows() multiplies by (views: they see an in-place update of the weight)
        self.weight_t = self.weight.detach().t()
        self.colmajor_t = None if self.colmajor is None else self.colmajor.t()

    def choose_kernel(self, packed: torch.Tensor, colmajor: torch.Tensor) -> str:
        """time ROWS_HINT rows through both layouts; "packed" only if clearly faster. The timing
        runs on a weight hot in cache, a real step streams it: near-ties measured here went
        either way there, while where packed wins it wins by a wide margin."""
        x = torch.randn(self.ROWS_HINT, self.in_features, dtype=colmajor.dtype)
        b = None if self.bias is None else self.bias.detach()
        with torch.inference_mode():
            t_plain, t_packed = _best_times(
                lambda: F.linear(x, colmajor, b),
                lambda: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], ""))
        return "packed" if t_packed < self.PACKED_MARGIN * t_plain else "plain"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one_row = x.numel() == x.shape[-1]
        if ((one_row and self.one_row == "plain") or is_compiling()
                or (torch.is_grad_enabled() and self.weight.requires_grad)):
            # one row through a small weight; torch.compile tracing; or training
            return F.linear(x, self.weight, self.bias)
        if self.weight._version != self.packed_version:  # the weight changed since it was laid out
            self.pack()
        if self.kernel == "plain" and not one_row:
            return F.linear(x, self.colmajor, self.bias)
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.packed, self.bias,
                                               "none", [], "")
        return y.view(*x.shape[:-1], y.shape[-1])


    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in) -> (B, out) without gradients: forward's kernels, minus its generality (no
        leading axes to flatten, no training or tracing case) -- one dispatched op where forward's
        F.linear is six (linear, t, transpose, as_strided, matmul, mm). The lean decode step's entry."""
        if self.weight._version != self.packed_version:
            self.pack()
        one_row = x.shape[0] == 1
        if one_row and self.one_row == "plain" or not one_row and self.kernel == "plain":
            w_t = self.weight_t if one_row else self.colmajor_t             # (in, out) views
            return torch.mm(x, w_t) if self.bias is None else torch.addmm(self.bias, x, w_t)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def cpu_pack_linears(model: torch.nn.Module) -> None:
    """Turn every float32 Linear of `model` into a PackedLinear (in place: same parameters,
    same state_dict); nothing changes where this torch has no oneDNN."""
    try:
        torch.ops.mkldnn._reorder_linear_weight                             # noqa: B018 (probes)
        torch.ops.mkldnn._linear_pointwise                                  # noqa: B018
    except (AttributeError, RuntimeError):
        return
    if not torch.backends.mkldnn.is_available():
        return
    for m in model.modules():
        if type(m) is torch.nn.Linear and m.weight.dtype == torch.float32:   # (once: not PackedLinear)
            m.__class__ = PackedLinear
            m.pack()
    choose_one_row_kernels([m for m in model.modules() if isinstance(m, PackedLinear)])


def _time_one_row(group: list[PackedLinear]) -> str:
    """one row through every weight of `group` (one shape) in turn, plain against packed,
    alternating: "packed" only if it takes under PACKED_MARGIN of plain's time. Through all of
    them, not one: one weight timed repeatedly sits in the cache, a decode step streams it."""
    x = torch.randn(1, group[0].in_features, dtype=group[0].weight.dtype)
    with torch.inference_mode():
        t_plain, t_packed = _best_times(
            lambda: [F.linear(x, m.weight, m.bias) for m in group],
            lambda: [torch.ops.mkldnn._linear_pointwise(x, m.packed, m.bias, "none", [], "") for m in group],
            rounds=3)
    return "packed" if t_packed < PackedLinear.PACKED_MARGIN * t_plain else "plain"


def choose_one_row_kernels(linears: list[PackedLinear]) -> None:
    """time one row through each big weight shape not timed yet in this process (~0.1-0.5 s for
    a 100M model); a shape that goes plain for one row and for several drops its packed copy"""
    groups: dict[tuple, list[PackedLinear]] = {}
    for m in linears:
        key = (*m.weight.shape, m.bias is not None)
        if m.weight.numel() >= PackedLinear.ONE_ROW_MIN and key not in PackedLinear.one_row_kernels:
            groups.setdefault(key, []).append(m)
    for key, group in groups.items():
        PackedLinear.one_row_kernels[key] = _time_one_row(group)
    for m in linears:
        key = (*m.weight.shape, m.bias is not None)
        m.one_row = PackedLinear.one_row_kernels.get(key, "plain")
        if m.one_row == "plain" and m.kernel == "plain":
            m.packed = None


def one_row_kernels(model: torch.nn.Module) -> dict[str, int]:
    """how many linears use each kernel for one row, e.g. {"plain": 48, "packed": 1}"""
    return _count_kernels(model, "one_row")


def multi_row_kernels(model: torch.nn.Module) -> dict[str, int]:
    """how many linears use each kernel for several rows, e.g. {"plain": 19}"""
    return _count_kernels(model, "kernel")


def _count_kernels(model: torch.nn.Module, attr: str) -> dict[str, int]:
    return dict(Counter(getattr(m, attr) for m in model.modules() if isinstance(m, PackedLinear)))
