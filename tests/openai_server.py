"""A local HTTP server that imitates OpenAI's ``POST /v1/embeddings``, for fault and safety tests.

Unlike :class:`text_fixtures.FakeOpenAI` (an in-process transport), this is a real socket on
127.0.0.1, so the app's own client, built from ``OPENAI_BASE_URL``, talks to it unchanged:
point ``OPENAI_BASE_URL`` at :attr:`MockOpenAIServer.base_url`. Nothing leaves the machine.

``script`` is consumed one action per request: an int is an HTTP status answered with an
OpenAI-style error body (which echoes the key the way OpenAI's 401 message does), a float
is a delay in seconds before answering normally (for timeouts), ``"ok"`` answers normally.
When the script is used up every request succeeds. ``echo(key) -> str`` replaces the error
message (e.g. the key upper-cased or base64-encoded, as a hostile or buggy server might).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from text_fixtures import hash_vector


class MockOpenAIServer:
    """Serve fake embeddings on a free local port until :meth:`close` (a context manager too)."""

    def __init__(self, script: list | None = None, headers: dict | None = None, echo=None):
        self.script = list(script or [])
        self.echo = echo
        self.headers = headers or {}
        self.requests: list[dict] = []  # {"path", "authorization", "body"} per request
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "authorization": self.headers.get("authorization", ""),
                            "body": body,
                        }
                    )
                    action = server.script.pop(0) if server.script else "ok"
                if isinstance(action, float):
                    time.sleep(action)
                    action = "ok"
                if isinstance(action, int):
                    key = self.headers.get("authorization", "").removeprefix("Bearer ")
                    message = f"scripted {action}: Incorrect API key provided: {key}"
                    if server.echo is not None:
                        message = server.echo(key)
                    error = {"message": message, "type": "error", "code": None, "param": message}
                    self._send(action, {"error": error, "detail": message})
                    return
                data = [
                    {"object": "embedding", "index": i, "embedding": hash_vector(text, 1536).tolist()}
                    for i, text in enumerate(body.get("input", []))
                ]
                self._send(200, {"object": "list", "data": data, "model": body.get("model"), "usage": {}})

            def _send(self, status: int, payload: dict) -> None:
                blob = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(blob)))
                    for name, value in server.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(blob)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def inputs(self) -> list[str]:
        return [t for r in self.requests for t in r["body"].get("input", [])]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> MockOpenAIServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: every connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
