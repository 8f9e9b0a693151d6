"""A real HTTP server on 127.0.0.1 that answers each request with the next scripted reply.

A reply is (status, content_type, [body pieces]); each piece is written and flushed on its
own, so a client sees the stream arrive in separate reads. A piece that is a threading.Event
makes the server wait until the test sets it. Every request is recorded
(path, headers, JSON body) for the test to inspect.
"""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self):
        self.replies = []
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"     # no keep-alive: the body ends when we close

            def do_GET(self):
                self.do_POST()

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers), "json": json.loads(body or b"null")})
                status, ctype, pieces, extra = outer.replies.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                for p in pieces:
                    if isinstance(p, threading.Event):   # hold the rest until the test says so
                        p.wait(10)
                        continue
                    self.wfile.write(p.encode() if isinstance(p, str) else p)
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def reply(self, status=200, pieces=(), ctype="text/event-stream", headers=None):
        self.replies.append((status, ctype, list(pieces), headers or {}))

    def reply_json(self, status, obj, headers=None):
        self.reply(status, [json.dumps(obj)], "application/json", headers)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def sse(obj, event=None):
    """One SSE event: optional `event:` line, the JSON `data:` line, a blank line."""
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return (f"event: {event}\n" if event else "") + f"data: {data}\n\n"


def free_port():
    """A port with nothing listening on it (for connection-refused tests)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
