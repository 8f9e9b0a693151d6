"""Model providers: one string names a model everywhere.

    local:PATH       our engine in-process (our checkpoints, HF Llama/Qwen2/Qwen3 dirs)
    openai:NAME      any OpenAI-compatible Chat Completions endpoint (--base-url)
    anthropic:NAME   the Anthropic Messages API
    replay:FILE      scripted turns from a JSONL file (tests, offline demos)
"""

from __future__ import annotations

import importlib
from typing import Any

from groundup.providers.base import (Event, Finish, Model, ProviderError, TextDelta,  # noqa: F401
                                     ToolCallEvent, Usage, collect)

# prefix -> (module, class). Imported lazily so `replay:` never pays for torch.
PROVIDERS = {
    "local": ("groundup.providers.local", "LocalModel"),
    "openai": ("groundup.providers.openai", "OpenAIModel"),
    "anthropic": ("groundup.providers.anthropic", "AnthropicModel"),
    "replay": ("groundup.providers.replay", "ReplayModel"),
}


def parse_spec(spec: str) -> tuple[str, str]:
    """"prefix:rest" -> (prefix, rest), or the ProviderError a wrong string gets (cheap: for
    commands that must refuse it before they write anything)."""
    prefix, sep, rest = spec.partition(":")
    if not sep or prefix not in PROVIDERS or not rest:
        raise ProviderError(f"unknown model {spec!r}: use one of "
                            + ", ".join(f"{p}:..." for p in PROVIDERS)
                            + " (e.g. local:runs/cpu/model, openai:gpt-4o-mini)")
    return prefix, rest


def load_model(spec: str, **options: Any) -> Model:
    """Build the provider named by `spec` ("prefix:rest"). Options go to its constructor."""
    prefix, rest = parse_spec(spec)
    module_name, cls_name = PROVIDERS[prefix]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise ProviderError(f"the {prefix}: provider is not built yet in this version") from None
        raise
    return getattr(module, cls_name)(rest, **options)
