"""The inference engine: KV cache, prefill/decode, sampling, streaming, batching.

    from groundup.engine import Engine, SamplingParams, load_engine, Scheduler

The names are imported on first use (PEP 562): importing `groundup.engine.cli` to parse a
command line must not cost a torch import, so a bad argument is refused at once.
"""

import importlib

_WHERE = {"Batch": "engine", "Engine": "engine", "GenerationResult": "engine", "Sequence": "engine",
          "Timing": "engine", "TokenEvent": "engine", "Usage": "engine", "load_engine": "engine",
          "SamplingParams": "sampling", "RequestHandle": "scheduler", "Scheduler": "scheduler"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'groundup.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"groundup.engine.{_WHERE[name]}"), name)
