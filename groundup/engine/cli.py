"""`groundup generate`: run the KV-cache engine on one prompt, streaming text to the terminal.

    groundup generate --model DIR --prompt "def fib(n):" --max-new-tokens 64
    groundup generate --model DIR --prompt-ids 1,2,3 --json

With --json, one object is printed at the end (nothing is streamed):
    {"text", "token_ids", "finish_reason", "usage": {"prompt_tokens", "completion_tokens"},
     "timing": {"load_s", "prefill_s", "decode_s", "decode_tokens_per_s"}}
`token_ids` are the generated ids only; with --prompt-ids a directory without a tokenizer works
and `text` is null.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from groundup.argtypes import (device, float_range, model_dir, nonneg_float, nonneg_int, positive_float,
                               positive_int, probability)


def _ids(s: str) -> list[int]:
    try:
        ids = [int(t) for t in s.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,3, got {s!r}") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"expected one or more token ids >= 0 like 1,2,3, got {s!r}")
    return ids


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  groundup generate --model runs/cpu/pretrain --prompt 'def fib(n):' --max-new-tokens 64\n"
        "  groundup generate --model DIR --prompt-ids 1,2,3 --temperature 0.8 --seed 1 --json\n\n"
        "--json prints one object when generation ends:\n"
        '  {"text", "token_ids", "finish_reason", "usage": {"prompt_tokens", "completion_tokens"},\n'
        '   "timing": {"load_s", "prefill_s", "decode_s", "decode_tokens_per_s"}}\n'
        "token_ids are the generated ids only; text is null for a directory without a tokenizer.\n"
        "Generation stops at an EOS token, a --stop string, or --max-new-tokens (finish_reason\n"
        "\"stop\" or \"length\"); a text prompt starts with the tokenizer's BOS token if it has one.")
    parser.add_argument("--model", required=True, metavar="DIR", type=model_dir,
                        help="model directory: ours or a Hugging Face Llama/Qwen2/Qwen3 one (config.json + safetensors)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", metavar="TEXT", help="prompt text (needs the directory's tokenizer)")
    src.add_argument("--prompt-ids", type=_ids, metavar="1,2,3", help="prompt as token ids")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256, metavar="N", help="stop after N tokens (default 256)")
    parser.add_argument("--temperature", type=nonneg_float, default=0.0, metavar="T",
                        help="sampling temperature; 0 = greedy (default)")
    parser.add_argument("--top-p", type=probability, default=1.0, metavar="P", help="nucleus sampling: keep the top tokens up to probability P")
    parser.add_argument("--top-k", type=nonneg_int, default=0, metavar="K", help="keep only the K most likely tokens (0 = off)")
    parser.add_argument("--min-p", type=float_range(0, 1, high_open=True), default=0.0, metavar="P", help="drop tokens below P x the top probability")
    parser.add_argument("--repetition-penalty", type=positive_float, default=1.0, metavar="R",
                        help="> 1 discourages repeating tokens already seen (1 = off)")
    parser.add_argument("--seed", type=nonneg_int, default=None, help="random seed for sampling (same seed, same text)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="stop when this text appears (repeatable; not included in the output)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="weights dtype (default: bfloat16 on a GPU, float32 on CPU)")
    parser.add_argument("--device", default=None, type=device, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model first (~1 minute on a CPU; faster decoding after)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with text, ids, usage and timing")


def run(args: argparse.Namespace) -> int:
    from groundup.engine.engine import load_engine
    from groundup.engine.sampling import SamplingParams
    from groundup.errors import UserError

    t0 = time.perf_counter()
    engine = load_engine(args.model, dtype=args.dtype, device=args.device, compile=args.compile)
    if args.compile:   # build the graphs now, so that the rates below measure decoding, not compiling
        print("compiling the model (one-off: ~10-60 s on 2 cores, longer on a busy machine) ...",
              file=sys.stderr, flush=True)
        print(f"compiled in {engine.warm_up():.1f}s", file=sys.stderr, flush=True)
    load_s = time.perf_counter() - t0
    if args.prompt is not None:
        if engine.tokenizer is None:
            raise UserError(f"{args.model} has no tokenizer, so --prompt cannot be encoded: use --prompt-ids")
        prompt_ids = engine.encode(args.prompt)
    else:
        prompt_ids = args.prompt_ids
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, min_p=args.min_p, repetition_penalty=args.repetition_penalty,
                            seed=args.seed, stop_strings=tuple(args.stop))
    if args.json:
        res = engine.generate(prompt_ids, params)
        out = {"text": res.text, "token_ids": res.token_ids, "finish_reason": res.finish_reason,
               "usage": {"prompt_tokens": res.usage.prompt_tokens, "completion_tokens": res.usage.completion_tokens},
               "timing": {"load_s": round(load_s, 4), "prefill_s": round(res.timing.prefill_s, 4),
                          "decode_s": round(res.timing.decode_s, 4),
                          "decode_tokens_per_s": round(res.timing.decode_tokens_per_s, 2)}}
        print(json.dumps(out, ensure_ascii=False))
        _note_context(engine, len(prompt_ids), len(res.token_ids), res.finish_reason, args.max_new_tokens)
        return 0

    has_text = engine.tokenizer is not None
    if has_text and args.prompt is not None:
        sys.stdout.write(args.prompt)       # show the continuation in context, like a completion
    n, finish, t_start = 0, None, time.perf_counter()
    for ev in engine.stream(prompt_ids, params):
        n += 1
        sys.stdout.write(ev.text if has_text else f"{ev.token_id} ")
        sys.stdout.flush()
        finish = ev.finish_reason
    elapsed = time.perf_counter() - t_start
    sys.stdout.write("\n")
    print(f"[{n} tokens in {elapsed:.2f}s ({n / elapsed if elapsed else 0:.1f} tok/s incl. prefill), "
          f"finish: {finish}, load {load_s:.2f}s]", file=sys.stderr)
    _note_context(engine, len(prompt_ids), n, finish, args.max_new_tokens)
    return 0


def _note_context(engine, prompt_len: int, generated: int, finish: str | None, wanted: int) -> None:
    """"length" has two causes; when it was the context, not --max-new-tokens, say so."""
    if finish == "length" and generated < wanted:
        print(f"note: stopped after {generated} of {wanted} tokens: the prompt ({prompt_len} tokens) "
              f"and the answer filled the model's context of {engine.max_seq_len} tokens",
              file=sys.stderr)
