"""More hostile behaviours for the fake OpenAI server of fake_openai_server.py, and scripted replies.

`FaultServer(script, reply=fn)` adds to the behaviours of `FakeOpenAIServer` ("ok", "500", "429",
"badjson", "slow"):
- "hang": sleeps `slow_seconds` (make it longer than the client timeout) before answering;
- "empty": 200 with `{"choices": []}`;  "nochoices": 200 with `{}`;
- "binary": 200 with bytes that are not UTF-8;  "html": 200 with an HTML error page;
- "badcontent": 200 with a message whose content is a number;
- "echo400": 400 whose body echoes the request headers (a server that reflects the API key);
- "drop": closes the connection without answering.
`reply(body) -> str` makes each "ok" answer from the request (default: the fixed `reply` text).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from fake_openai_server import FakeOpenAIServer

RAW = {"empty": b'{"choices": []}', "nochoices": b"{}", "binary": b'{"choices": [\xff\xfe]}',
       "html": b"<html><body>502 Bad Gateway</body></html>",
       "badcontent": b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": 42}}]}'}


class FaultServer(FakeOpenAIServer):
    def __init__(self, script: list[str] | None = None, reply: str | Callable[[dict], str] = "Paris",
                 slow_seconds: float = 2.0):
        self.reply_fn = reply if callable(reply) else (lambda body, text=reply: text)
        super().__init__(script, reply="", slow_seconds=slow_seconds)
        self._server.daemon_threads = True  # do not wait for hanging handlers on exit
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _handler(self):
        fake, base = self, super()._handler()

        class Handler(base):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.requests.append({"headers": dict(self.headers), "body": body})
                behaviour = fake.next_behaviour()
                if behaviour in ("hang", "slow"):
                    time.sleep(fake.slow_seconds)
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

        return Handler
