"""Benchmark: the project's OpenAI-compatible backend against the official `openai` client.

Three clients, each configured as well as it can be for the same job (N chat completions,
bounded concurrency, a timeout, bounded retries):
- `selfimprove`: `OpenAIGenerator(timeout=T, max_retries=R, concurrency=C)` (http.client, one
  total deadline per attempt, daemon threads, `call_scope` cancellation);
- `openai-sync`: `openai.OpenAI(timeout=openai.Timeout(T), max_retries=R)` on a
  `ThreadPoolExecutor(C)` (the usual way to fan the sync client out);
- `openai-async`: `openai.AsyncOpenAI(timeout=openai.Timeout(T), max_retries=R)`, an
  `asyncio.Semaphore(C)`, and each request wrapped in `asyncio.wait_for(..., T)`: the only way
  to put a TOTAL deadline on the official client (its `timeout` is per connect/read/write).

Scenarios, against the local fake/fault servers of tests/ (imported, not copied):
1. throughput: N=200 short completions at concurrency 16, requests/s, median of 3 runs, the
   server in its own process, once with the tests' HTTP/1.0 server (a connection per request) and
   once with an HTTP/1.1 keep-alive variant, TCP_NODELAY (where a connection pool can help; the
   project's backend still opens one connection per request); client CPU ms per request beside it;
2. trickle (1 byte / 0.3 s forever), 3. stall (accepts, never answers), 4. half-close (headers,
   then the server closes its side): one request, timeout=2 s, no retries: seconds until the
   client gives up (capped at 30 s: "still running" means no bound at all);
5. 429 then 500 (Retry-After: 1), then ok, retries=3: seconds, requests seen, gaps between them;
6. abandoning 16 requests to a stalled server (timeout 60 s): (a) in-process, seconds from the
   caller's cancel (call_scope event / pool shutdown + client.close() / task.cancel()) until every
   request has stopped; (b) Ctrl-C: seconds from SIGINT to the exit of a child process running
   the batch.
7. the four faults the project's backend once mishandled (`"choices": []`, a non-UTF-8 body, a
   numeric content, a 400 echoing a 309-character key): what each client returns, no retries.

    python benchmarks/bench_openai_client.py [--n 200] [--runs 3] [--cap 30]

Results: benchmarks/results/openai_client.{json,md}. Needs the `[openai]` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from fake_openai_server import FakeOpenAIServer  # noqa: E402
from fault_openai_server import FaultServer  # noqa: E402

# The stdlib server listens with a backlog of 5: 16 simultaneous connects would overflow it and
# wait out a 1 s SYN retransmission, which measures the kernel, not the clients.
ThreadingHTTPServer.request_queue_size = 128

CONV = [{"role": "user", "content": "Capital of France?"}]
CLIENTS = ("selfimprove", "openai-sync", "openai-async")


# ---------------------------------------------------------------- the three clients

def run_selfimprove(url: str, n: int, concurrency: int, timeout: float, retries: int,
                    cancel: threading.Event | None = None) -> list[str]:
    from selfimprove.models import SamplingParams
    from selfimprove.models.openai_backend import OpenAIGenerator, call_scope

    gen = OpenAIGenerator("m", url, timeout=timeout, max_retries=retries, concurrency=concurrency,
                          on_failure="empty", api_key_env="BENCH_NO_KEY")
    if cancel is None:
        out = gen.generate([CONV] * n, SamplingParams(max_tokens=8))
    else:
        with call_scope(cancel):
            out = gen.generate([CONV] * n, SamplingParams(max_tokens=8))
    return [c[0].text if c[0].finish_reason != "error" else "error" for c in out]


def _openai_one(client, _index: int) -> str:
    try:
        reply = client.chat.completions.create(model="m", messages=CONV, max_tokens=8)
        return reply.choices[0].message.content or ""
    except Exception as exc:  # noqa: BLE001 - recorded as the outcome
        return f"error: {type(exc).__name__}"


def run_openai_sync(url: str, n: int, concurrency: int, timeout: float, retries: int,
                    cancel: threading.Event | None = None) -> list[str]:
    import openai

    client = openai.OpenAI(base_url=url, api_key="x", timeout=openai.Timeout(timeout), max_retries=retries)
    pool = ThreadPoolExecutor(max_workers=concurrency)
    futures = [pool.submit(_openai_one, client, i) for i in range(n)]
    if cancel is not None:  # the most a caller can do: drop what has not started, close the client
        cancel.wait()
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()
    pool.shutdown(wait=True)
    return [f.result() if not f.cancelled() else "cancelled" for f in futures]


async def _openai_async(url: str, n: int, concurrency: int, timeout: float, retries: int,
                        cancel: threading.Event | None) -> list[str]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="x", timeout=openai.Timeout(timeout), max_retries=retries)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with gate:
            try:
                reply = await asyncio.wait_for(client.chat.completions.create(model="m", messages=CONV, max_tokens=8),
                                               timeout * (retries + 1) + 8.0 * retries)
                return reply.choices[0].message.content or ""
            except (Exception, asyncio.TimeoutError) as exc:  # noqa: BLE001 - recorded as the outcome
                return f"error: {type(exc).__name__}"

    batch = asyncio.gather(*(one() for _ in range(n)))
    if cancel is not None:
        while not cancel.is_set():
            await asyncio.sleep(0.01)
        batch.cancel()
    try:
        return await batch
    except asyncio.CancelledError:
        return ["cancelled"] * n
    finally:
        await client.close()


def run_openai_async(url: str, n: int, concurrency: int, timeout: float, retries: int,
                     cancel: threading.Event | None = None) -> list[str]:
    return asyncio.run(_openai_async(url, n, concurrency, timeout, retries, cancel))


RUNNERS: dict[str, Callable[..., list[str]]] = {"selfimprove": run_selfimprove, "openai-sync": run_openai_sync,
                                                "openai-async": run_openai_async}


# ---------------------------------------------------------------- helpers

def within(fn: Callable[[], object], cap: float) -> dict:
    """Run fn() in a daemon thread; seconds until it returns, or 'still running' after `cap`."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - recorded as the outcome
            box["value"] = [f"raised: {type(exc).__name__}: {str(exc)[:120]}"]

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(cap)
    if thread.is_alive():
        return {"seconds": None, "outcome": f"still running at the {cap:g} s cap", "thread": thread}
    outcome = box.get("value")
    return {"seconds": round(time.monotonic() - started, 2), "outcome": sorted(set(map(str, outcome or [])))}


class _KeepAlive(FakeOpenAIServer):
    """The tests' fake server speaking HTTP/1.1 with keep-alive (the tests' one closes each connection).

    TCP_NODELAY: the handler writes headers and body separately, and on a reused connection Nagle's
    algorithm would hold the body for the client's delayed ACK (~40 ms), penalising exactly the
    clients that reuse connections.
    """

    def _handler(self):
        handler = super()._handler()
        handler.protocol_version, handler.disable_nagle_algorithm = "HTTP/1.1", True
        return handler


class _RetryAfter(FaultServer):
    """The fault server, with Retry-After set to `retry_after` and the arrival time of each request kept."""

    def __init__(self, script: list[str], retry_after: str):
        super().__init__(script)
        self.retry_after, self.arrivals = retry_after, []

    def next_behaviour(self) -> str:
        self.arrivals.append(time.monotonic())
        return super().next_behaviour()

    def _handler(self):
        fake, base = self, super()._handler()

        class Handler(base):
            def _send(self, status, payload, headers=None):
                if headers and "Retry-After" in headers:
                    headers = {"Retry-After": fake.retry_after}
                return super()._send(status, payload, headers)

        return Handler


# ---------------------------------------------------------------- scenarios

def serve(keepalive: bool) -> None:
    """Child process: a fake server; prints its URL, serves until stdin closes."""
    with (_KeepAlive() if keepalive else FakeOpenAIServer()) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def throughput(n: int, runs: int) -> dict:
    out: dict = {}
    for label, keepalive in (("HTTP/1.0 server", False), ("HTTP/1.1 keep-alive server", True)):
        child = subprocess.Popen([sys.executable, __file__, "--serve"] + (["--keepalive"] if keepalive else []),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        url = child.stdout.readline().strip()
        try:
            for name in CLIENTS:
                rates, cpu, bad, problems = [], [], 0, set()
                RUNNERS[name](url, 16, 16, 10.0, 0)  # warm-up: imports, first connections
                for _ in range(runs):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    texts = RUNNERS[name](url, n, 16, 10.0, 0)
                    rates.append(n / (time.perf_counter() - started))
                    cpu.append(1000 * (time.process_time() - cpu_started) / n)
                    bad += sum(t != "Paris 0" for t in texts)
                    problems.update(t for t in texts if t != "Paris 0")
                out.setdefault(name, {})[label] = {"median_rps": round(statistics.median(rates), 1),
                                                   "runs_rps": [round(r, 1) for r in rates], "failed": bad,
                                                   "client_cpu_ms_per_request": round(statistics.median(cpu), 2),
                                                   "problems": sorted(problems)}
                print(f"throughput {label:28s} {name:13s} {statistics.median(rates):7.1f} req/s "
                      f"{statistics.median(cpu):5.2f} ms CPU/req  failed={bad} {sorted(problems)}",
                      flush=True)
        finally:
            child.stdin.close()
            child.wait(10)
    return out


def one_fault(fault: str, cap: float) -> dict:
    out = {}
    for name in CLIENTS:
        with FaultServer([fault] * 100, trickle_seconds=0.3) as server:
            result = within(lambda name=name, url=server.url: RUNNERS[name](url, 1, 1, 2.0, 0), cap)
            result.pop("thread", None)
            result["requests"] = len(server.requests)
        out[name] = result
        print(f"{fault:9s} {name:13s} {result['seconds']} s  {result['outcome']}", flush=True)
    return out


def retry_after(cap: float) -> dict:
    out = {}
    for name in CLIENTS:
        with _RetryAfter(["429", "500"], retry_after="1") as server:
            result = within(lambda name=name, url=server.url: RUNNERS[name](url, 1, 1, 5.0, 3), cap)
            result.pop("thread", None)
            result["requests"] = len(server.arrivals)
            result["gaps_s"] = [round(b - a, 2) for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
        out[name] = result
        print(f"retry-after {name:13s} {result}", flush=True)
    return out


OLD_BUGS = {"empty": '200 with {"choices": []}', "binary": "200 with a body that is not UTF-8",
            "badcontent": "200 with a numeric message content", "echo400": "400 whose body echoes a long API key"}
LONG_KEY = "sk-BENCH-" + "k" * 300  # long bearer tokens (JWTs) exist; the echo must not leak any of it


def old_bugs(cap: float) -> dict:
    """What each client returns for the four faults the project's backend once mishandled (no retries)."""
    out: dict = {}
    os.environ["BENCH_KEY"] = LONG_KEY
    for fault in OLD_BUGS:
        for name in CLIENTS:
            with FaultServer([fault] * 100) as server:
                result = within(lambda name=name, url=server.url: _one_with_key(name, url), cap)
                result.pop("thread", None)
                result["requests"] = len(server.requests)
                result["key_leaked"] = any("sk-BENCH-kkkk" in o for o in result["outcome"]) \
                    if isinstance(result["outcome"], list) else False
            out.setdefault(fault, {})[name] = result
            print(f"old bug {fault:10s} {name:13s} {result}", flush=True)
    return out


def _one_with_key(name: str, url: str) -> list[str]:
    """One request, no retries, the key in the Authorization header; the text or the full error message."""
    if name == "selfimprove":
        from selfimprove.models import SamplingParams
        from selfimprove.models.openai_backend import OpenAIGenerator

        gen = OpenAIGenerator("m", url, timeout=2.0, max_retries=0, api_key_env="BENCH_KEY")
        try:
            return [repr(gen.generate([CONV], SamplingParams())[0][0].text)]
        except Exception as exc:  # noqa: BLE001 - recorded as the outcome
            return [f"{type(exc).__name__}: {exc}"]
    import openai

    client_type = openai.OpenAI if name == "openai-sync" else openai.AsyncOpenAI
    client = client_type(base_url=url, api_key=LONG_KEY, timeout=openai.Timeout(2.0), max_retries=0)
    try:
        call = client.chat.completions.create(model="m", messages=CONV)
        reply = asyncio.run(call) if name == "openai-async" else call
        return [repr(reply.choices[0].message.content) if reply.choices else "no error, choices == []"]
    except Exception as exc:  # noqa: BLE001 - recorded as the outcome
        return [f"{type(exc).__name__}: {exc}"]


def cancel_in_process(cap: float, n: int = 16) -> dict:
    out = {}
    for name in CLIENTS:
        with FaultServer(["stall"] * 1000) as server:
            cancel = threading.Event()
            runner = threading.Thread(target=RUNNERS[name], args=(server.url, n, n, 60.0, 0, cancel), daemon=True)
            runner.start()
            while len(server.requests) < n and runner.is_alive():
                time.sleep(0.02)
            time.sleep(0.2)
            cancel.set()
            result = within(lambda: runner.join(), cap)  # noqa: B023 - joined right here
            result.pop("thread", None)
            result["outcome"] = "every request stopped" if result["seconds"] is not None else result["outcome"]
        out[name] = result
        print(f"cancel    {name:13s} {result}", flush=True)
    return out


def ctrl_c(cap: float, n: int = 16) -> dict:
    out = {}
    for name in CLIENTS:
        with FaultServer(["stall"] * 1000) as server:
            child = subprocess.Popen([sys.executable, __file__, "--child", name, server.url, str(n)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started = time.monotonic()
            while len(server.requests) < n and time.monotonic() - started < 20:
                time.sleep(0.02)
            time.sleep(0.2)
            child.send_signal(signal.SIGINT)
            sent = time.monotonic()
            try:
                child.wait(cap)
                result = {"seconds": round(time.monotonic() - sent, 2), "outcome": f"exited ({child.returncode})"}
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                result = {"seconds": None, "outcome": f"still running at the {cap:g} s cap (killed)"}
        out[name] = result
        print(f"ctrl-c    {name:13s} {result}", flush=True)
    return out


# ---------------------------------------------------------------- report

def cell(result: dict) -> str:
    return f"{result['seconds']:.2f} s" if result["seconds"] is not None else "**no bound** (still running at cap)"


def markdown(report: dict) -> str:
    lines = [f"# OpenAI-compatible clients: selfimprove vs the official `openai` ({report['openai_version']})", "",
             f"{report['date']}, {report['machine']}, load average {report['load']}; server and clients on one "
             "machine (the servers of tests/). Timings under load are noisy; the bounds are the point. "
             f"**no bound**: still running when the measurement stopped at the {report['cap_s']:g} s cap.", "",
             "| scenario | " + " | ".join(f"`{c}`" for c in CLIENTS) + " |", "|---|---|---|---|"]
    for label in ("HTTP/1.0 server", "HTTP/1.1 keep-alive server"):
        row = [f"{report['throughput'][c][label]['median_rps']} req/s, "
               f"{report['throughput'][c][label]['client_cpu_ms_per_request']} ms client CPU/req" for c in CLIENTS]
        lines.append(f"| throughput, N={report['n']}, concurrency 16, {label} (median of {report['runs']}) | "
                     + " | ".join(row) + " |")
    names = {"trickle": "trickle (1 byte / 0.3 s), timeout 2 s, no retries", "stall": "stall, timeout 2 s, no retries",
             "halfclose": "half-close after headers, timeout 2 s, no retries"}
    for fault, label in names.items():
        lines.append(f"| {label}: time to give up | " + " | ".join(cell(report[fault][c]) for c in CLIENTS) + " |")
    lines.append("| 429 then 500 with Retry-After: 1, then ok: time, requests, gaps | " + " | ".join(
        f"{cell(report['retry_after'][c])}, {report['retry_after'][c]['requests']} req, gaps "
        f"{report['retry_after'][c]['gaps_s']}" for c in CLIENTS) + " |")
    lines.append("| 16 stalled requests (timeout 60 s), cancelled in-process: until every request stopped | "
                 + " | ".join(cell(report["cancel"][c]) for c in CLIENTS) + " |")
    lines.append("| 16 stalled requests (timeout 60 s), Ctrl-C: SIGINT to process exit | "
                 + " | ".join(cell(report["ctrl_c"][c]) for c in CLIENTS) + " |")
    lines += ["", "The four faults the hand-written client once mishandled (one request, no retries; the key is "
              f"{len(LONG_KEY)} characters, as long bearer tokens are):", "",
              "| fault | " + " | ".join(f"`{c}`" for c in CLIENTS) + " |", "|---|---|---|---|"]
    for fault, label in OLD_BUGS.items():
        lines.append(f"| {label} | " + " | ".join(_bug_cell(report["old_bugs"][fault][c]) for c in CLIENTS) + " |")
    return "\n".join(lines) + "\n"


def _bug_cell(result: dict) -> str:
    text = "; ".join(result["outcome"]) if isinstance(result["outcome"], list) else result["outcome"]
    text = re.sub(r"http://127\.0\.0\.1:\d+/v1", "URL", text.replace(LONG_KEY, "<KEY>").replace("|", "/"))
    text = text[:110] + ("..." if len(text) > 110 else "")
    return ("**key leaked**: " if result["key_leaked"] else "") + f"`{text}`"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cap", type=float, default=30.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keepalive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.keepalive)
    if args.child:
        name, url, n = args.child
        RUNNERS[name](url, int(n), int(n), 60.0, 0)
        return None
    try:
        import openai
    except ImportError:
        sys.exit("error: this benchmark needs the official client: pip install 'selfimprove[openai]'")
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "openai_version": openai.__version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              "load": [round(x, 1) for x in os.getloadavg()], "n": args.n, "runs": args.runs, "cap_s": args.cap}
    report["throughput"] = throughput(args.n, args.runs)
    for fault in ("trickle", "stall", "halfclose"):
        report[fault] = one_fault(fault, args.cap)
    report["retry_after"] = retry_after(args.cap)
    report["cancel"] = cancel_in_process(args.cap)
    report["ctrl_c"] = ctrl_c(args.cap)
    report["old_bugs"] = old_bugs(args.cap)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openai_client.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "openai_client.md").write_text(markdown(report))
    print(markdown(report))
    return None


if __name__ == "__main__":
    main()
