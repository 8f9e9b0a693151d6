"""What a run cost: token usage (with prompt-cache reads and writes) times a price table.

    price_for("anthropic:claude-sonnet-4-5", overrides) -> Price(3.00, 15.00, 0.30, 3.75)
    cost_usd(usage, price) -> 0.0421

Prices are US dollars per million tokens, as the providers publish them:

    input        prompt tokens read without the cache
    output       completion tokens
    cache_read   prompt tokens served from the cache (Anthropic: 0.1x input; OpenAI: 0.5x or less)
    cache_write  prompt tokens written to the cache (Anthropic: 1.25x input, 5-minute entries;
                 OpenAI caches for free)

so a turn costs (prompt - cache_read - cache_write) x input + cache_read x cache_read +
cache_write x cache_write + completion x output, over a million.

Design choices:
- A table in code (PRICES, by model-name prefix, the longest prefix wins: dated snapshots
  such as claude-sonnet-4-5-20250929 find their family) with the settings on top:
  `"prices": {"openai:my-vllm-model": {"input": 0.2, "output": 0.6}}`. Published prices
  change; the table says when it was written, and a user never has to wait for a release.
- A model with no price gives no cost (None, shown as "unknown"), never a made-up zero --
  except our own `local:` engine and `replay:` scripts, which cost nothing per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from groundup.errors import UserError
from groundup.providers.base import Usage

PRICES_AS_OF = "2025-11"


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


def _anthropic(i: float, o: float) -> Price:
    return Price(i, o, cache_read=round(i * 0.1, 4), cache_write=round(i * 1.25, 4))


PRICES: dict[str, Price] = {
    "anthropic:claude-opus-4-5": _anthropic(5.0, 25.0),
    "anthropic:claude-opus-4": _anthropic(15.0, 75.0),        # 4 and 4.1
    "anthropic:claude-sonnet-4": _anthropic(3.0, 15.0),       # 4 and 4.5
    "anthropic:claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "anthropic:claude-haiku-4-5": _anthropic(1.0, 5.0),
    "anthropic:claude-3-5-haiku": _anthropic(0.8, 4.0),
    "openai:gpt-5": Price(1.25, 10.0, cache_read=0.125),
    "openai:gpt-5-mini": Price(0.25, 2.0, cache_read=0.025),
    "openai:gpt-5-nano": Price(0.05, 0.40, cache_read=0.005),
    "openai:gpt-4.1": Price(2.0, 8.0, cache_read=0.50),
    "openai:gpt-4.1-mini": Price(0.40, 1.60, cache_read=0.10),
    "openai:gpt-4.1-nano": Price(0.10, 0.40, cache_read=0.025),
    "openai:gpt-4o": Price(2.50, 10.0, cache_read=1.25),
    "openai:gpt-4o-mini": Price(0.15, 0.60, cache_read=0.075),
    "openai:o3": Price(2.0, 8.0, cache_read=0.50),
    "openai:o4-mini": Price(1.10, 4.40, cache_read=0.275),
    "local:": Price(0.0, 0.0),
    "replay:": Price(0.0, 0.0),
}


def parse_prices(value: Any, where: str) -> dict[str, Price]:
    """The settings' "prices" object; UserError naming the file if malformed."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: 'prices' must be an object such as "
                        '{"openai:my-model": {"input": 0.2, "output": 0.6}} (USD per million tokens)')
    out = {}
    for model, p in value.items():
        fields = ("input", "output", "cache_read", "cache_write")
        if not isinstance(p, dict) or not {"input", "output"} <= set(p) or not set(p) <= set(fields) \
                or not all(isinstance(p[k], (int, float)) and not isinstance(p[k], bool) and p[k] >= 0
                           for k in p):
            raise UserError(f"{where}: prices.{model} needs \"input\" and \"output\" (and may have "
                            "\"cache_read\", \"cache_write\"): non-negative USD per million tokens")
        out[model] = Price(**{k: float(v) for k, v in p.items()})
    return out


def price_for(model: str, overrides: dict[str, Price] | None = None) -> Price | None:
    """The price of `model` (a spec like anthropic:claude-sonnet-4-5): the settings first,
    then the table; the longest matching prefix wins. None: unknown."""
    for table in (overrides or {}, PRICES):
        keys = [k for k in table if model.startswith(k) or model.partition(":")[2].startswith(k)]
        if keys:
            return table[max(keys, key=len)]
    return None


def cost_usd(usage: Usage, price: Price | None) -> float | None:
    if price is None:
        return None
    fresh = max(0, usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    total = (fresh * price.input + usage.cache_read_tokens * price.cache_read
             + usage.cache_write_tokens * price.cache_write + usage.completion_tokens * price.output)
    return round(total / 1e6, 6)


def format_cost(usage: Usage, price: Price | None) -> str:
    """`$0.0421 (12,345 prompt tokens, 10,000 from the cache, 1,024 written to it)`."""
    c = cost_usd(usage, price)
    money = "cost unknown (no price for this model: add one under \"prices\" in the settings)" \
        if c is None else f"${c:.4f}"
    cache = ""
    if usage.cache_read_tokens or usage.cache_write_tokens:
        cache = (f", {usage.cache_read_tokens:,} read from the cache, "
                 f"{usage.cache_write_tokens:,} written to it")
    return f"{money} ({usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion tokens{cache})"
