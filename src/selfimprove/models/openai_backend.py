"""A Generator over any OpenAI-compatible chat server (vLLM serve, llama.cpp server, hosted APIs).

Requests run concurrently on daemon threads (bounded by `concurrency`, default
$SELFIMPROVE_OPENAI_CONCURRENCY or 16, so a high-concurrency vLLM server can be used from any
command); after one request fails under on_failure="raise", no further one starts. Time is
bounded under any server behaviour, by three limits (arguments, else environment variables):
- `timeout` ($SELFIMPROVE_OPENAI_TIMEOUT, default 60 s): the TOTAL time of one attempt: connect,
  send and every read together. A server that trickles one byte at a time, never answers, or
  half-closes the connection is cut at this deadline (each read waits only for the time left);
- `deadline_s` ($SELFIMPROVE_OPENAI_DEADLINE, default none): the total time of one request,
  retries and backoff included;
- `budget_s` ($SELFIMPROVE_OPENAI_BUDGET, default none): the total time of this generator's run,
  counted from its first request; once spent, every further request fails at once.
Timeouts, connection errors, 408/409/425/429/5xx answers and invalid bodies are retried with
exponential backoff (honouring Retry-After, at most 30 s) up to `max_retries` times
($SELFIMPROVE_OPENAI_RETRIES, default 3), never past the request deadline or the run budget.
After that the `on_failure` policy applies: "raise" (a ServerError naming the server and the last
problem) or "empty" (a Completion with finish_reason "error" and empty text, counted in
`stats["failures"]`). A caller that gives up on a call (the LLM judge after `timeout_s`) wraps it
in `call_scope(cancel, deadline)`: the request then stops within `CANCEL_POLL_S` of `cancel` being
set or at `deadline`, and is not retried, so no abandoned work keeps running.
The API key is read from the environment variable `api_key_env` at call time and never stored in
logs or reprs. HTTP(S) proxies come from the usual environment variables (`https_proxy`,
`no_proxy`, ...). One connection per attempt, no compression; bodies over 64 MiB are refused.
Token ids are not available from this backend.

Why not the official `openai` client (the `[openai]` extra): benchmarks/bench_openai_client.py
measured it against this backend on the fault servers of tests/. Its `timeout` is per connect,
read and write (httpx), so a server trickling one byte every 0.3 s held a request past the 30 s
cap with `timeout=2`, and neither a thread-pool caller's cancel nor Ctrl-C could end 16 stalled
requests before their read timeouts. `AsyncOpenAI` under `asyncio.wait_for` does bound and cancel
them, but that one deadline also covers the client's own retries (so retries, Retry-After, the request
deadline and the run budget would stay hand-written here, with the client only as the HTTP layer),
needs an event loop per call from this synchronous interface, spent more CPU per request at
lower throughput, and returns three of the four faults this module once mishandled unchanged:
`"choices": []` without an error, a non-UTF-8 body as a bare UnicodeDecodeError, a numeric
`content` as an int. So this module keeps the standard library and checks those itself.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import math
import os
import queue
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from selfimprove.errors import ConfigError, ServerError
from selfimprove.models.generator import Completion, Conversation, SamplingParams, optional_sampling

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
ENV_TIMEOUT, ENV_RETRIES = "SELFIMPROVE_OPENAI_TIMEOUT", "SELFIMPROVE_OPENAI_RETRIES"
ENV_DEADLINE, ENV_BUDGET = "SELFIMPROVE_OPENAI_DEADLINE", "SELFIMPROVE_OPENAI_BUDGET"
CANCEL_POLL_S = 0.25  # how often a blocked read looks at the caller's cancel event
MAX_BODY = 64 * 1024 * 1024


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Cancelled(Exception):
    """The caller gave up on this request (its cancel event is set)."""


@dataclass(frozen=True)
class CallScope:
    """What the caller of `generate` allows: stop when `cancel` is set, never run past `deadline` (monotonic)."""

    cancel: threading.Event
    deadline: float | None = None


_SCOPE: ContextVar[CallScope | None] = ContextVar("selfimprove_call_scope", default=None)


@contextlib.contextmanager
def call_scope(cancel: threading.Event, deadline: float | None = None) -> Iterator[None]:
    """Requests made in this block stop when `cancel` is set or at `deadline` (a time.monotonic() value)."""
    token = _SCOPE.set(CallScope(cancel, deadline))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def _setting(value: Any, env: str, default: Any, kind: type) -> Any:
    """An explicit value, else the environment variable `env`, else `default`; checked to be > 0 (>= 0 for ints)."""
    where = f"${env}" if value is None and os.environ.get(env) else "openai backend"
    raw = value if value is not None else (os.environ.get(env) or default)
    if raw is None:
        return None
    name, bound = env.rsplit("_", 1)[-1].lower(), "> 0" if kind is float else ">= 0"
    try:
        number = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} must be a number {bound}, got {raw!r}") from None
    if math.isnan(number) or number < 0 or (kind is float and number == 0):
        raise ConfigError(f"{where}: {name} must be a number {bound}, got {raw!r}")
    return number


class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible server."""

    def __init__(self, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float | None = None,
                 max_retries: int | None = None, backoff: float = 0.5, concurrency: int | None = None,
                 on_failure: str = "raise", deadline_s: float | None = None, budget_s: float | None = None):
        if on_failure not in ("raise", "empty"):
            raise ValueError("on_failure must be 'raise' or 'empty'")
        self.model, self.base_url = model, base_url.rstrip("/")
        self.name = f"openai:{model}@{self.base_url}"
        self.api_key_env = api_key_env
        self.timeout = _setting(timeout, ENV_TIMEOUT, 60.0, float)
        self.max_retries = _setting(max_retries, ENV_RETRIES, 3, int)
        self.deadline_s = _setting(deadline_s, ENV_DEADLINE, None, float)
        self.budget_s = _setting(budget_s, ENV_BUDGET, None, float)
        self.backoff = backoff
        self.concurrency = concurrency or int(os.environ.get("SELFIMPROVE_OPENAI_CONCURRENCY", "16"))
        self.on_failure = on_failure
        self.stats = {"requests": 0, "retries": 0, "failures": 0}
        self._lock = threading.Lock()
        self._budget_end: float | None = None

    def __repr__(self) -> str:
        return f"OpenAIGenerator(model={self.model!r}, base_url={self.base_url!r})"

    def generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        scope = _SCOPE.get()  # worker threads do not inherit context variables: pass it on
        if len(conversations) <= 1 or self.concurrency <= 1:
            return [self._complete(conv, params, scope) for conv in conversations]
        return _in_daemon_threads(lambda conv: self._complete(conv, params, scope), conversations,
                                  min(self.concurrency, len(conversations)))

    def _complete(self, conversation: Conversation, params: SamplingParams, scope: CallScope | None) -> list[Completion]:
        completions: list[Completion] = []
        while len(completions) < params.n:
            try:
                completions.extend(self._request_with_retries(conversation, params, params.n - len(completions), scope))
            except ServerError:
                self._count("failures")
                if self.on_failure == "raise":
                    raise
                completions.extend(Completion(text="", finish_reason="error") for _ in range(params.n - len(completions)))
        return completions[: params.n]

    def _request_with_retries(self, conversation: Conversation, params: SamplingParams, n: int,
                              scope: CallScope | None) -> list[Completion]:
        stop_at, why = self._limits(scope)
        cancel = scope.cancel if scope else None
        problem = "no attempt made"
        for attempt in range(self.max_retries + 1):
            self._check_time_left(stop_at, why, cancel, attempt, problem)
            if attempt:
                self._count("retries")
            try:
                return self._request(conversation, params, n, min(time.monotonic() + self.timeout, stop_at), cancel)
            except _Cancelled:
                raise ServerError(f"{self.base_url}: cancelled by the caller after {attempt + 1} attempts") from None
            except _Retryable as exc:
                problem = str(exc)
                if attempt < self.max_retries:
                    self._pause(exc.retry_after if exc.retry_after is not None else self.backoff * 2**attempt,
                                stop_at, cancel)
        raise ServerError(f"{self.base_url}: gave up after {self.max_retries + 1} attempts: {problem}")

    def _limits(self, scope: CallScope | None) -> tuple[float, str]:
        """When this request must end (monotonic) and why: request deadline, run budget or the caller's deadline."""
        now = time.monotonic()
        with self._lock:
            if self.budget_s is not None and self._budget_end is None:
                self._budget_end = now + self.budget_s
        limits = [(float("inf"), "")]
        if self.deadline_s is not None:
            limits.append((now + self.deadline_s, f"the request deadline of {self.deadline_s:g}s passed"))
        if self._budget_end is not None:
            limits.append((self._budget_end, f"the run budget of {self.budget_s:g}s is spent"))
        if scope is not None and scope.deadline is not None:
            limits.append((scope.deadline, "the caller's deadline passed"))
        return min(limits)

    def _check_time_left(self, stop_at: float, why: str, cancel: threading.Event | None, attempt: int,
                         problem: str) -> None:
        if cancel is not None and cancel.is_set():
            raise ServerError(f"{self.base_url}: cancelled by the caller after {attempt} attempts")
        if time.monotonic() >= stop_at:
            raise ServerError(f"{self.base_url}: gave up after {attempt} attempts: {why}"
                              + (f"; last problem: {problem}" if attempt else ""))

    @staticmethod
    def _pause(seconds: float, stop_at: float, cancel: threading.Event | None) -> None:
        seconds = max(0.0, min(seconds, stop_at - time.monotonic()))
        if cancel is not None:
            cancel.wait(seconds)
        else:
            time.sleep(seconds)

    def _request(self, conversation: Conversation, params: SamplingParams, n: int, deadline: float,
                 cancel: threading.Event | None) -> list[Completion]:
        self._count("requests")
        allowed = deadline - time.monotonic()
        body = json.dumps(self._payload(conversation, params, n)).encode()
        try:
            status, headers, data = _post(f"{self.base_url}/chat/completions", body, self._headers(), deadline, cancel)
        except TimeoutError:
            raise _Retryable(f"timed out: no complete answer within {allowed:.3g}s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(f"cannot reach server or connection broken ({type(exc).__name__}: {exc})") from None
        if status in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {status}", _retry_after(headers))
        if status >= 400:
            # a server may echo the key: redact the whole body, then cut (a key cut in two is not found)
            body_text = _redact(data.decode("utf-8", "replace"), os.environ.get(self.api_key_env))[:200]
            raise ServerError(f"{self.base_url}: HTTP {status}: {body_text}")
        return _parse_choices(data)

    def _payload(self, conversation: Conversation, params: SamplingParams, n: int) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": conversation, "n": n,
                                   "max_tokens": params.max_tokens, "temperature": params.temperature,
                                   "top_p": params.top_p}
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        return {**payload, **optional_sampling(params)}  # set only when asked: OpenAI's own API refuses them

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        headers = {"Content-Type": "application/json", "Connection": "close"}
        return {**headers, "Authorization": f"Bearer {key}"} if key else headers

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1


def _in_daemon_threads(fn: Callable[[Any], Any], items: list[Any], workers: int) -> list[Any]:
    """[fn(item) for item in items] on `workers` daemon threads; after a failure no new item starts.

    Unlike a ThreadPoolExecutor's threads, which the interpreter waits for at exit, these never
    delay the exit of an interrupted caller.
    """
    results: list[Any] = [None] * len(items)
    errors: list[BaseException] = []
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for index in range(len(items)):
        todo.put(index)

    def work() -> None:
        while not errors:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[index] = fn(items[index])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

    threads = [threading.Thread(target=work, name="openai-request", daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


class _DeadlineSocket:
    """A connected socket whose every send and read ends by `deadline` and soon after `cancel` is set.

    http.client sets one timeout per socket operation; this wrapper gives each operation only the
    time left, so a server trickling one byte at a time cannot stretch a request past its deadline.
    """

    def __init__(self, sock: Any, deadline: float, cancel: threading.Event | None):
        self.sock, self.deadline, self.cancel = sock, deadline, cancel

    def _slice(self) -> float:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled()
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        return min(left, CANCEL_POLL_S) if self.cancel is not None else left

    def _waiting(self, operation, *args) -> int:
        while True:
            self.sock.settimeout(self._slice())
            try:
                return operation(*args)
            except TimeoutError:
                continue  # a slice ended: look at the deadline and the cancel event again

    def sendall(self, data: bytes) -> None:
        view = memoryview(data).cast("B")
        while view:
            view = view[self._waiting(self.sock.send, view):]

    def recv_into(self, buffer) -> int:
        return self._waiting(self.sock.recv_into, buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        """Left open for the response still reading from it (as a real socket's makefile does); `_post` closes it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket):
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.sock.recv_into(buffer)


def _connection(url: str, deadline: float) -> tuple[http.client.HTTPConnection, str]:
    """An unconnected HTTP(S) connection for `url` (through the environment's proxy, if any) and the request target."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    timeout = max(deadline - time.monotonic(), 0.001)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if not secure:
            return http.client.HTTPConnection(via.hostname, via.port or 80, timeout=timeout), url
        conn = http.client.HTTPSConnection(via.hostname, via.port or 443, timeout=timeout, context=_tls())
        conn.set_tunnel(parts.hostname, parts.port or 443)
        return conn, path
    if secure:
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=_tls()), path
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), path


def _tls() -> ssl.SSLContext:
    """Certificates verified against the system's store and, when installed, certifi's (as httpx did)."""
    context = ssl.create_default_context()
    with contextlib.suppress(ImportError, OSError):
        import certifi

        context.load_verify_locations(certifi.where())
    return context


def _post(url: str, body: bytes, headers: dict[str, str], deadline: float,
          cancel: threading.Event | None) -> tuple[int, Any, bytes]:
    """POST `body`; (status, headers, body) of the answer, all of it by `deadline` or TimeoutError."""
    conn, target = _connection(url, deadline)
    try:
        conn.connect()  # connect (and TLS handshake) wait at most the time left
        raw, conn.sock = conn.sock, _DeadlineSocket(conn.sock, deadline, cancel)
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.headers, _read_body(response)
        finally:
            raw.close()
    finally:
        conn.close()


def _read_body(response: http.client.HTTPResponse) -> bytes:
    chunks, size = [], 0
    while chunk := response.read(65536):  # in pieces: a huge announced length is not allocated up front
        size += len(chunk)
        if size > MAX_BODY:
            raise http.client.HTTPException(f"response body over {MAX_BODY} bytes")
        chunks.append(chunk)
    if response.length:  # the server closed before the announced length (http.client returns b"" then)
        raise http.client.IncompleteRead(b"".join(chunks), response.length)
    return b"".join(chunks)


def _retry_after(headers: Any) -> float | None:
    try:
        return min(float(headers.get("retry-after", "")), 30.0)
    except ValueError:
        return None


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _parse_choices(data: bytes) -> list[Completion]:
    try:
        choices = json.loads(data)["choices"]  # bytes: JSON's own detection, a UTF-8 byte order mark allowed
        completions = [_choice_to_completion(choice) for choice in choices]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:  # ValueError: bad JSON or not UTF-8
        raise _Retryable(f"invalid response body ({type(exc).__name__})") from None
    if not completions:  # an empty answer must not loop forever in `_complete`
        raise _Retryable("invalid response body (no choices)")
    return completions


def _choice_to_completion(choice: dict[str, Any]) -> Completion:
    text = choice["message"]["content"] or ""
    if not isinstance(text, str):
        raise TypeError("message content is not a string")
    reason = choice.get("finish_reason") or "stop"
    stop = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
    return Completion(text=text, finish_reason="length" if reason == "length" else "stop", stop=stop)
