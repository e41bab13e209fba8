"""The OpenAI-compatible backend against a local fake server: retries, failure policy, secrets."""

from __future__ import annotations

import pytest

from fake_openai_server import FakeOpenAIServer
from fault_openai_server import FaultServer
from selfimprove.errors import ServerError
from selfimprove.models import SamplingParams, load_generator
from selfimprove.models.openai_backend import OpenAIGenerator

CONV = [{"role": "user", "content": "Capital of France?"}]


def make(server: FakeOpenAIServer, **options) -> OpenAIGenerator:
    defaults = {"backoff": 0.01, "timeout": 1.0, "max_retries": 3}
    return OpenAIGenerator("fake-model", server.url, **{**defaults, **options})


def test_returns_n_completions_and_sends_sampling_params():
    with FakeOpenAIServer() as server:
        gen = load_generator(f"openai:fake-model@{server.url}")
        out = gen.generate([CONV, CONV], SamplingParams(n=2, max_tokens=7, stop=("]",), seed=3, temperature=0.5))
    assert [[c.text for c in r] for r in out] == [["Paris 0", "Paris 1"]] * 2
    body = server.requests[0]["body"]
    assert (body["model"], body["n"], body["max_tokens"], body["stop"], body["seed"]) == ("fake-model", 2, 7, ["]"], 3)
    assert "top_k" not in body and "repetition_penalty" not in body  # off: not sent (OpenAI's API refuses them)


def test_top_k_and_repetition_penalty_are_sent_when_set():
    with FakeOpenAIServer() as server:
        gen = load_generator(f"openai:fake-model@{server.url}")
        gen.generate([CONV], SamplingParams(temperature=0.7, top_k=20, repetition_penalty=1.1))
    body = server.requests[0]["body"]
    assert (body["top_k"], body["repetition_penalty"]) == (20, 1.1)


@pytest.mark.parametrize("fault", ["500", "429", "badjson", "slow"])
def test_transient_faults_are_retried(fault):
    with FakeOpenAIServer([fault, fault]) as server:
        gen = make(server, timeout=0.5)
        out = gen.generate([CONV], SamplingParams())
    assert out[0][0].text == "Paris 0"
    assert gen.stats["retries"] == 2 and gen.stats["failures"] == 0


def test_gives_up_after_bounded_retries_with_clear_error():
    with FakeOpenAIServer(["500"] * 10) as server:
        gen = make(server, max_retries=2)
        with pytest.raises(ServerError, match="gave up after 3 attempts: HTTP 500"):
            gen.generate([CONV], SamplingParams())
    assert len(server.requests) == 3


def test_empty_failure_policy_keeps_going_and_counts():
    with FakeOpenAIServer(["500"] * 3) as server:
        gen = make(server, max_retries=2, on_failure="empty", concurrency=1)
        out = gen.generate([CONV, CONV], SamplingParams())
    assert out[0][0].finish_reason == "error" and out[0][0].text == ""
    assert out[1][0].text == "Paris 0"
    assert gen.stats["failures"] == 1


def test_unreachable_server_fails_fast_with_one_line():
    gen = OpenAIGenerator("m", "http://127.0.0.1:9/v1", backoff=0.01, max_retries=1)
    with pytest.raises(ServerError, match="cannot reach server"):
        gen.generate([CONV], SamplingParams())


def test_api_key_comes_from_env_and_is_never_in_repr(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    with FakeOpenAIServer() as server:
        gen = make(server, api_key_env="MY_KEY")
        gen.generate([CONV], SamplingParams())
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(gen) and "sk-secret" not in str(vars(gen))


def test_concurrency_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_OPENAI_CONCURRENCY", "64")
    assert OpenAIGenerator("m", "http://127.0.0.1:9/v1").concurrency == 64
    assert OpenAIGenerator("m", "http://127.0.0.1:9/v1", concurrency=3).concurrency == 3


def test_a_long_key_echoed_across_the_message_cut_is_still_redacted(monkeypatch):
    """Old bug 4 (a 4xx body echoing the key into the ServerError) re-checked with a long bearer token.

    The message keeps 200 characters of the body; it was cut before the key was redacted, so a key
    running past the cut (a JWT, ~1 000 characters) was no longer found and its first 170 leaked.
    """
    key = "sk-SENTINEL-" + "k" * 300
    monkeypatch.setenv("MY_KEY", key)
    with FaultServer(["echo400"]) as server:
        gen = make(server, api_key_env="MY_KEY")
        with pytest.raises(ServerError, match="HTTP 400") as raised:
            gen.generate([CONV], SamplingParams())
    assert "SENTINEL" not in str(raised.value) and "[redacted]" in str(raised.value)


class _BomServer(FakeOpenAIServer):
    """Puts a UTF-8 byte order mark before every JSON body (as some Windows/.NET proxies do)."""

    def _handler(self):
        base = super()._handler()

        class Handler(base):
            def _send(self, status, payload, headers=None):
                super()._send(status, b"\xef\xbb\xbf" + payload, headers)

        return Handler


def test_a_body_with_a_utf8_byte_order_mark_is_read():
    """Old bug 2 (a body that is not plain UTF-8 escaped as UnicodeDecodeError) re-checked on valid bodies.

    The fix decoded with strict "utf-8", which keeps a byte order mark, so JSON refused a valid
    answer and every attempt was retried to a ServerError; JSON's own detection reads it (RFC 8259
    lets a parser ignore the mark), and bytes that are not UTF-8 are still an invalid body.
    """
    with _BomServer() as server:
        gen = make(server)
        out = gen.generate([CONV], SamplingParams())
    assert out[0][0].text == "Paris 0" and gen.stats["retries"] == 0
