"""`local:PATH` -- a model directory run in-process by groundup's own engine.

Two kinds of directory, two chat formats:
- our own models (no chat template): groundup's chat format (chat/format.py) -- special
  tokens for turns, compact tool lines, <|tool_call|>name{json}<|end_tool_call|>;
- Hugging Face Llama / Qwen2 / Qwen3 directories: the model's own Jinja chat template
  (chat/template.py), and the tool-call syntax that template teaches (Hermes <tool_call>
  blocks for Qwen, the JSON form for Llama 3.1).

Either way the provider is the same four steps, which is all "tool calling" is for a local
model:  render the conversation to a prompt -> token ids -> generate, streaming -> parse the
streamed text into TextDelta / ToolCallEvent as it arrives.

Design choices:
- The engine stops on the format's end-of-turn tokens (<|end_of_turn|>, or the template's
  eos such as <|im_end|> / <|eot_id|>); the parser is given the same markers as strings, in
  case one arrives as text.
- A prompt that does not leave room for an answer (`min_room` tokens, or max_tokens if less)
  is a ContextOverflow, the same error the HTTP providers raise, so the agent can compact and
  retry whatever the model.
- Sampling options (temperature, top_p, top_k, seed) are constructor options; greedy by default
  so that runs are reproducible. `stream(..., sampling={...})` overrides them for one call
  (reinforcement learning samples each attempt of a group with its own seed through one
  shared model).
- The final `Finish` carries the prompt ids and the generated ids (stop id included): what the
  model was shown and what it produced, for training on its own tokens (groundup/rl/).
- `batch=N` (N > 1) runs generation through a continuous-batching Scheduler (engine/scheduler.py)
  with N slots: one LocalModel can then serve N conversations from N threads at once (agents
  evaluated in parallel), one decode step for all of them, instead of N models each paying the
  per-step cost alone. Each conversation gets the tokens it would have got alone, up to float
  rounding: a batched matrix product rounds differently, and greedy decoding can flip on a
  near-tie (seen on 24 evaluation tasks: 2.50 steps on average against 2.42). On a GPU this is
  the fast way to serve parallel agents; on 2 CPU cores a model per thread was faster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from groundup.chat.format import StreamParser, render_prompt
from groundup.chat.template import load_chat_template
from groundup.providers.base import ContextOverflow, Event, Finish, ProviderError, ToolCallEvent, Usage
from groundup.tokenizer.special import EOS, EOT

# end-of-turn tokens of the common HF templates, used as stop tokens when the tokenizer has them
HF_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>")


class LocalModel:
    base_url = None                 # in-process: no endpoint

    def __init__(self, path: str | Path, *, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, seed: int | None = None, max_tokens: int = 1024,
                 min_room: int = 128, dtype: str | None = None, device: str | None = None,
                 batch: int = 0, **_ignored: Any):
        from groundup.engine import load_engine     # torch is imported only for local models

        self.path = Path(path)
        self.name = f"local:{self.path}"
        if not (self.path / "config.json").is_file():
            what = ("is a file, not a model directory" if self.path.is_file() else "does not exist"
                    if not self.path.exists() else "is not a model directory (no config.json)")
            raise ProviderError(f"{self.path} {what}: give the directory that training or "
                                "`groundup export` wrote")
        # one conversation at a time (no scheduler): each turn's prompt starts with the last
        # turn's prompt and answer, and the engine prefills only what is new
        self.engine = load_engine(self.path, dtype=dtype, device=device, prefix_cache=batch <= 1)
        self.tokenizer = self.engine.tokenizer
        if self.tokenizer is None:
            raise ProviderError(f"{self.path} has no tokenizer (tokenizer.json / tokenizer.pkl): "
                                "a chat model needs one")
        self.template = load_chat_template(self.path)
        specials = getattr(self.tokenizer, "special_tokens", {})
        if self.template is None:
            if EOT not in specials:
                raise ProviderError(f"{self.path} has no chat template and its tokenizer lacks "
                                    "groundup's chat tokens: it is not a chat model")
            self.stop_strings = (EOT, EOS)
        else:
            eos = self.template.special_tokens.get("eos_token")
            self.stop_strings = tuple(dict.fromkeys(
                [s for s in (eos, *HF_END_OF_TURN) if s and s in specials]))
        self.stop_ids = tuple(specials[s] for s in self.stop_strings if s in specials)
        self.special_names = {i: s for s, i in specials.items()}
        # our own small models were trained with the agent's short system prompt; the agent
        # asks the model which one it wants (agent/loop.py reads `compact_prompt`)
        self.compact_prompt = self.template is None
        self.sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed)
        self.max_tokens = max_tokens
        self.min_room = min_room       # tokens an answer must have room for, else "context overflow"
        self.scheduler = None
        if batch > 1:                  # shared by threads: one decode step serves every conversation
            from groundup.engine.scheduler import Scheduler
            # each conversation's next prompt starts with its last one: prefill only the new part
            self.scheduler = Scheduler(self.engine, max_batch=batch, max_len=self.engine.max_seq_len,
                                       prefix_cache=True)

    def check(self) -> None:
        """Nothing to reach: a directory that loads is a model that answers."""

    @property
    def shareable(self) -> bool:
        """Safe to use from several threads at once (it batches them)."""
        return self.scheduler is not None

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
        """The conversation rendered in this model's chat format, as token ids."""
        if self.template is None:
            return render_prompt(messages, tools, self.tokenizer)
        text = self.template.render(messages, tools or None, add_generation_prompt=True)
        # the template writes special tokens as text (<|im_start|>): they must become their ids
        return list(self.tokenizer.encode(text, allowed_special="all"))

    def parser(self, tools: list[dict[str, Any]]):
        if self.template is None:
            return StreamParser(tools or None)
        return self.template.stream_parser(tools or None, stops=self.stop_strings)

    def _feed(self, parser, token_id: int, text: str) -> list:
        """Our format is parsed token-aware (only a real special token is a marker); an HF
        template's markers (<tool_call>) are often ordinary tokens, so those parse the text."""
        if self.template is not None:
            return parser.feed(text)
        name = self.special_names.get(token_id)
        if name is None:
            return parser.feed_token(text, special=False)
        # the text of a special token may carry the flushed end of an incomplete character
        rest = text[: len(text) - len(name)] if text.endswith(name) else text
        return (parser.feed_token(rest, special=False) if rest else []) + parser.feed_token(name, special=True)

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               *, max_tokens: int | None = None,
               sampling: dict[str, Any] | None = None) -> Iterator[Event]:
        """sampling: temperature / top_p / top_k / seed for this call only."""
        from groundup.engine import SamplingParams

        ids = self.prompt_ids(messages, tools)
        room = self.engine.max_seq_len - len(ids)
        wanted = max_tokens or self.max_tokens
        if room < min(wanted, self.min_room):
            # an answer squeezed into a few tokens would be cut mid-call: better let the agent
            # compact the conversation (it retries on "context overflow") than waste a step
            raise ContextOverflow(f"context overflow: the prompt is {len(ids)} tokens, which leaves "
                                f"{max(room, 0)} of {self.path.name}'s {self.engine.max_seq_len} for "
                                f"the answer (at least {min(wanted, self.min_room)} needed)")
        params = SamplingParams(max_new_tokens=min(wanted, room), stop_ids=self.stop_ids,
                                **{**self.sampling, **(sampling or {})})
        parser = self.parser(tools)
        n, finish, calls = 0, "stop", 0
        produced: list[int] = []
        handle = self.scheduler.submit(ids, params) if self.scheduler else None
        try:
            for ev in handle if handle else self.engine.stream(ids, params):
                n += 1
                produced.append(ev.token_id)
                for out in self._feed(parser, ev.token_id, ev.text):
                    calls += isinstance(out, ToolCallEvent)
                    yield out
                if ev.finish_reason:
                    finish = ev.finish_reason
        finally:
            if handle and not handle.done:      # the caller stopped reading: free the slot
                handle.cancel()
        for out in parser.finish():
            calls += isinstance(out, ToolCallEvent)
            yield out
        if calls and finish != "length":
            finish = "tool_calls"
        yield Finish(finish, Usage(len(ids), n), prompt_ids=ids, token_ids=produced)
