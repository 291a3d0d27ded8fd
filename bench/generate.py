"""Generation through the served endpoint: 16 concurrent completion requests (batched into one
`generate` call by the replica) against the same 16 one at a time, and time to first token.

    python bench/generate.py [--clients 16] [--max-tokens 16] [--rounds 3]

The causal-LM example's tiny Llama (random weights: speed does not depend on training),
registered in a temporary local registry and served by `ftray serve`'s application on
127.0.0.1, asked through the official `openai` client over HTTP at temperature 0. Throughput
is completion tokens per second of wall time; time to first token is from sending a streamed
request to its first content chunk, for 16 streams at once (p50) and for one alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai import OpenAI  # noqa: E402

from ftray.artefacts import register_output  # noqa: E402
from ftray.runs import RESULT_FILE  # noqa: E402
from ftray.tiny_models import build_tiny_model  # noqa: E402
from registry import Registry  # noqa: E402
from serving.launch import serving  # noqa: E402

EXAMPLE = ROOT / "examples" / "causal-lm" / "data" / "train.jsonl"


def register_tiny_llama(root: Path, registry: Registry) -> str:
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    model = build_tiny_model(
        root / "llama", [r["prompt"] + r["completion"] for r in rows], "llama", hidden_size=64
    )
    spec = {"model": {"name": str(model), "task": "causal-lm"}}
    result = {"task": "causal-lm", "strategy": "full", "labels": [], "spec": spec}
    (model / RESULT_FILE).write_text(json.dumps(result))
    return register_output(registry, model, "gen").ref


def complete(client: OpenAI, ref: str, prompt: str, max_tokens: int) -> int:
    answer = client.completions.create(
        model=ref, prompt=prompt, max_tokens=max_tokens, temperature=0
    )
    assert answer.usage is not None
    return answer.usage.completion_tokens


def first_token_s(client: OpenAI, ref: str, prompt: str, max_tokens: int) -> float:
    started = time.perf_counter()
    stream = client.completions.create(
        model=ref, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True
    )
    first = None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].text:
            first = time.perf_counter() - started
    return first if first is not None else float("nan")


def measure(client: OpenAI, ref: str, prompts: list[str], max_tokens: int) -> dict[str, float]:
    started = time.perf_counter()
    alone = sum(complete(client, ref, p, max_tokens) for p in prompts)
    sequential_s = time.perf_counter() - started
    with ThreadPoolExecutor(len(prompts)) as pool:
        started = time.perf_counter()
        together = sum(pool.map(lambda p: complete(client, ref, p, max_tokens), prompts))
        concurrent_s = time.perf_counter() - started
        ttft = list(pool.map(lambda p: first_token_s(client, ref, p, max_tokens), prompts))
    return {
        "one_at_a_time_tokens_per_s": alone / sequential_s,
        "concurrent_tokens_per_s": together / concurrent_s,
        "ttft_p50_concurrent_s": statistics.median(ttft),
        "ttft_alone_s": first_token_s(client, ref, prompts[0], max_tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8311)
    args = parser.parse_args()
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    prompts = [r["prompt"] for r in rows[: args.clients]]
    with tempfile.TemporaryDirectory(prefix="ftray-generate-") as scratch:
        registry = Registry.open(str(Path(scratch) / "registry"))
        ref = register_tiny_llama(Path(scratch), registry)
        with serving([ref], registry=registry.uri, port=args.port) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            measure(client, ref, prompts[:2], args.max_tokens)  # warm-up
            rounds = [measure(client, ref, prompts, args.max_tokens) for _ in range(args.rounds)]
    figures = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    ratio = figures["concurrent_tokens_per_s"] / figures["one_at_a_time_tokens_per_s"]
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}, indent=1))
    print(f"batched (concurrent) / one at a time, completion tokens/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
