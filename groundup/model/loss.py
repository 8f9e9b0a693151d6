"""The training loss with the output head folded in: cross-entropy of `h @ W^T` without ever
holding the (N, V) logits.

The plain way to train a language model ends with

    logits = h @ W^T                      (N, V): N positions, V vocabulary entries
    loss   = cross_entropy(logits, targets)

and autograd then walks back through the same (N, V) array: log-softmax forward, the
gradient of the logits, log-softmax backward, then two matrix products. For a small model the
logits are the largest activation by far (the cpu bench's step: 2048 positions x 4096 ids x 4
bytes = 32 MB, against 2 MB for a layer's activations) and every pass over them is a trip to
main memory -- the head and loss took ~30% of a CPU training step (bench/train.py).

Cross-entropy has a closed-form gradient with respect to its logits:

    d loss / d logits[i] = softmax(logits[i]) - onehot(target[i])

so the whole backward of the head can happen in the forward pass, a chunk of rows at a time,
while that chunk's logits are still in cache:

    G        = softmax(h[c] @ W^T) - onehot(targets[c])     (rows, V), made in place
    grad_h[c] = G @ W                                        (rows, C)
    grad_W  += G^T @ h[c]                                    (V, C)

The same three matrix products as autograd's, minus the memory passes; backward() only scales
the two stored gradients by the incoming one. (The idea is Liger Kernel's fused linear
cross-entropy and Apple's "cut cross-entropy", written here in plain torch ops.)

Targets below 0 carry no loss (the trainer's IGNORE is -1): their rows are dropped before the
head, so fine-tuning, where ~12-25% of positions count, computes the head for those only.
The fused loop is the default on CPU, where it was measured; on a GPU the plain head and loss
run (on the selected rows), as measured there before (see `linear_cross_entropy`).
Under autocast the matrix products run in the autocast dtype and the softmax in float32, as
autocast would run the plain version.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def chunk_rows(vocab: int) -> int:
    """rows per chunk: ~4 MB of float32 logits (256 rows at V=4096), within 64..1024. Fewer
    rows make thin, slow matrix products; more hold more logits for no gain (the timings:
    docs/lab/2026-12-03-measurements-behind-the-code.md)."""
    return max(64, min(1024, (1 << 20) // vocab))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """h (N, C), weight (V, C), targets (N,) all >= 0 -> summed cross-entropy (float32 scalar)"""
        dev = h.device.type
        mm = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
        with torch.autocast(dev, enabled=False):
            w = weight.to(mm)                                            # (V, C)
            grad_h = torch.empty_like(h)                                 # (N, C)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device)
            loss = torch.zeros((), dtype=torch.float32, device=h.device)
            rows = chunk_rows(weight.shape[0])
            for s in range(0, h.shape[0], rows):
                hc, tc = h[s:s + rows].to(mm), targets[s:s + rows]       # (n, C), (n,)
                logits = (hc @ w.t()).float()                            # (n, V)
                target = logits.gather(1, tc[:, None])                   # (n, 1) the target's logit
                top = logits.amax(dim=-1, keepdim=True)                  # (n, 1) for a stable exp
                e = logits.sub_(top).exp_()                              # (n, V) in place of the logits
                z = e.sum(dim=-1, keepdim=True)                          # (n, 1) softmax's denominator
                loss += (top + z.log() - target).sum()                   # -log softmax[target] = log z + top - logit
                g = e.div_(z)                                            # softmax
                g[torch.arange(len(tc), device=h.device), tc] -= 1.0     # ... minus onehot(target)
                g = g.to(mm)
                grad_h[s:s + rows] = g @ w                               # (n, C)
                if mm == torch.float32:
                    grad_w.addmm_(g.t(), hc)                             # (V, C), accumulated in place
                else:
                    grad_w += (g.t() @ hc).float()
        ctx.grads = (grad_h, grad_w.to(weight.dtype))
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_h, grad_w = ctx.grads
        del ctx.grads
        return grad_h * grad_loss, grad_w * grad_loss, None


@torch.compiler.disable   # a compiled model stops before it: the row selection has a data-dependent shape
def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         fused: bool | None = None) -> torch.Tensor:
    """Summed cross-entropy (nats, float32) of the logits h @ weight^T against targets, over the
    targets >= 0 only. h (..., C), targets (...) of the same leading shape, weight (V, C).

    fused: the chunked loop above (default on CPU, where it was measured: bench/train.py), or
    the plain head + F.cross_entropy on the selected rows (default on GPUs: there the loop's
    many small kernels against the memory passes it saves has not been measured yet)."""
    h, targets = h.reshape(-1, h.shape[-1]), targets.reshape(-1)         # (B*T, C), (B*T,)
    keep = targets >= 0
    if not bool(keep.all()):
        h, targets = h[keep], targets[keep]                              # (N, C), (N,)
    if h.shape[0] == 0:
        return (h.sum() + weight.sum()).float() * 0.0                    # no target counts: a zero with a graph
    if fused is None:
        fused = h.device.type == "cpu"
    if not fused:
        return F.cross_entropy((h @ weight.t()).float(), targets, reduction="sum")   # logits (N, V)
    return _LinearCrossEntropy.apply(h, weight, targets)
