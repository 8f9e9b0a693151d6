"""`groundup serve`: an OpenAI-compatible server on our engine, with a web chat page at /.

    groundup serve --model runs/cpu/model                    # http://127.0.0.1:8000
    groundup serve --model replay:turns.jsonl --port 0       # scripted turns over real HTTP

Wiring only (the logic lives in app.py, backend.py, protocol.py): load the backend, build the
app, run it under uvicorn, and turn SIGTERM / Ctrl-C into a graceful drain -- stop accepting,
let running streams finish for --grace seconds, cut the rest, exit 0 (uvicorn's own signal
handling re-raises the signal after its shutdown, which would exit 143: a supervisor would
count every clean rolling restart as a crash).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
from pathlib import Path

from groundup.argtypes import device, int_range, nonneg_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  groundup serve --model runs/cpu/model\n"
        "  groundup serve --model ~/models/Qwen2.5-0.5B-Instruct --max-batch 32 --api-key s3cret\n"
        "  groundup serve --model replay:turns.jsonl --port 0      (scripted turns, for tests and demos)\n\n"
        "endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,\n"
        "GET /metrics (Prometheus), GET / (a web chat page). Point any OpenAI client at\n"
        "http://HOST:PORT/v1 -- e.g. the agent: groundup --model openai:NAME --base-url http://127.0.0.1:8000/v1\n\n"
        "on a CPU shared with other busy processes, start it with OMP_WAIT_POLICY=passive: with the\n"
        "default policy a waiting thread spins on a core its partner needs (measured 8x slower decoding\n"
        "on a loaded 2-core box; docs/11-serving.md)")
    parser.add_argument("--model", required=True, metavar="SPEC",
                        help="a model directory (ours, or a Hugging Face Llama/Qwen2/Qwen3 one with its chat "
                             "template), or replay:FILE.jsonl (scripted turns)")
    parser.add_argument("--name", default=None,
                        help="the model name clients ask for (default: the directory's name; 'replay' for replay:)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int_range(0, 65535), default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--max-batch", type=int, default=16, metavar="N",
                        help="sequences decoded together (KV-cache slots, allocated at start; default 16)")
    parser.add_argument("--max-queue", type=int, default=64, metavar="N",
                        help="requests that may wait for a slot; beyond that, 429 + Retry-After (default 64)")
    parser.add_argument("--max-len", type=positive_int, default=None, metavar="TOKENS",
                        help="prompt + answer per request (default: the model's context, at most 4096)")
    parser.add_argument("--prefill-chunk", type=int, default=256, metavar="TOKENS",
                        help="prefill long prompts this many tokens per step, between decode steps (default 256)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature when a request sets none (OpenAI's default, 1.0)")
    parser.add_argument("--api-key", default=None, metavar="KEY",
                        help="require 'Authorization: Bearer KEY' on /v1/* (default: no key)")
    parser.add_argument("--grace", type=nonneg_float, default=30.0, metavar="SECONDS",
                        help="on SIGTERM, how long running streams may finish before they are cut (default 30)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="weights dtype (default: bfloat16 on a GPU, float32 on CPU)")
    parser.add_argument("--device", default=None, type=device, help="cpu, cuda, ... (default: cuda if present)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first (slow start)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from groundup.errors import UserError
    from groundup.serve.app import App
    from groundup.serve.backend import load_backend

    for flag, v in (("--max-batch", args.max_batch), ("--max-queue", args.max_queue),
                    ("--prefill-chunk", args.prefill_chunk)):
        if v < 1:
            raise UserError(f"{flag} must be at least 1, got {v}")
    if not 0 <= args.temperature <= 2:
        raise UserError(f"--temperature must be between 0 and 2, got {args.temperature}")
    # bind first: a port in use is a one-line error, before the model is loaded
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({e.strerror}): pick another --port") from None
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    if args.compile and not args.model.startswith("replay:"):
        print("groundup serve: compiling the model before serving (one-off: ~1-2 minutes on 2 cores) ...",
              file=sys.stderr, flush=True)
    backend = load_backend(args.model, max_batch=args.max_batch, max_len=args.max_len,
                           prefill_chunk=args.prefill_chunk, default_temperature=args.temperature,
                           dtype=args.dtype, device=args.device, compile=args.compile) \
        if not args.model.startswith("replay:") else load_backend(args.model)
    name = args.name or ("replay" if args.model.startswith("replay:")
                         else Path(args.model.removeprefix("local:")).resolve().name)
    app = App(backend, name, api_key=args.api_key, max_queue=args.max_queue)
    config = uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=args.grace + 5,
                            lifespan="on")
    server = _server(config, app, args.grace)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"groundup serve: {name} ({backend.kind}) at http://{shown}:{port}/v1 -- web chat at "
          f"http://{shown}:{port}/", flush=True)
    server.run(sockets=[sock])
    return 0


def _server(config, app, grace: float):
    """uvicorn's Server with our signal handling: the first SIGTERM/SIGINT starts the drain
    (app.start_drain) and uvicorn's shutdown, which waits for open streams; a second SIGINT
    forces the exit. Nothing is re-raised afterwards, so a clean drain exits 0."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)

        def on_signal(self, sig, frame) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        async def on_tick(self, counter: int) -> bool:
            if self.should_exit:
                app.start_drain(grace)          # (in the event loop: it schedules the deadline)
            return await super().on_tick(counter)

    return Server(config)
