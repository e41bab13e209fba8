"""More hostile behaviours for the fake OpenAI server of fake_openai_server.py, and scripted replies.

`FaultServer(script, reply=fn)` adds to the behaviours of `FakeOpenAIServer` ("ok", "500", "429",
"badjson", "slow"):
- "hang": sleeps `slow_seconds` (make it longer than the client timeout) before answering;
- "stall": reads the request and never answers (until the server is stopped);
- "trickle": sends the response one byte every `trickle_seconds`, status line and headers
  included, announcing a huge body, forever (until the client leaves or the server is stopped);
- "halfclose": sends the status line and headers, then closes its write side and waits;
- "empty": 200 with `{"choices": []}`;  "nochoices": 200 with `{}`;
- "binary": 200 with bytes that are not UTF-8;  "html": 200 with an HTML error page;
- "badcontent": 200 with a message whose content is a number;
- "echo400": 400 whose body echoes the request headers (a server that reflects the API key);
- "drop": closes the connection without answering.
`reply(body) -> str` makes each "ok" answer from the request (default: the fixed `reply` text).
Stopping the server (leaving the `with` block) releases every stalled or trickling handler.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable

from fake_openai_server import FakeOpenAIServer

RAW = {"empty": b'{"choices": []}', "nochoices": b"{}", "binary": b'{"choices": [\xff\xfe]}',
       "html": b"<html><body>502 Bad Gateway</body></html>",
       "badcontent": b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": 42}}]}'}
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n"


class FaultServer(FakeOpenAIServer):
    def __init__(self, script: list[str] | None = None, reply: str | Callable[[dict], str] = "Paris",
                 slow_seconds: float = 2.0, trickle_seconds: float = 0.3, port: int = 0):
        self.reply_fn = reply if callable(reply) else (lambda body, text=reply: text)
        self.trickle_seconds, self.stopped = trickle_seconds, threading.Event()
        super().__init__(script, reply="", slow_seconds=slow_seconds, port=port)
        self._server.daemon_threads = True  # do not wait for hanging handlers on exit
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        super().__exit__(*exc)

    def _handler(self):
        fake, base = self, super()._handler()

        class Handler(base):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.requests.append({"headers": dict(self.headers), "body": body})
                behaviour = fake.next_behaviour()
                if behaviour in ("hang", "slow"):
                    time.sleep(fake.slow_seconds)
                if behaviour in ("stall", "trickle", "halfclose"):
                    return self._misbehave(behaviour)
                if behaviour == "drop":
                    self.close_connection = True
                    return
                if behaviour in ("500", "429"):
                    return self._send(int(behaviour), b'{"error": "busy"}', {"Retry-After": "0"})
                if behaviour == "badjson":
                    return self._send(200, b"{not json")
                if behaviour == "echo400":
                    return self._send(400, json.dumps({"error": f"bad key {self.headers.get('authorization')}"}).encode())
                if behaviour in RAW:
                    return self._send(200, RAW[behaviour])
                text = fake.reply_fn(body)
                choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                           for i in range(body.get("n", 1))]
                self._send(200, json.dumps({"choices": choices}).encode())

            def _misbehave(self, behaviour: str) -> None:
                self.close_connection = True
                try:
                    if behaviour == "trickle":
                        return self._trickle()
                    if behaviour == "halfclose":
                        self.wfile.write(HEAD)
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_WR)
                    fake.stopped.wait()
                except OSError:  # the client left
                    pass

            def _trickle(self) -> None:
                stream = itertools.chain(HEAD, b"{", itertools.repeat(ord(" ")))  # a body that never ends
                for byte in stream:
                    if fake.stopped.wait(fake.trickle_seconds):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        return Handler
