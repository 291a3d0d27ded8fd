"""Serving overhead and dynamic batching, measured in one run on the same inputs.

    python bench/serve.py [--requests 300] [--seconds 15] [--clients 16]

A LoRA version of all-MiniLM-L6-v2 (sentiment head; speed does not depend on its values) is
registered in a temporary local registry and served on 127.0.0.1 by `serving.launch.serving`.

Three paths, each in a Ray session started as `ftray serve` starts it:
- haproxy: Serve's HAProxy ingress (with the throughput-optimised data plane), what `ftray serve`
  uses with one replica, its default;
- direct: straight to the replica's own HTTP port (Serve's direct ingress), same session;
- proxy: Serve's Python proxy, what `ftray serve --replicas N` uses (another Ray session).

- Latency: one client sends one-sentence `/v1/predict` requests over a kept-alive connection;
  the baseline calls the same version's `Predictor` in this process with the replica's torch
  thread count. Target: p50 via the default path <= 1.2x the in-process p50.
- Throughput: `--clients` concurrent clients for `--seconds`, through each path, with dynamic
  batching (max_batch_size 16) and without (max_batch_size 1), for one-sentence requests and for
  five-sentence reviews. Ratio target >= 3 on the default path; inputs per forward are printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ftray.artefacts import register_output  # noqa: E402
from ftray.inference import Predictor  # noqa: E402
from ftray.models import load_task_model, load_tokenizer  # noqa: E402
from ftray.runs import RESULT_FILE  # noqa: E402
from ftray.runtime import ray_runtime  # noqa: E402
from ftray.strategies import get_strategy  # noqa: E402
from registry import Registry  # noqa: E402
from serving.launch import replica_urls, serving  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
LABELS = ["negative", "positive"]
SENTENCES = [
    f"The {thing} was {quality}, and I would {verdict} it to a friend."
    for thing in ("kettle", "novel", "sequel", "blender", "headset", "thriller")
    for quality in ("superb", "dreadful", "fine", "a letdown")
    for verdict in ("recommend", "never recommend")
]
# A review of five sentences (~90 tokens): long enough that the model, not HTTP, is the work.
PARAGRAPHS = [" ".join(SENTENCES[i : i + 5]) for i in range(0, len(SENTENCES) - 5)]


def register_lora(
    root: Path,
    registry: Registry,
    task: str = "sequence-classification",
    labels: list[str] = LABELS,
    name: str = "bench",
) -> str:
    """A LoRA version of MODEL for `task` (untrained: speed does not depend on its values)."""
    torch.manual_seed(0)
    strategy = get_strategy("adapter")
    model = strategy.apply(load_task_model(MODEL, task, labels), strategy.config_type(), task)
    out = root / name
    model.save_pretrained(out)
    load_tokenizer(MODEL).save_pretrained(out)
    spec = {"model": {"name": MODEL, "task": task}}
    result = {"task": task, "strategy": "adapter", "labels": labels}
    (out / RESULT_FILE).write_text(json.dumps(result | {"spec": spec}))
    return register_output(registry, out, name).ref


class Client:
    """One kept-alive HTTP connection, as a real client (or the openai SDK) would hold."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)

    def predict(self, ref: str, text: str) -> dict:
        body = json.dumps({"model": ref, "inputs": [text]})
        self.connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {payload[:200]!r}")
        return json.loads(payload)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def timed(call, texts: list[str]) -> list[float]:
    for text in texts[:20]:  # warm-up
        call(text)
    times = []
    for text in texts:
        start = time.perf_counter()
        call(text)
        times.append(time.perf_counter() - start)
    return times


def throughput(url: str, ref: str, texts: list[str], clients: int, seconds: float) -> float:
    """Inputs answered per second by `clients` clients sending back-to-back requests."""
    counts = [0] * clients
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def loop(index: int) -> None:
        client = Client(url)
        try:
            while time.perf_counter() < deadline:
                client.predict(ref, texts[(index + counts[index]) % len(texts)])
                counts[index] += 1
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    Client(url).predict(ref, texts[0])  # the version is loaded before the clock starts
    start = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[0]}")
    return sum(counts) / (time.perf_counter() - start)


def replica_stats() -> dict:
    from ray import serve

    return serve.get_deployment_handle("endpoint", app_name="ftray").stats.remote().result()


def under_load(url: str, ref: str, texts: list[str], args: argparse.Namespace) -> dict:
    """Throughput, and inputs per forward pass in the model replica, under `args.clients`."""
    before = replica_stats()
    rate = throughput(url, ref, texts, args.clients, args.seconds)
    after = replica_stats()
    batches = max(1, after["batches"] - before["batches"])
    return {
        "rate": rate,
        "batch": (after["batched_inputs"] - before["batched_inputs"]) / batches,
    }


# Where each path is measured: Serve's Python proxy needs a Ray session without HAProxy ingress,
# which is what `ftray serve` uses with one replica (its default) and several in front of it.
SESSIONS = {False: ("proxy",), True: ("haproxy", "direct")}
DEFAULT_PATH = "haproxy"


def measure_paths(ref: str, options: dict, texts: list[str], args: argparse.Namespace):
    """Latency (batching on) and throughput (on and off) through each path, one Ray session per
    ingress; also the replica's torch thread count, for the in-process baseline."""
    inputs = {"sentence": SENTENCES, "paragraph": PARAGRAPHS}
    served: dict[str, list[float]] = {}
    runs: dict[tuple[str, str, int], dict] = {}
    threads = 1
    for haproxy, paths in SESSIONS.items():
        with ray_runtime(haproxy=haproxy):
            for size in (16, 1):
                with serving([ref], max_batch_size=size, **options) as url:
                    urls = {"proxy": url, "haproxy": url, "direct": replica_urls()[0]}
                    for path in paths:
                        if size == 16:
                            served[path] = timed(partial(Client(urls[path]).predict, ref), texts)
                            threads = replica_stats()["torch_threads"]
                        for kind, samples in inputs.items():
                            runs[path, kind, size] = under_load(urls[path], ref, samples, args)
    return served, runs, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=1.0)
    args = parser.parse_args()
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(args.requests)]
    with tempfile.TemporaryDirectory() as root:
        registry = Registry.open(str(Path(root) / "registry"))
        ref = register_lora(Path(root), registry)
        options = {
            "registry": registry.uri,
            "port": 8130,
            "poll_interval_s": 0,
            "batch_wait_ms": args.batch_wait_ms,
        }
        served, runs, threads = measure_paths(ref, options, texts, args)
        torch.set_num_threads(threads)
        predictor = Predictor.from_registry(registry, ref)
        local = timed(lambda text: predictor.predict([text]), texts)
    local_p50, local_p99 = percentiles(local)
    print(f"model: {MODEL} + LoRA, {threads} torch thread(s) in the replica and in-process")
    print(f"latency, one sentence, in-process: p50 {local_p50:.1f} ms, p99 {local_p99:.1f} ms")
    for path, times in served.items():
        p50, p99 = percentiles(times)
        default = " (ftray serve's default)" if path == DEFAULT_PATH else ""
        print(
            f"latency, one sentence, /v1/predict via {path}{default}: p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, p50 {p50 / local_p50:.2f}x in-process "
            f"(+{p50 - local_p50:.1f} ms; target <= 1.2x on the default path)"
        )
    for path, kind, size in runs:
        if size == 1:
            continue
        batched, single = runs[path, kind, 16], runs[path, kind, 1]
        print(
            f"throughput via {path}, {args.clients} clients, one {kind} per request: batching "
            f"{batched['rate']:.1f} inputs/s ({batched['batch']:.1f} inputs a forward), "
            f"max_batch_size=1 {single['rate']:.1f} inputs/s, "
            f"ratio {batched['rate'] / single['rate']:.2f} (target >= 3 on the default path)"
        )


if __name__ == "__main__":
    main()
