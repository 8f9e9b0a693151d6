"""Incremental detokenisation: token ids in, safe text deltas out, stop strings honoured.

Two things make streaming text harder than `decode(all_ids)` at the end:
- A byte-level BPE token may hold only part of a UTF-8 character (an emoji is often split
  over 2-4 tokens). Decoding token by token must wait for the rest instead of printing U+FFFD,
  so bytes go through Python's incremental UTF-8 decoder, which keeps an incomplete tail.
- A stop string may span several tokens ("\\n\\nUser:" = 3 tokens). Text that *could* be the
  beginning of a stop string is held back until the next token decides; when the stop string
  completes, the text is cut right before it and nothing of it is ever emitted.

Design choice: this works on the tokenizer's `decode_bytes(ids)` (bytes, not str), the one
primitive both our BPE tokenizer and an HF tokenizer wrapper can provide exactly.
"""

from __future__ import annotations

import codecs
from typing import Any


class TextStream:
    def __init__(self, tokenizer: Any, stop_strings: tuple[str, ...] = ()):
        self.tok = tokenizer
        self.stops = tuple(stop_strings)
        self.max_stop = max((len(s) for s in self.stops), default=0)
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""          # all text decoded so far (cut at a stop string once one is found)
        self.emitted = 0        # how many characters of `text` were handed out as deltas

    def push(self, token_id: int) -> tuple[str, bool]:
        """Add one token; returns (new text that is safe to show, whether a stop string ended it)."""
        before = len(self.text)
        self.text += self._utf8.decode(self.tok.decode_bytes([token_id]))
        if not self.stops:
            return self._take(len(self.text)), False
        # a stop string that was not there before must end inside the new text
        start = max(0, before - self.max_stop + 1)
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            return self._take(len(self.text)), True
        return self._take(len(self.text) - self._held_back()), False

    def finish(self) -> str:
        """No more tokens: flush an incomplete character (as U+FFFD) and any held-back text."""
        self.text += self._utf8.decode(b"", final=True)
        return self._take(len(self.text))

    def _held_back(self) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:k]):
                    best = k
                    break
        return best

    def _take(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        delta = self.text[self.emitted:upto]
        self.emitted = upto
        return delta
