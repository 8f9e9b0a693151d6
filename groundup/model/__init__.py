"""The model layer: a Llama-family transformer and its Hugging Face checkpoint format.

    from groundup.model import ModelConfig, Transformer, load_model, save_model

The names are imported on first use (PEP 562): a command that only parses its arguments, or
reads a config.json, does not pay for importing torch.
"""

import importlib

_WHERE = {"load_model": "checkpoint", "parse_dtype": "checkpoint", "save_model": "checkpoint",
          "ModelConfig": "config", "Transformer": "llama"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'groundup.model' has no attribute {name!r}")
    return getattr(importlib.import_module(f"groundup.model.{_WHERE[name]}"), name)
