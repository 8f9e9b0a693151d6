"""The fault table: bad input and faults against every command, one row per case.

Each row runs `groundup ARGV` as a real process in a fresh workspace and checks the exit code,
one line on stderr saying what to fix (no traceback), and that nothing outside the row's
intended output was created or changed (faultlib.py says exactly what is checked). To add a
case, add a row: `Case(id, family, argv, code, says, setup=..., outputs=...)`.

Families: usage (argument values and combinations), paths (missing, wrong kind, unwritable),
files (damaged inputs: truncated, not UTF-8, wrong shape), durable (torn logs, resumes),
network (servers that stall, cut, lie or refuse; on 127.0.0.1), signals (Ctrl-C, SIGTERM),
limits (a run's own limits, replay scripts).

Rows that import torch in the child (a model is loaded) cost ~2-4 s each; the others well
under a second. A new command landing on main gets its rows here too.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from faultlib import Case, Shared, corrupt, flip, jsonl, run_all, truncate, write

RUN = "--out {ws}/run"
GARBAGE = b"SQLite format 3\x00garbage garbage"      # a database file that is not one
BAD_UTF8 = b'{"role": "user", "content": "\xff\xfe broken"}\n'
TURN_DONE = {"content": "done"}
SESSION = ".groundup/sessions/20260101-000000-abcd.jsonl"


def session_torn(ws: Path, sh) -> None:
    """A session whose last line was cut mid-write (the process was killed)."""
    p = ws / SESSION
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"role": "system", "content": "sys"}) + "\n"
                 + json.dumps({"role": "user", "content": "first task"}) + "\n"
                 + json.dumps({"role": "assistant", "content": "first answer"}) + "\n"
                 + '{"role": "assistan')


def resumed_cleanly(ws: Path, p) -> None:
    """Defect 1: the new user message is a record of its own on its own line."""
    lines = (ws / SESSION).read_bytes().split(b"\n")
    msgs = []
    for ln in lines:
        try:
            msgs.append(json.loads(ln))
        except ValueError:
            pass
    assert {"role": "user", "content": "fix it"} in msgs, lines
    assert msgs[-1] == {"role": "assistant", "content": "done"}, msgs


def resume_sees_both_turns(ws: Path, p) -> None:
    assert "first answer" in (ws / SESSION).read_text(errors="replace")


def nothing_written(rel: str):
    def check(ws: Path, p) -> None:
        assert not (ws / rel).exists(), f"{rel} was written by a command that failed"
    return check


def metrics_torn(ws: Path, sh) -> None:
    d = ws / "run"
    d.mkdir()
    (d / "metrics.jsonl").write_bytes(b'{"step": 1, "loss": 5.0, "lr": 0.001}\n'
                                      b'{"step": 2, "loss": 4.0, "lr": 0.001}\n'
                                      b'\x00\x00\x00\x00\n\xff\xfe\n'
                                      b'{"step": 3, "loss": "oops"}\n{"step": 4, "lo')


def results_torn(ws: Path, sh) -> None:
    (ws / "evalout").mkdir()
    (ws / "evalout" / "results.jsonl").write_bytes(b'{"id": "x", "solved": true}\n{"id": "y", "sol')


CASES: list[Case] = [
    # ------------------------------------------------------------------ top level
    Case("top-unknown-command", "usage", "frobnicate", 2, "unknown command 'frobnicate'"),
    Case("top-unknown-flag", "usage", "--frobnicate", 2, "unrecognized arguments"),
    Case("generate-no-args", "usage", "generate", 2, "required"),
    Case("tokenizer-no-verb", "usage", "tokenizer", 2, "required"),
    Case("train-no-verb", "usage", "train", 2, "required"),
    Case("train-unknown-verb", "usage", "train bake", 2, "invalid choice"),

    # ------------------------------------------------------------------ tokenizer
    Case("tok-train-vocab-small", "usage", "tokenizer train --vocab-size 10 --out {ws}/t", 2, "at least 288"),
    Case("tok-train-vocab-text", "usage", "tokenizer train --vocab-size many --out {ws}/t", 2, "expected an integer"),
    Case("tok-train-out-is-file", "paths", "tokenizer train --input {ws}/data --vocab-size 300 --out {ws}/afile",
         2, "is a file", setup=("file", "text"), defect=7),
    Case("tok-train-out-under-file", "paths", "tokenizer train --vocab-size 300 --out {ws}/afile/sub",
         2, "is a file", setup=("file",)),
    Case("tok-train-input-missing", "paths", "tokenizer train --input {ws}/nope --out {ws}/t", 2, "does not exist"),
    Case("tok-train-input-empty-dir", "paths", "tokenizer train --input {ws}/emptydir --vocab-size 300 --out {ws}/t",
         2, "no text files", setup=("emptydir",), check=nothing_written("t")),
    Case("tok-train-empty-corpus", "files", "tokenizer train --input {ws}/e.txt --vocab-size 300 --out {ws}/t",
         2, "corpus is empty", setup=(write("e.txt", ""),), check=nothing_written("t")),
    Case("tok-train-bad-regex", "usage", "tokenizer train --input {ws}/data --vocab-size 300 --pattern ( --out {ws}/t",
         2, "not a valid regex", setup=("text",), check=nothing_written("t")),
    Case("tok-train-ok", "paths", "tokenizer train --input {ws}/data --vocab-size 300 --out {ws}/t", 0,
         setup=("text",), outputs=("t", "t/*"), stdout="trained a vocabulary"),
    Case("tok-encode-missing", "paths", "tokenizer encode --tokenizer {ws}/nope --text hi", 2, "does not exist"),
    Case("tok-encode-dir-without", "paths", "tokenizer encode --tokenizer {ws}/emptydir --text hi", 2,
         "holds no tokenizer", setup=("emptydir",)),
    Case("tok-encode-corrupt-json", "files", "tokenizer encode --tokenizer {ws}/tj/tokenizer.json --text hi", 2,
         "tokenizer.json", setup=(write("tj/tokenizer.json", '{"model": {"type": "BPE", "vocab": '),)),
    Case("tok-encode-not-utf8", "files", "tokenizer encode --tokenizer {ws}/tj/tokenizer.json --text hi", 2,
         "tokenizer.json", setup=(write("tj/tokenizer.json", b"\xff\xfe\x00garbage"),)),
    Case("tok-decode-bad-ids", "usage", "tokenizer decode --tokenizer {ws}/tok --ids 1,x", 2,
         "ids must be integers", setup=("tok",)),
    Case("tok-decode-unknown-id", "usage", "tokenizer decode --tokenizer {ws}/tok --ids 1,99999", 2,
         "not in this tokenizer's vocabulary", setup=("tok",)),
    Case("tok-decode-bad-json", "usage", "tokenizer decode --tokenizer {ws}/tok", 2, "not valid JSON",
         setup=("tok",), stdin='{"ids": [1, 2'),
    Case("tok-stats-empty", "files", "tokenizer stats --tokenizer {ws}/tok --input {ws}/e.txt", 2,
         "empty", setup=("tok", write("e.txt", ""))),
    Case("tok-ranks-cut-mid-line", "files", "tokenizer encode --tokenizer {ws}/tok --text hi", 2, "corrupt",
         setup=("tok", truncate("tok/tokenizer.tiktoken", 0.5))),
    Case("tok-ranks-cut-at-a-line", "files", "tokenizer encode --tokenizer {ws}/tok --text hi", 2, "incomplete",
         setup=("tok", lambda ws, sh: _keep_lines(ws / "tok" / "tokenizer.tiktoken", 150))),

    # ------------------------------------------------------------------ generate (the engine)
    Case("gen-model-missing", "paths", "generate --model {ws}/nope --prompt hi", 2, "does not exist"),
    Case("gen-model-is-file", "paths", "generate --model {ws}/afile --prompt hi", 2, "is a file", setup=("file",)),
    Case("gen-model-no-config", "paths", "generate --model {ws}/emptydir --prompt hi", 2, "no config.json",
         setup=("emptydir",)),
    Case("gen-max-new-zero", "usage", "generate --model {ws}/model --prompt hi --max-new-tokens 0", 2,
         "at least 1", setup=("model",)),
    Case("gen-temperature-negative", "usage", "generate --model {ws}/model --prompt hi --temperature -1", 2,
         "at least 0", setup=("model",)),
    Case("gen-temperature-nan", "usage", "generate --model {ws}/model --prompt hi --temperature nan", 2,
         "finite", setup=("model",)),
    Case("gen-top-p-zero", "usage", "generate --model {ws}/model --prompt hi --top-p 0", 2, "above 0",
         setup=("model",)),
    Case("gen-top-p-above-one", "usage", "generate --model {ws}/model --prompt hi --top-p 1.5", 2, "at most 1",
         setup=("model",)),
    Case("gen-top-k-negative", "usage", "generate --model {ws}/model --prompt hi --top-k -2", 2, "at least 0",
         setup=("model",)),
    Case("gen-prompt-ids-text", "usage", "generate --model {ws}/model --prompt-ids a,b", 2, "comma-separated",
         setup=("model",)),
    Case("gen-prompt-ids-negative", "usage", "generate --model {ws}/model --prompt-ids 1,-4", 2, ">= 0",
         setup=("model",)),
    Case("gen-device-unknown", "usage", "generate --model {ws}/model --prompt hi --device tpu", 2,
         "unknown device", setup=("model",)),
    Case("gen-safetensors-truncated", "files", "generate --model {ws}/model --prompt hi", 2, "truncated",
         setup=("model", truncate("model/model.safetensors", 0.6)), defect=6),
    Case("gen-safetensors-garbage-header", "files", "generate --model {ws}/model --prompt hi", 2,
         "not a valid safetensors", setup=("model", corrupt("model/model.safetensors", 8, b"\xff\x00garbage"))),
    Case("gen-safetensors-bit-flip", "files", "generate --model {ws}/model --prompt hi", 2,
         "do not match the SHA-256", setup=("model", flip("model/model.safetensors", -3))),
    Case("gen-safetensors-empty", "files", "generate --model {ws}/model --prompt hi", 2,
         "shorter than its header", setup=("model", write("model/model.safetensors", b""))),
    Case("gen-config-not-json", "files", "generate --model {ws}/model --prompt hi", 2, "not valid JSON",
         setup=("model", write("model/config.json", "{oops"))),
    Case("gen-config-wrong-values", "files", "generate --model {ws}/model --prompt hi", 2,
         "positive integer", setup=("model", lambda ws, sh: _edit_config(ws, hidden_size=-64))),
    Case("gen-prompt-id-out-of-vocab", "usage", "generate --model {ws}/model --prompt-ids 1,99999", 2,
         "outside the model's vocabulary", setup=("model",)),
    Case("gen-prompt-too-long", "usage", "generate --model {ws}/model --prompt-ids " + ",".join(["5"] * 80), 2,
         "context is 64", setup=("model",)),
    Case("gen-cuda-without-gpu", "usage", "generate --model {ws}/model --prompt hi --device cuda", 2,
         "no CUDA GPU", setup=("model",)),
    Case("gen-context-full-says-so", "limits", "generate --model {ws}/model --prompt-ids "
         + ",".join(["5"] * 60) + " --max-new-tokens 50", 0, "filled the model's context", setup=("model",)),

    # ------------------------------------------------------------------ chat
    Case("chat-model-missing", "paths", "chat --model {ws}/nope", 2, "not found", stdin=""),
    Case("chat-model-is-file", "paths", "chat --model local:{ws}/afile", 2, "is a file", setup=("file",), stdin=""),
    Case("chat-max-tokens-zero", "usage", "chat --model {ws}/nope --max-tokens 0", 2, "at least 1"),
    Case("chat-base-url-ftp", "usage", "chat --model openai:m --base-url ftp://x", 2, "not an http", stdin=""),
    Case("chat-server-500", "network", "chat --model openai:m --base-url {url}/v1", 1, "HTTP 500",
         server="status-500", stdin="hello\n"),
    Case("chat-server-ok", "network", "chat --model openai:m --base-url {url}/v1", 0, server="ok",
         stdin="hello\n", stdout="done"),

    # ------------------------------------------------------------------ export
    Case("export-out-is-file", "paths", "export --model {ws}/model --out {ws}/afile", 2, "is a file",
         setup=("model", "file"), defect=7),
    Case("export-out-is-model", "paths", "export --model {ws}/model --out {ws}/model", 2, "must differ",
         setup=("model",)),
    Case("export-safetensors-truncated", "files", "export --model {ws}/model --out {ws}/exp", 2, "truncated",
         setup=("model", truncate("model/model.safetensors", 100)), defect=6),
    Case("export-dtype-unknown", "usage", "export --model {ws}/model --out {ws}/exp --dtype int3", 2,
         "invalid choice", setup=("model",)),
    Case("export-shard-index-missing-shard", "files", "export --model {ws}/model --out {ws}/exp", 2,
         "missing", setup=("model", write("model/model.safetensors.index.json",
                                          '{"weight_map": {"lm_head.weight": "model-00002.safetensors"}}'))),

    # ------------------------------------------------------------------ train base
    Case("train-steps-negative", "usage", "train base --steps -3 " + RUN, 2, "at least 1", defect=4,
         check=nothing_written("run")),
    Case("train-steps-zero", "usage", "train base --steps 0 " + RUN, 2, "at least 1", defect=4),
    Case("train-batch-zero", "usage", "train base --batch-size 0 " + RUN, 2, "at least 1"),
    Case("train-micro-not-divisor", "usage", "train base --batch-size 32 --micro-batch 5 " + RUN, 2,
         "not a multiple"),
    Case("train-seq-len-one", "usage", "train base --seq-len 1 " + RUN, 2, "at least 2"),
    Case("train-lr-negative", "usage", "train base --lr -0.1 " + RUN, 2, "above 0"),
    Case("train-lr-inf", "usage", "train base --lr inf " + RUN, 2, "finite"),
    Case("train-depth-zero", "usage", "train base --depth 0 " + RUN, 2, "at least 1"),
    Case("train-depth-huge", "usage", "train base --depth 4096 " + RUN, 2, "at most 64"),
    Case("train-vocab-small", "usage", "train base --vocab-size 100 " + RUN, 2, "at least 288"),
    Case("train-val-fraction-one", "usage", "train base --val-fraction 1 " + RUN, 2, "below 1"),
    Case("train-nproc-zero", "usage", "train base --nproc 0 " + RUN, 2, "at least 1"),
    Case("train-device-bogus", "usage", "train base --device gpu0 " + RUN, 2, "unknown device"),
    Case("train-out-is-file", "paths", "train base --out {ws}/afile", 2, "is a file", setup=("file",), defect=7),
    Case("train-data-missing", "paths", "train base --data {ws}/nope " + RUN, 2, "does not exist", defect=5,
         check=nothing_written("run")),
    Case("train-data-empty-dir", "paths", "train base --data {ws}/emptydir --steps 2 " + RUN, 2,
         "no text files", setup=("emptydir",), check=nothing_written("run")),
    Case("train-tokenizer-missing", "paths", "train base --tokenizer {ws}/nope " + RUN, 2, "does not exist"),
    Case("train-tokenizer-broken", "files", "train base --data {ws}/data --tokenizer {ws}/emptydir --steps 2 " + RUN,
         2, "holds no tokenizer", setup=("emptydir", "text"), check=nothing_written("run")),
    Case("train-resume-nothing", "durable", "train base --resume " + RUN, 2, "holds no training run"),
    Case("train-out-foreign-dir", "paths", "train base --data {ws}/data --steps 2 --out {ws}/data", 2,
         "not a groundup training run", setup=("text",)),
    Case("train-seq-above-context", "usage", "train base --seq-len 128 --context-len 64 --data {ws}/data " + RUN,
         2, "above --context-len", setup=("text",), check=nothing_written("run")),
    Case("train-config-corrupt", "files", "train base --resume --data {ws}/data --steps 2 " + RUN, 2,
         "unreadable", setup=("text", write("run/train_config.json", "{not json"), write("run/x", "keep"))),

    # ------------------------------------------------------------------ train sft
    Case("sft-init-missing", "paths", "train sft --init {ws}/nope --data {ws}/c.jsonl " + RUN, 2,
         "does not exist", setup=(jsonl("c.jsonl", []),)),
    Case("sft-init-is-file", "paths", "train sft --init {ws}/afile --data {ws}/afile " + RUN, 2, "is a file",
         setup=("file",)),
    Case("sft-init-truncated", "files", "train sft --init {ws}/model --data {ws}/c.jsonl --seq-len 32 " + RUN,
         2, "truncated", setup=("model", truncate("model/model.safetensors", 0.5), jsonl("c.jsonl", [{"messages": [
             {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])),
         defect=6, check=nothing_written("run")),
    Case("sft-data-missing", "paths", "train sft --init {ws}/model --data {ws}/nope.jsonl " + RUN, 2,
         "does not exist", setup=("model",)),
    Case("sft-data-is-dir", "paths", "train sft --init {ws}/model --data {ws}/emptydir " + RUN, 2,
         "is a directory", setup=("model", "emptydir")),
    Case("sft-data-bad-line", "files", "train sft --init {ws}/model --data {ws}/c.jsonl " + RUN, 2,
         "not JSON", setup=("model", write("c.jsonl", '{"messages": []}\n{oops\n')), check=nothing_written("run")),
    Case("sft-data-wrong-shape", "files", "train sft --init {ws}/model --data {ws}/c.jsonl " + RUN, 2,
         "expected", setup=("model", write("c.jsonl", '{"messages": "hello"}\n')), check=nothing_written("run")),
    Case("sft-data-empty", "files", "train sft --init {ws}/model --data {ws}/c.jsonl " + RUN, 2,
         "no conversations", setup=("model", write("c.jsonl", "\n\n")), check=nothing_written("run")),
    Case("sft-out-is-file", "paths", "train sft --init {ws}/model --data {ws}/afile --out {ws}/afile", 2,
         "is a file", setup=("model", "file"), defect=7),
    Case("sft-seq-above-context", "usage", "train sft --init {ws}/model --data {ws}/c.jsonl --seq-len 128 " + RUN,
         2, "above the context", setup=("model", jsonl("c.jsonl", [{"messages": [
             {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])),
         check=nothing_written("run")),

    # ------------------------------------------------------------------ train plot
    Case("plot-dir-missing", "paths", "train plot {ws}/nope", 2, "does not exist"),
    Case("plot-no-metrics", "paths", "train plot {ws}/emptydir", 2, "no metrics.jsonl", setup=("emptydir",)),
    Case("plot-output-is-dir", "paths", "train plot {ws}/run -o {ws}/emptydir", 2, "is a directory",
         setup=("emptydir", metrics_torn)),
    Case("plot-metrics-torn", "durable", "train plot {ws}/run", 0, "skipping a truncated or corrupt line",
         setup=(metrics_torn,), outputs=("run/loss.png", "home/.cache*", "home/config*")),   # matplotlib's cache

    # ------------------------------------------------------------------ the agent
    Case("agent-max-steps-zero", "usage", "-p task --model replay:{ws}/script.jsonl --max-steps 0", 2,
         "at least 1", setup=("script",)),
    Case("agent-max-steps-text", "usage", "-p task --model replay:x --max-steps ten", 2, "expected an integer"),
    Case("agent-max-seconds-nan", "usage", "-p task --model replay:x --max-seconds nan", 2, "finite"),
    Case("agent-max-seconds-negative", "usage", "-p task --model replay:x --max-seconds -5", 2, "above 0"),
    Case("agent-max-tokens-zero", "usage", "-p task --model replay:x --max-tokens 0", 2, "at least 1"),
    Case("agent-cwd-missing", "paths", "-p task --model replay:x --cwd {ws}/nope", 2, "does not exist"),
    Case("agent-cwd-is-file", "paths", "-p task --model replay:x --cwd {ws}/afile", 2, "not a directory",
         setup=("file",)),
    Case("agent-add-dir-missing", "paths", "-p task --model replay:x --add-dir {ws}/nope", 2, "does not exist"),
    Case("agent-model-nonsense", "usage", "-p task --model nonsense", 2, "unknown model 'nonsense'"),
    Case("agent-model-local-file", "paths", "-p task --model local:{ws}/afile", 2, "is a file",
         setup=("file",)),
    Case("agent-model-local-truncated", "files", "-p task --model local:{ws}/model", 2, "truncated",
         setup=("model", truncate("model/model.safetensors", 0.3)), defect=6),
    Case("agent-no-model", "usage", "-p task", 2, "no model given"),
    Case("agent-empty-task", "usage", "-p '' --model replay:{ws}/script.jsonl", 2, "task is empty",
         setup=("script",)),
    Case("agent-empty-stdin-task", "usage", "-p - --model replay:{ws}/script.jsonl", 2, "task is empty",
         setup=("script",), stdin=""),
    Case("agent-no-tty", "usage", "--model replay:{ws}/script.jsonl", 2, "needs a terminal",
         setup=("script",), stdin=""),
    Case("agent-permission-mode", "usage", "-p task --model replay:x --permission-mode sudo", 2, "invalid choice"),
    Case("agent-bad-allow-rule", "usage", "-p task --model replay:{ws}/script.jsonl --allow 'bash('", 2,
         "rule", setup=("script",)),
    Case("agent-anthropic-no-key", "usage", "-p task --model anthropic:claude-x", 2, "ANTHROPIC_API_KEY"),
    Case("agent-base-url-not-http", "usage", "-p task --model openai:m --base-url localhost:8000", 2,
         "not an http"),
    Case("agent-connection-refused", "network", "-p task --model openai:m --base-url http://127.0.0.1:9/v1", 2,
         "connection refused"),
    Case("agent-settings-not-json", "files", "-p task --model replay:{ws}/script.jsonl", 2, "not valid JSON",
         setup=("script", write(".groundup/settings.json", "{oops"))),
    Case("agent-settings-negative-limit", "files", "-p task --model replay:{ws}/script.jsonl", 2,
         "must be a positive number", setup=("script", write(".groundup/settings.json", '{"max_steps": -1}'))),
    Case("agent-settings-wrong-type", "files", "-p task --model replay:{ws}/script.jsonl", 2, "wrong type",
         setup=("script", write(".groundup/settings.json", '{"max_seconds": "soon"}'))),
    Case("agent-user-settings-not-object", "files", "-p task --model replay:{ws}/script.jsonl", 2,
         "must hold a JSON object", setup=("script", write("home/config/groundup/settings.json", "[1, 2]"))),
    Case("agent-resume-unknown", "durable", "-p task --model replay:{ws}/script.jsonl --resume nosuch", 2,
         "no session 'nosuch'", setup=("script",)),
    Case("agent-continue-nothing", "durable", "-p task --model replay:{ws}/script.jsonl --continue", 2,
         "no session to continue", setup=("script",)),
    Case("agent-resume-torn-session", "durable",
         "-p 'fix it' --model replay:{ws}/script.jsonl --resume 20260101-000000-abcd", 0,
         "skipping a truncated or corrupt line", setup=("script", session_torn),
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*"), check=resumed_cleanly, defect=1),
    Case("agent-resume-binary-garbage", "durable",
         "-p 'fix it' --model replay:{ws}/script.jsonl --resume 20260101-000000-abcd", 0,
         "not UTF-8", setup=("script", session_torn, lambda ws, sh: open(ws / SESSION, "ab").write(b"\n" + BAD_UTF8)),
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*"), check=resume_sees_both_turns),
    Case("agent-list-sessions-garbage", "durable", "--list-sessions", 0, stdout="20260101-000000-abcd",
         setup=(session_torn, lambda ws, sh: open(ws / SESSION, "ab").write(b"\x00\x00\xff\n"))),
    Case("agent-replay-missing", "paths", "-p task --model replay:{ws}/nope.jsonl", 2, "not found"),
    Case("agent-replay-empty", "limits", "-p task --model replay:{ws}/s.jsonl", 2, "has no turns",
         setup=(write("s.jsonl", "\n"),)),
    Case("agent-replay-bad-json", "files", "-p task --model replay:{ws}/s.jsonl", 2, "not valid JSON",
         setup=(write("s.jsonl", '{"content": "a"}\n{nope\n'),)),
    Case("agent-replay-exhausted", "limits", "-p task --model replay:{ws}/s.jsonl", 1, "ran out",
         setup=(jsonl("s.jsonl", [{"content": "", "tool_calls": [{"name": "list_dir", "arguments": {}}]}]),),
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("agent-max-steps-hit", "limits", "-p task --model replay:{ws}/s.jsonl --max-steps 1", 1, "max_steps",
         setup=(jsonl("s.jsonl", [{"content": "", "tool_calls": [{"name": "list_dir", "arguments": {}}]},
                                  TURN_DONE]),),
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),

    # ------------------------------------------------------------------ the agent against faulty servers
    Case("net-ok", "network", "-p task --model openai:m --base-url {url}/v1", 0, server="ok", stdout="done",
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-stall-max-seconds", "network", "-p task --model openai:m --base-url {url}/v1 --max-seconds 3", 1,
         "max_seconds", server="stall", timeout=40, defect=2,
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-stall-read-timeout", "network", "-p task --model openai:m --base-url {url}/v1", 1, "stalled",
         server="stall", env={"GROUNDUP_HTTP_TIMEOUT": "2"}, timeout=40,
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-stall-mid-stream", "network", "-p task --model openai:m --base-url {url}/v1 --max-seconds 3", 1,
         "max_seconds", server="stall-mid-stream", timeout=40,
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-close-mid-stream", "network", "-p task --model openai:m --base-url {url}/v1", 1,
         "before the answer was complete", server="close-mid-stream",
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-reset-then-ok", "network", "-p task --model openai:m --base-url {url}/v1", 0, server="reset-then-ok",
         stdout="done", outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-malformed-sse", "network", "-p task --model openai:m --base-url {url}/v1", 1, "not JSON",
         server="malformed-sse", outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-wrong-shape", "network", "-p task --model openai:m --base-url {url}/v1", 1, "malformed answer",
         server="wrong-shape", defect=3, outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-json-not-json", "network", "-p task --model openai:m --base-url {url}/v1", 1,
         "JSON body instead of an event stream", server="json-not-json", defect=3,
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-text-not-events", "network", "-p task --model openai:m --base-url {url}/v1", 1,
         "before the answer was complete", server="not-json-body",
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-html", "network", "-p task --model openai:m --base-url {url}/v1", 1, "not an event stream",
         server="html", outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-500-after-retries", "network", "-p task --model openai:m --base-url {url}/v1", 1, "HTTP 500",
         server="status-500", env={"GROUNDUP_HTTP_RETRIES": "1"},
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-429-then-ok", "network", "-p task --model openai:m --base-url {url}/v1", 0, server="429-then-ok",
         stdout="done", outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-401", "network", "-p task --model openai:m --base-url {url}/v1", 2, "needs an API key (401",
         server="401"),
    Case("net-401-with-key", "network", "-p task --model openai:m --base-url {url}/v1", 2,
         "refused the API key", server="401", env={"OPENAI_API_KEY": "sk-wrong"}),
    Case("net-unknown-model", "network", "-p task --model openai:gpt-9 --base-url {url}/v1", 2,
         "unknown model 'gpt-9'", server="unknown-model"),
    Case("net-json-output-error", "network",
         "-p task --model openai:m --base-url {url}/v1 --output-format json", 1, "malformed answer",
         server="wrong-shape", stdout='"is_error": true', outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-anthropic-ok", "network", "-p task --model anthropic:claude-t --base-url {url}", 0,
         server="anthropic-ok", env={"ANTHROPIC_API_KEY": "k"}, stdout="done",
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-anthropic-overloaded-then-ok", "network", "-p task --model anthropic:claude-t --base-url {url}", 0,
         server="anthropic-overloaded-then-ok", env={"ANTHROPIC_API_KEY": "k"}, stdout="done",
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-anthropic-missing-block", "network", "-p task --model anthropic:claude-t --base-url {url}", 1,
         "malformed answer", server="anthropic-missing-block", env={"ANTHROPIC_API_KEY": "k"},
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-anthropic-error-event", "network", "-p task --model anthropic:claude-t --base-url {url}", 1,
         "kaput", server="anthropic-error-event", env={"ANTHROPIC_API_KEY": "k"},
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-anthropic-cut", "network", "-p task --model anthropic:claude-t --base-url {url}", 1,
         "before the answer was complete", server="anthropic-cut", env={"ANTHROPIC_API_KEY": "k"},
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("net-http-timeout-env-bad", "usage", "-p task --model openai:m --base-url {url}/v1", 2,
         "GROUNDUP_HTTP_TIMEOUT", server="ok", env={"GROUNDUP_HTTP_TIMEOUT": "soon"}),

    # ------------------------------------------------------------------ signals
    Case("sig-term-while-waiting", "signals", "-p task --model openai:m --base-url {url}/v1", 143, "terminated",
         server="stall", signal=(signal.SIGTERM, 3.0), timeout=40,
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("sig-int-while-waiting", "signals", "-p task --model openai:m --base-url {url}/v1", 130, "interrupted",
         server="stall", signal=(signal.SIGINT, 3.0), timeout=40,
         outputs=(".groundup", ".groundup/*", ".groundup/sessions/*")),
    Case("sig-term-tokenizer-train", "signals", "tokenizer train --vocab-size 20000 --out {ws}/t", 143,
         "terminated", signal=(signal.SIGTERM, 3.0), timeout=60, check=nothing_written("t")),

    # ------------------------------------------------------------------ tasks
    Case("tasks-n-zero", "usage", "tasks generate --n 0 --out {ws}/t", 2, "at least 1"),
    Case("tasks-n-text", "usage", "tasks generate --n lots --out {ws}/t", 2, "expected an integer"),
    Case("tasks-tier-four", "usage", "tasks generate --tier 4 --out {ws}/t", 2, "use 1, 2, 3"),
    Case("tasks-seed-negative", "usage", "tasks generate --seed -1 --out {ws}/t", 2, "at least 0"),
    Case("tasks-out-is-file", "paths", "tasks generate --n 1 --out {ws}/afile", 2, "is a file", setup=("file",),
         defect=7),
    Case("tasks-validate-missing", "paths", "tasks validate {ws}/nope", 2, "does not exist"),
    Case("tasks-validate-empty", "paths", "tasks validate {ws}/emptydir", 2, "no tasks", setup=("emptydir",)),
    Case("tasks-validate-corrupt-json", "files", "tasks validate {ws}/tasks", 2, "cannot read",
         setup=("tasks", lambda ws, sh: _task_json(ws).write_bytes(b"\xff{oops"))),
    Case("tasks-validate-wrong-types", "files", "tasks validate {ws}/tasks", 2, "wrong type",
         setup=("tasks", lambda ws, sh: _edit_task(ws, fail_to_pass="tests.test_x"))),
    Case("tasks-oracle-out-is-dir", "paths", "tasks oracle --tasks {ws}/tasks --out {ws}/emptydir", 2,
         "is a directory", setup=("tasks", "emptydir")),
    Case("tasks-oracle-workers-zero", "usage", "tasks oracle --tasks {ws}/tasks --out {ws}/o.jsonl --workers 0",
         2, "at least 1", setup=("tasks",)),
    Case("tasks-oracle-no-gold", "files", "tasks oracle --tasks {ws}/tasks --out {ws}/o.jsonl", 2,
         "no gold edits", setup=("tasks", lambda ws, sh: _edit_task(ws, gold=None)), check=nothing_written("o.jsonl")),

    # ------------------------------------------------------------------ eval agent
    Case("eval-out-is-file", "paths", "eval agent --model replay:x --tasks {ws}/tasks --out {ws}/afile", 2,
         "is a file", setup=("tasks", "file"), defect=7),
    Case("eval-workers-zero", "usage", "eval agent --model replay:x --tasks {ws}/tasks --workers 0", 2,
         "at least 1", setup=("tasks",)),
    Case("eval-max-steps-zero", "usage", "eval agent --model replay:x --tasks {ws}/tasks --max-steps 0", 2,
         "at least 1", setup=("tasks",)),
    Case("eval-max-repeats-one", "usage", "eval agent --model replay:x --tasks {ws}/tasks --max-repeats 1 "
         "--out {ws}/e", 2, "at least 2", setup=("tasks",)),
    Case("eval-batch-one", "usage", "eval agent --model local:x --tasks {ws}/tasks --batch 1 --out {ws}/e", 2,
         "--batch N needs", setup=("tasks",)),
    Case("eval-tasks-missing", "paths", "eval agent --model replay:x --tasks {ws}/nope", 2, "does not exist"),
    Case("eval-generate-zero", "usage", "eval agent --model replay:x --generate 0", 2, "at least 1"),
    Case("eval-tier-bad", "usage", "eval agent --model replay:x --generate 1 --tier 1,9", 2, "use 1, 2, 3"),
    Case("eval-model-nonsense", "usage", "eval agent --model nonsense --tasks {ws}/tasks --out {ws}/e", 2,
         "unknown model", setup=("tasks",), check=nothing_written("e/results.jsonl")),
    Case("eval-results-torn", "durable", "eval agent --model replay:{ws}/script.jsonl --tasks {ws}/tasks "
         "--out {ws}/evalout", 0, "skipping a truncated or corrupt line", setup=("tasks", "script", results_torn),
         outputs=("evalout/*", "evalout/*/*", "evalout/*/*/*", "evalout/*/*/*/*"),
         check=lambda ws, p: _results_clean(ws)),

    # ------------------------------------------------------------------ rewind, hooks, mcp
    Case("rewind-turn-zero", "usage", "rewind 0", 2, "at least 1"),
    Case("rewind-no-session", "durable", "rewind --list", 2, "no session", setup=("repo",)),
    Case("rewind-unknown-session", "durable", "rewind --session nope 1", 2, "no session 'nope'", setup=("repo",)),
    Case("rewind-turn-past-end", "durable", "rewind 3", 2, "turn 3 does not exist",
         setup=("repo", session_torn)),
    Case("hooks-cwd-missing", "paths", "hooks --cwd {ws}/nope", 2, "does not exist"),
    Case("mcp-port-out-of-range", "usage", "mcp serve --transport http --port 99999", 2, "at most 65535"),
    Case("mcp-timeout-negative", "usage", "mcp add x --timeout -1 -- cmd", 2, "above 0"),
    Case("mcp-add-no-command", "usage", "mcp add x", 2, "COMMAND"),
    Case("mcp-add-bad-url", "usage", "mcp add --transport http x notaurl", 2, "http://"),
    Case("mcp-call-bad-json", "usage", "mcp call x tool {", 2, "not valid JSON"),
    Case("mcp-config-not-json", "files", "mcp list", 2, "not valid JSON", setup=(write(".mcp.json", "{oops"),)),
    Case("mcp-tools-unknown", "usage", "mcp tools nosuch", 2, "no MCP server named 'nosuch'"),
    Case("mcp-server-not-found", "paths", "mcp tools x", 2, "command not found",
         setup=(write(".mcp.json", '{"mcpServers": {"x": {"command": "/nonexistent/bin"}}}'),)),
    Case("mcp-serve-root-missing", "paths", "mcp serve --root {ws}/nope", 2, "not a directory"),

    # ------------------------------------------------------------------ retrieval: index, search, embed
    Case("index-path-is-file", "paths", "index {ws}/afile", 2, "is a file", setup=("file",)),
    Case("index-path-missing", "paths", "index {ws}/nope", 2, "does not exist"),
    Case("index-db-is-dir", "paths", "index {ws} --index {ws}/emptydir --embedder none", 2, "is a directory",
         setup=("emptydir",)),
    Case("index-db-corrupt", "files", "index {ws}/data --index {ws}/g.db --embedder none", 2,
         "not a groundup index", setup=("text", write("g.db", GARBAGE))),
    Case("search-no-index", "paths", "search foo", 2, "run `groundup index`"),
    Case("search-k-zero", "usage", "search foo --k 0", 2, "at least 1"),
    Case("search-mode-bogus", "usage", "search foo --mode fuzzy", 2, "invalid choice"),
    Case("search-db-corrupt", "files", "search foo --index {ws}/g.db", 2, "not a groundup index",
         setup=(write("g.db", GARBAGE),)),
    Case("embed-embedder-missing", "paths", "embed --text hi --embedder {ws}/nope", 2, "not a model directory"),
    Case("embed-no-text", "usage", "embed", 2, "required"),
    Case("ask-no-model", "usage", "ask 'where is x'", 2, "pass --model"),
    Case("ask-k-zero", "usage", "ask q --k 0 --model replay:x", 2, "at least 1"),
    Case("ask-no-index", "paths", "ask q --model replay:{ws}/script.jsonl", 2, "run `groundup index`",
         setup=("script",)),
    Case("ask-db-corrupt", "files", "ask q --model replay:{ws}/script.jsonl --index {ws}/g.db", 2,
         "not a groundup index", setup=("script", write("g.db", GARBAGE))),

    # ------------------------------------------------------------------ serve
    Case("serve-port-out-of-range", "usage", "serve --model replay:{ws}/script.jsonl --port 70000", 2,
         "at most 65535", setup=("script",)),
    Case("serve-max-batch-zero", "usage", "serve --model replay:{ws}/script.jsonl --max-batch 0 --port 0", 2,
         "at least 1", setup=("script",)),
    Case("serve-max-len-zero", "usage", "serve --model {ws}/model --max-len 0", 2, "at least 1"),
    Case("serve-device-bogus", "usage", "serve --model {ws}/model --device quantum", 2, "unknown device"),
    Case("serve-replay-missing", "paths", "serve --model replay:{ws}/nope.jsonl --port 0", 2, "not found"),
    Case("serve-model-truncated", "files", "serve --model {ws}/model --port 0", 2, "truncated",
         setup=("model", truncate("model/model.safetensors", 0.5))),

    # ------------------------------------------------------------------ speedrun
    Case("speedrun-out-is-file", "paths", "speedrun --preset smoke --out {ws}/afile", 2, "is a file",
         setup=("file",)),
    Case("speedrun-preset-unknown", "usage", "speedrun --preset huge", 2, "invalid choice"),
    Case("speedrun-only-unknown", "usage", "speedrun --only tokenizer,bake --out {ws}/r", 2, "unknown stage"),
    Case("speedrun-stop-after-unknown", "usage", "speedrun --stop-after lunch --out {ws}/r", 2, "invalid choice"),
]


def _keep_lines(p: Path, n: int) -> None:
    p.write_bytes(b"".join(p.read_bytes().splitlines(keepends=True)[:n]))


def _task_json(ws: Path) -> Path:
    return next((ws / "tasks").glob("*/task.json"))


def _edit_task(ws: Path, **changes) -> None:
    p = _task_json(ws)
    rec = json.loads(p.read_text())
    rec.update(changes)
    p.write_text(json.dumps(rec))


def _edit_config(ws: Path, **changes) -> None:
    p = ws / "model" / "config.json"
    cfg = json.loads(p.read_text())
    cfg.update(changes)
    p.write_text(json.dumps(cfg))


def _results_clean(ws: Path) -> None:
    """The earlier rows are kept; the new one starts on a line of its own."""
    lines = (ws / "evalout" / "results.jsonl").read_bytes().split(b"\n")
    rows = []
    for ln in lines:
        try:
            rows.append(json.loads(ln))
        except ValueError:
            pass
    assert rows[0] == {"id": "x", "solved": True}, lines
    assert any(r.get("id", "").startswith("train-") for r in rows[1:]), lines


@pytest.fixture(scope="session")
def outcomes(request, tmp_path_factory):
    """Every selected row, run a few at a time before the first row's test reports (rows are
    separate processes, most of them short or waiting); GROUNDUP_FAULT_WORKERS sets how many."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_fault"]
    workers = int(os.environ.get("GROUNDUP_FAULT_WORKERS", "3"))
    sh = Shared(tmp_path_factory.mktemp("fault-shared"))
    return run_all(selected, tmp_path_factory.mktemp("fault-cases"), sh, workers)


def test_table_is_big_and_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 100
    assert {c.defect for c in CASES if c.defect} == {1, 2, 3, 4, 5, 6, 7}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case, outcomes):
    if outcomes[case.id] is not None:
        raise outcomes[case.id]
