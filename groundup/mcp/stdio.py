"""The stdio transport: the client starts the server as a child process and they talk in
newline-delimited JSON-RPC over its stdin and stdout.

    groundup ──stdin──▶  {"jsonrpc":"2.0","id":1,"method":"tools/list",...}\\n  ──▶ server
    groundup ◀─stdout──  {"jsonrpc":"2.0","id":1,"result":{"tools":[...]}}\\n  ◀── server
             ◀─stderr──  anything the server wants to log (kept, shown when it fails)

Design choices:
- One reader thread per stream. stdout lines are parsed and handed to the client (the
  `Sink`); stderr is kept as a short tail, because the last lines a server printed are
  usually the reason it failed, and the user should see them.
- stdout is the protocol channel and nothing else (the spec says a server MUST NOT write
  anything else there). A line that is not JSON-RPC ends the connection with an error that
  names the server and quotes the line, because every later message would be suspect.
- The server runs in its own session (process group): Ctrl-C in the terminal interrupts
  groundup, which then *tells* the server to cancel, instead of the signal killing every
  server mid-write.
- Shutdown follows the spec: close stdin, wait, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
from typing import Any, Protocol

from groundup.mcp import jsonrpc
from groundup.mcp.errors import McpError

STDERR_TAIL = 20


class Sink(Protocol):
    """Where a transport delivers what it receives (the Client implements this)."""

    def message(self, msg: jsonrpc.Message) -> None: ...

    def request_failed(self, request_id: jsonrpc.Id, error: Exception) -> None: ...

    def closed(self, reason: str) -> None: ...


class StdioTransport:
    def __init__(self, name: str, command: str, args: list[str] | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None):
        self.name, self.command, self.args = name, command, list(args or [])
        self.env, self.cwd = dict(env or {}), cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._write_lock = threading.Lock()
        self._closing = False

    @property
    def label(self) -> str:
        return " ".join([self.command, *self.args])

    def start(self, sink: Sink) -> None:
        self.sink = sink
        try:
            self.proc = subprocess.Popen(
                [self.command, *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env={**os.environ, **self.env}, cwd=self.cwd,
                start_new_session=True)
        except FileNotFoundError:
            raise McpError(f"MCP server {self.name!r}: command not found: {self.command} "
                           "(check \"command\" in its configuration, and that it is on PATH)") from None
        except OSError as e:
            raise McpError(f"MCP server {self.name!r}: cannot start {self.command}: "
                           f"{e.strerror or e}") from None
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True,
                                            name=f"mcp-{self.name}-err")
        self._err_thread.start()
        threading.Thread(target=self._read_stdout, daemon=True, name=f"mcp-{self.name}-out").start()

    def send(self, msg: jsonrpc.Message, headers: dict[str, str] | None = None) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise McpError(f"MCP server {self.name!r} is not running")
        line = (jsonrpc.encode(msg) + "\n").encode("utf-8")
        try:
            with self._write_lock:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise McpError(self.exit_reason("stopped reading its input")) from None

    def cancel(self, request_id: jsonrpc.Id) -> bool:
        return False       # no per-request stream on stdio: the client sends notifications/cancelled

    def close(self) -> None:
        self._closing = True
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()        # the spec's graceful signal: end of input
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=2)
                    break
                except (OSError, subprocess.TimeoutExpired):
                    continue

    # ------------------------------------------------------------ readers

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        reason = None
        for raw in self.proc.stdout:
            line = raw.strip()
            if not line:
                continue
            try:
                msg = jsonrpc.parse(line)
            except jsonrpc.RPCError as e:
                shown = line.decode("utf-8", "replace")[:200]
                reason = (f"MCP server {self.name!r} wrote something that is not a JSON-RPC "
                          f"message on stdout: {shown!r} ({e.message}). A stdio server must "
                          "keep stdout for protocol messages and log to stderr.")
                break
            self.sink.message(msg)  # type: ignore[arg-type]
        if reason is not None:
            self.close()
        elif not self._closing:
            reason = self.exit_reason("exited")
        if reason is not None:
            self.sink.closed(reason)

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr_tail.append(raw.decode("utf-8", "replace").rstrip())

    def exit_reason(self, what: str) -> str:
        code: Any = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            self._err_thread.join(timeout=1)     # its last words are usually the reason
        status = f" (exit code {code})" if code is not None else ""
        tail = "; its last stderr lines: " + " | ".join(list(self.stderr_tail)[-5:]) \
            if self.stderr_tail else ""
        return f"MCP server {self.name!r} {what}{status}{tail}"
