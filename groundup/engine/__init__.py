"""The inference engine: KV cache, prefill/decode, sampling, streaming, batching.

    from groundup.engine import Engine, SamplingParams, load_engine, Scheduler
"""

from groundup.engine.engine import (Batch, Engine, GenerationResult, Sequence, Timing, TokenEvent, Usage,
                                    load_engine)
from groundup.engine.sampling import SamplingParams
from groundup.engine.scheduler import RequestHandle, Scheduler

__all__ = ["Engine", "SamplingParams", "load_engine", "GenerationResult", "TokenEvent", "Usage", "Timing",
           "Scheduler", "RequestHandle", "Batch", "Sequence"]
