"""The special tokens that groundup's own models reserve.

They are appended after the ordinary (byte + merge) tokens, so ids 0..n_ordinary-1 are the
BPE ranks (exactly tiktoken's `mergeable_ranks`) and the specials take the last
`N_SPECIAL` ids of the vocabulary. Ordinary text never encodes to a special token unless the
caller explicitly allows it (a user typing "<|user|>" must not forge a turn).

The chat format (groundup/chat/) is built from these: a document starts with
<|begin_of_text|>; a turn is <|system|> / <|user|> / <|assistant|> / <|tool_result|> ...
<|end_of_turn|>; tool definitions sit in <|tools|>; a tool call is
<|tool_call|>NAME{json arguments}<|end_tool_call|>. The reserved ones leave room to grow without changing
the ids of trained models.
"""

NAMED = [
    "<|begin_of_text|>",   # document start / separator in pretraining shards (BOS)
    "<|end_of_text|>",     # end of document (EOS for plain text generation)
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|tools|>",           # tool definitions (JSON schemas) follow
    "<|tool_call|>",       # a tool call: NAME{json arguments} follows
    "<|end_tool_call|>",
    "<|tool_result|>",     # the result of a tool call, as a turn
    "<|end_of_turn|>",
]
N_SPECIAL = 32
SPECIAL_TOKENS = NAMED + [f"<|reserved_{i}|>" for i in range(N_SPECIAL - len(NAMED))]

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|end_of_turn|>"
