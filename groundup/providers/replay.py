"""`replay:FILE.jsonl` -- a model that replays scripted assistant turns.

One turn per line: {"content": "text", "tool_calls": [{"name": "read_file",
"arguments": {"path": "a.py"}}]} (tool_calls optional). Each call to `stream` plays the next
turn. A script with no turns is refused when it is loaded, and a run that asks for a turn
after the last one gets a ProviderError (the script is too short for what the agent did) --
never a silent empty answer that would pass for success. It is the test double for the agent loop (an *external* model replaced by
a recording -- the tools it drives stay real) and a way to demo a session offline.
A turn may carry {"malformed": "why"} on a tool call to stand for a call the parser rejected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from groundup.chat.types import ToolCall
from groundup.providers.base import Event, Finish, ProviderError, TextDelta, ToolCallEvent, Usage


class ReplayModel:
    compact_prompt = False
    base_url = None

    def __init__(self, path: str | Path, **_options: Any):
        # options meant for other providers (base_url, temperature...) do not apply to a script
        self.path = Path(path)
        self.name = f"replay:{self.path}"
        if not self.path.is_file():
            raise ProviderError(f"replay script {self.path} not found (expected a JSONL file, "
                                "one assistant turn per line)")
        self.turns: list[dict[str, Any]] = []
        for lineno, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                turn = json.loads(line)
            except json.JSONDecodeError as e:
                raise ProviderError(f"{self.path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(turn, dict):
                raise ProviderError(f"{self.path}:{lineno}: each line must be a JSON object "
                                    '{"content": ..., "tool_calls": [...]}')
            self.turns.append(turn)
        if not self.turns:
            raise ProviderError(f"replay script {self.path} has no turns: write one assistant turn "
                                'per line, e.g. {"content": "done"}')
        self.position = 0

    def check(self) -> None:
        """The script was read and checked when the model was made."""

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               *, max_tokens: int | None = None) -> Iterator[Event]:
        if self.position >= len(self.turns):
            raise ProviderError(f"replay script {self.path} ran out: all {len(self.turns)} turns "
                                "were played and the agent asked for another (end the script "
                                "with a turn that calls no tool)")
        turn = self.turns[self.position]
        self.position += 1
        text = turn.get("content") or ""
        if text:
            yield TextDelta(text)
        calls = turn.get("tool_calls") or []
        for c in calls:
            yield ToolCallEvent(ToolCall(name=c.get("name", ""), arguments=c.get("arguments") or {},
                                         error=c.get("malformed")))
        # usage is counted in characters/4, a rough stand-in: a replay has no tokenizer
        prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4
        yield Finish("tool_calls" if calls else "stop", Usage(prompt, len(text) // 4))
