"""Shared helpers for the server tests: real `groundup serve` processes on loopback, and the
small model directories they serve (made here: random weights, or a "scripted" Qwen2 whose
next token depends only on the current one, so its answer -- text, then a Hermes tool call --
is known in advance)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "providers"))
from test_providers_local import CALL, SAY, make_hf_tokenizer, scripted_model  # noqa: E402

PY = sys.executable


class Server:
    """`groundup serve ...` in a subprocess on a free loopback port."""

    def __init__(self, *args: str, env: dict | None = None, timeout: float = 180):
        self.proc = subprocess.Popen([PY, "-m", "groundup", "serve", "--port", "0", "--log-level", "warning", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()            # "groundup serve: NAME (kind) at http://HOST:PORT/v1 ..."
        m = re.search(r"at (http://[^ ]+)/v1", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.url = m.group(1)
        self.base_url = self.url + "/v1"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server never became healthy: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.1)

    def metrics(self) -> dict[str, float]:
        """the scrape, parsed by prometheus_client's own parser: {'name{labels}': value}"""
        from prometheus_client.parser import text_string_to_metric_families
        text = httpx.get(self.url + "/metrics", timeout=10).text
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def our_model(path: Path, depth: int = 1, max_seq_len: int = 256) -> Path:
    """A random-weight model in our own format, with our tokenizer and chat tokens."""
    from groundup.model import ModelConfig, Transformer, save_model
    from groundup.tokenizer import train_tokenizer
    from groundup.tokenizer.special import SPECIAL_TOKENS

    tok = train_tokenizer(["def add(a, b):\n    return a + b\nHello, how are you today?\n" * 30],
                          vocab_size=256 + len(SPECIAL_TOKENS) + 40, progress=False)
    torch.manual_seed(0)
    cfg = ModelConfig.from_depth(depth, vocab_size=tok.vocab_size, max_seq_len=max_seq_len)
    save_model(Transformer(cfg), path)
    tok.save(path)
    return path


def scripted_qwen(path: Path) -> Path:
    """A Qwen2 directory with a Qwen2.5-style chat template that answers any chat with
    SAY, then the Hermes tool call CALL (run {"command": "ls -la"}), then <|im_end|>."""
    tok = make_hf_tokenizer()
    text = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    last = tok(text, add_special_tokens=False)["input_ids"][-1]     # every prompt ends with "assistant\n"
    say, call = tok.convert_tokens_to_ids([SAY, CALL])
    scripted_model(path, tok, [(last, say), (say, call), (call, tok.convert_tokens_to_ids("<|im_end|>"))])
    return path


def looping_qwen(path: Path, hidden: int = 512) -> Path:
    """A Qwen2 directory that answers every chat with SAY, SAY, SAY... and never stops by
    itself: each answer is exactly max_tokens long. `hidden` sets its size, so a decode step
    costs real time (512: a few ms) and a long answer holds its slot for seconds."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    tok = make_hf_tokenizer()
    text = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    last = tok(text, add_special_tokens=False)["input_ids"][-1]
    say = tok.convert_tokens_to_ids(SAY)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096,
                      tie_word_embeddings=False, eos_token_id=tok.convert_tokens_to_ids(tok.eos_token))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():        # layers add nothing; the head maps the last prompt token and SAY to SAY
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        normed = emb / emb.pow(2).mean(-1, keepdim=True).add(cfg.rms_norm_eps).sqrt()
        model.lm_head.weight.zero_()
        model.lm_head.weight[say] = (normed[last] + normed[say]) * 10
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def sse_chunks(text: str) -> list[dict]:
    """The JSON chunks of an SSE body (without the final [DONE])."""
    out = []
    for block in text.split("\n\n"):
        data = "\n".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data and data != "[DONE]":
            out.append(json.loads(data))
    return out


def replay_script(path: Path, turns: list[dict]) -> str:
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))
    return f"replay:{path}"


__all__ = ["Server", "our_model", "scripted_qwen", "looping_qwen", "sse_chunks", "replay_script", "SAY", "CALL", "signal"]
