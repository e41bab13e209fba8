"""A Generator over any OpenAI-compatible chat server (vLLM serve, llama.cpp server, hosted APIs).

Requests run concurrently (bounded by `concurrency`, default $SELFIMPROVE_OPENAI_CONCURRENCY or 16,
so a high-concurrency vLLM server can be used from any command), each with a timeout; timeouts, connection
errors, 429s, 5xx answers and invalid JSON are retried with exponential backoff (honouring
Retry-After) up to `max_retries` times. After that the `on_failure` policy applies: "raise"
(a ServerError naming the server and the last problem) or "empty" (a Completion with
finish_reason "error" and empty text, counted in `stats["failures"]`). The API key is read from
the environment variable `api_key_env` at call time and never stored in logs or reprs.
Token ids are not available from this backend.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from selfimprove.errors import ServerError
from selfimprove.models.generator import Completion, Conversation, SamplingParams

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible server."""

    def __init__(self, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 max_retries: int = 3, backoff: float = 0.5, concurrency: int | None = None, on_failure: str = "raise"):
        if on_failure not in ("raise", "empty"):
            raise ValueError("on_failure must be 'raise' or 'empty'")
        self.model, self.base_url = model, base_url.rstrip("/")
        self.name = f"openai:{model}@{self.base_url}"
        self.api_key_env, self.timeout = api_key_env, timeout
        self.max_retries, self.backoff = max_retries, backoff
        self.concurrency = concurrency or int(os.environ.get("SELFIMPROVE_OPENAI_CONCURRENCY", "16"))
        self.on_failure = on_failure
        self.stats = {"requests": 0, "retries": 0, "failures": 0}
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAIGenerator(model={self.model!r}, base_url={self.base_url!r})"

    def generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        if len(conversations) <= 1 or self.concurrency <= 1:
            return [self._complete(conv, params) for conv in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda conv: self._complete(conv, params), conversations))

    def _complete(self, conversation: Conversation, params: SamplingParams) -> list[Completion]:
        completions: list[Completion] = []
        while len(completions) < params.n:
            try:
                completions.extend(self._request_with_retries(conversation, params, params.n - len(completions)))
            except ServerError:
                self._count("failures")
                if self.on_failure == "raise":
                    raise
                completions.extend(Completion(text="", finish_reason="error") for _ in range(params.n - len(completions)))
        return completions[: params.n]

    def _request_with_retries(self, conversation: Conversation, params: SamplingParams, n: int) -> list[Completion]:
        problem = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            try:
                return self._request(conversation, params, n)
            except _Retryable as exc:
                problem = str(exc)
                if attempt < self.max_retries:
                    time.sleep(exc.retry_after if exc.retry_after is not None else self.backoff * 2**attempt)
        raise ServerError(f"{self.base_url}: gave up after {self.max_retries + 1} attempts: {problem}")

    def _request(self, conversation: Conversation, params: SamplingParams, n: int) -> list[Completion]:
        self._count("requests")
        try:
            response = self._client.post(f"{self.base_url}/chat/completions", json=self._payload(conversation, params, n),
                                         headers=self._headers())
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {self.timeout}s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach server ({type(exc).__name__}: {exc})") from None
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        if response.status_code >= 400:
            body = _redact(response.text[:200], os.environ.get(self.api_key_env))  # a server may echo the key
            raise ServerError(f"{self.base_url}: HTTP {response.status_code}: {body}")
        return _parse_choices(response)

    def _payload(self, conversation: Conversation, params: SamplingParams, n: int) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": conversation, "n": n,
                                   "max_tokens": params.max_tokens, "temperature": params.temperature,
                                   "top_p": params.top_p}
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        return payload

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers.get("retry-after", "")), 30.0)
    except ValueError:
        return None


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _parse_choices(response: httpx.Response) -> list[Completion]:
    try:
        choices = response.json()["choices"]
        completions = [_choice_to_completion(choice) for choice in choices]
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # ValueError: bad JSON or not UTF-8
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
