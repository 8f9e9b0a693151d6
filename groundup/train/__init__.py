"""Training: token shards, pretraining and supervised fine-tuning, checkpoints, DDP, plots.

    from groundup.train import TrainConfig, SFTConfig, pretrain, sft, prepare_data, plot_run

See docs/04-training.md.
"""

from groundup.train.data import prepare_data, prepare_sft_data
from groundup.train.plot import plot_run
from groundup.train.trainer import SFTConfig, TrainConfig, pretrain, sft

__all__ = ["TrainConfig", "SFTConfig", "pretrain", "sft", "prepare_data", "prepare_sft_data", "plot_run"]
