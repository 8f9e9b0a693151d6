"""Chat layer: rendering a HF chat template and parsing tool calls, against transformers.

    .venv/bin/python bench/chat.py

Measured in this run, on the same conversations (a Qwen2.5-style template with tools, an
agent-like trajectory of 12 turns with tool calls and results):
  1. template rendering: ours (groundup.chat.template) / transformers.apply_chat_template(tokenize=False),
     checked to give the same string;
  2. our own format: render + tokenize a conversation (render_conversation), for scale;
  3. streaming parse: StreamParser fed token-sized deltas / one-shot parse_assistant of the same
     output (the price of streaming; both must agree).
Printed as time per conversation and the ratio (> 1 means ours is faster).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chat"))

from tokenizers import Tokenizer, models  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from groundup.chat.format import StreamParser, parse_assistant, render_conversation, render_text  # noqa: E402
from groundup.chat.template import ChatTemplate  # noqa: E402
from groundup.tokenizer import default_corpus_files, train_tokenizer  # noqa: E402
from test_chat_template import QWEN_STYLE, TOOLS  # noqa: E402


def conversation(n_turns: int = 12) -> list[dict]:
    msgs = [{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": "Fix calc.py"}]
    for i in range(n_turns):
        msgs.append({"role": "assistant", "content": f"Step {i}.", "tool_calls": [
            {"id": f"c{i}", "name": "read_file", "arguments": {"path": f"src/mod{i}.py"}},
            {"id": f"d{i}", "name": "run", "arguments": {"command": "pytest -q", "timeout": 30}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "name": "read_file", "content": "def f():\n    return 1\n" * 5})
        msgs.append({"role": "tool", "tool_call_id": f"d{i}", "name": "run", "content": "1 failed, 3 passed"})
    return msgs


def best_of(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def main() -> None:
    msgs = conversation()
    hf_msgs = [dict(m, tool_calls=[{"id": c["id"], "type": "function",
                                    "function": {"name": c["name"], "arguments": c["arguments"]}}
                                   for c in m["tool_calls"]]) if m.get("tool_calls") else m for m in msgs]
    hf_tools = [{"type": "function", "function": t} for t in TOOLS]
    hf = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")))
    hf.chat_template = QWEN_STYLE
    ours = ChatTemplate(QWEN_STYLE)
    a = ours.render(msgs, TOOLS, add_generation_prompt=True)
    b = hf.apply_chat_template(hf_msgs, tools=hf_tools, tokenize=False, add_generation_prompt=True)
    assert a == b, "renderings differ"
    t_ours = best_of(lambda: ours.render(msgs, TOOLS, add_generation_prompt=True), 200)
    t_hf = best_of(lambda: hf.apply_chat_template(hf_msgs, tools=hf_tools, tokenize=False,
                                                  add_generation_prompt=True), 200)
    print(f"template render ({len(a)} chars): ours {t_ours * 1e6:8.1f} us   transformers {t_hf * 1e6:8.1f} us"
          f"   ratio {t_hf / t_ours:5.2f}x")

    tok = train_tokenizer(default_corpus_files()[:40], vocab_size=2048, progress=False)
    t_render = best_of(lambda: render_conversation(msgs, TOOLS, tok), 100)
    ids, _ = render_conversation(msgs, TOOLS, tok)
    print(f"our format: render + tokenize {len(ids)} tokens in {t_render * 1e6:8.1f} us "
          f"({len(render_text(msgs, TOOLS))} chars)")

    # the assistant turns of the conversation, as a model would emit them, token by token
    out = "".join(render_text([m], None).removeprefix("<|begin_of_text|>").removeprefix("<|assistant|>")
                  for m in msgs if m["role"] == "assistant")
    out = out.replace("<|end_of_turn|>", "")
    deltas = [tok.decode([i]) for i in tok.encode(out, allowed_special="all")]

    def streamed():
        p = StreamParser(TOOLS)
        return [e for d in deltas for e in p.feed(d)] + p.finish()

    text, calls = parse_assistant(out, TOOLS)
    assert len([e for e in streamed() if hasattr(e, "call")]) == len(calls) == 24
    t_stream = best_of(streamed, 50)
    t_once = best_of(lambda: parse_assistant(out, TOOLS), 50)
    print(f"parse {len(deltas)} tokens, {len(calls)} calls: streaming {t_stream * 1e6:8.1f} us   "
          f"one-shot {t_once * 1e6:8.1f} us   ratio {t_once / t_stream:5.2f}x "
          f"({t_stream / len(deltas) * 1e6:.2f} us per token streamed)")


if __name__ == "__main__":
    main()
