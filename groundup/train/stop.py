"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, then stop.

    with StopAtStep() as stop:
        while training:
            ...one optimizer step...
            if stop.agreed(d):          # every rank saw it (one all-reduce of a flag)
                save(step); stop.reraise()

Design choices:
- A signal that lands mid-step (inside the optimizer's update, or while a checkpoint is being
  written) must not be where training stops: the weights would be half-updated. So the first
  signal only sets a flag; the loop checks it at the end of each step, saves a checkpoint
  there and re-raises the signal's exception, which the command's guard (errors.py) reports
  as usual (`interrupted`, 130 / `terminated`, 143). Nothing trained is lost, however long
  `--save-every` is; `--resume` continues from that step exactly.
- A second signal stops at once (the user means it): the last periodic checkpoint is then
  what resumes.
- Under torchrun every rank gets the signal, but not always in the same step: the flag is
  summed across ranks each step so that all of them save and stop at the same one (a rank
  that stopped alone would leave the others waiting in an all-reduce forever).
- Handlers can only be installed from the main thread; elsewhere (a test calling the trainer
  from a worker thread) this does nothing, and a signal behaves as before.
"""

from __future__ import annotations

import signal
import sys
import threading

import torch

from groundup.errors import Terminated


class StopAtStep:
    def __init__(self) -> None:
        self.pending: KeyboardInterrupt | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.pending is not None:          # the second signal: stop now
            raise exc
        self.pending = exc
        print(f"\ngroundup: {'terminated' if signum == signal.SIGTERM else 'interrupted'}: "
              "finishing this step to save a checkpoint (again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopAtStep":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def agreed(self, d) -> bool:
        """True on every rank once any rank was asked to stop."""
        if d.world == 1:
            return self.pending is not None
        flag = torch.tensor([1.0 if self.pending is not None else 0.0], device=d.device)
        return bool(d.sum(flag).item() > 0)

    def reraise(self) -> None:
        raise self.pending if self.pending is not None else KeyboardInterrupt()
