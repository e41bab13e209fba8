"""A local fake OpenAI-compatible chat server on 127.0.0.1 for fault tests (timeouts, 500s, 429s, bad JSON).

`FakeOpenAIServer(script)` serves POST /v1/chat/completions; `script` is a list of behaviours
consumed one per request ("ok", "500", "429", "badjson", "slow"); when the list is exhausted,
"ok". Every request's headers and JSON body are recorded in `requests`. `port` (default: any free
one) lets a test restart "the same" server, e.g. to resume a run whose settings name its URL.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 stalls clients above 5 concurrent connections for 1 s


class FakeOpenAIServer:
    def __init__(self, script: list[str] | None = None, reply: str = "Paris", slow_seconds: float = 2.0, port: int = 0):
        self.script, self.reply, self.slow_seconds = list(script or []), reply, slow_seconds
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_behaviour(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else "ok"

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.requests.append({"headers": dict(self.headers), "body": body})
                behaviour = fake.next_behaviour()
                if behaviour == "slow":
                    time.sleep(fake.slow_seconds)
                if behaviour in ("500", "429"):
                    return self._send(int(behaviour), b'{"error": "busy"}', {"Retry-After": "0"})
                if behaviour == "badjson":
                    return self._send(200, b"{not json")
                choices = [{"index": i, "message": {"role": "assistant", "content": f"{fake.reply} {i}"},
                            "finish_reason": "stop"} for i in range(body.get("n", 1))]
                self._send(200, json.dumps({"choices": choices}).encode())

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
