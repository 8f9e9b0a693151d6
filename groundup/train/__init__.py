"""Training: token shards, pretraining and supervised fine-tuning, checkpoints, DDP, plots.

    from groundup.train import TrainConfig, SFTConfig, pretrain, sft, prepare_data, plot_run

See docs/04-training.md. The names are imported on first use (PEP 562): `groundup train`
refuses a bad argument before torch is imported.
"""

import importlib

_WHERE = {"prepare_data": "data", "prepare_sft_data": "data", "plot_run": "plot",
          "SFTConfig": "trainer", "TrainConfig": "trainer", "pretrain": "trainer", "sft": "trainer"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'groundup.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"groundup.train.{_WHERE[name]}"), name)
