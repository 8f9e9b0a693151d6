"""The model layer: a Llama-family transformer and its Hugging Face checkpoint format.

    from groundup.model import ModelConfig, Transformer, load_model, save_model
"""

from groundup.model.checkpoint import load_model, parse_dtype, save_model
from groundup.model.config import ModelConfig
from groundup.model.llama import Transformer

__all__ = ["ModelConfig", "Transformer", "load_model", "save_model", "parse_dtype"]
