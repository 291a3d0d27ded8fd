"""Batched inference against one input at a time, in the same run, for the tasks whose answers
used to be computed input by input: NER (token classification) and causal-LM generation.

    python bench/batching.py [--inputs 16] [--rounds 5]

NER: all-MiniLM-L6-v2 with a 9-tag head (random: speed does not depend on training), 16
sentences answered by one `Predictor.predict` call (one padded forward pass) vs 16 calls.
Causal LM: the tiny local Llama (the causal-LM example's), 16 prompts x 16 new tokens by one
`generate` call (left padding) vs 16. Prints per-call medians and the ratios.

Long requests: 256 hand-written reviews of mixed lengths (the sentiment example's sets) answered
by one `Predictor.predict` call, in passes of at most FORWARD_BATCH (64) grouped by length, what
the endpoint does, against one padded pass over all 256, what it did before.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ftray.inference  # noqa: E402
from ftray.inference import ModelFiles, Predictor  # noqa: E402
from ftray.models import load_task_model, load_tokenizer, quiet_transformers  # noqa: E402
from ftray.tiny_models import build_tiny_model  # noqa: E402

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def median_s(call: Callable[[], object], rounds: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def minilm_predictor(root: Path, task: str, labels: list[str]) -> Predictor:
    """all-MiniLM-L6-v2 with a fresh head for `task` (random: speed does not depend on it)."""
    directory = root / task
    model = load_task_model("all-MiniLM-L6-v2", task, labels)
    model.save_pretrained(directory)
    load_tokenizer("all-MiniLM-L6-v2").save_pretrained(directory)
    return Predictor.from_files(ModelFiles(directory, "full", task, labels, None))


def mixed_reviews(count: int) -> list[str]:
    data = ROOT / "examples/sentiment/data"
    texts = [
        json.loads(line)["text"]
        for name in ("long", "short", "blind", "challenge")
        for line in (data / f"{name}.jsonl").open()
    ]
    return [texts[(i * 37) % len(texts)] for i in range(count)]  # interleaved lengths


def long_request(predictor: Predictor, texts: list[str], rounds: int) -> dict:
    passes = median_s(lambda: predictor.predict(texts), rounds)
    chunk, ftray.inference.FORWARD_BATCH = ftray.inference.FORWARD_BATCH, len(texts)
    try:
        single = median_s(lambda: predictor.predict(texts), rounds)
    finally:
        ftray.inference.FORWARD_BATCH = chunk
    return {
        "task": "sequence-classification, one request",
        "inputs": len(texts),
        "one_padded_pass_ms": round(single * 1000, 1),
        f"passes_of_{chunk}_by_length_ms": round(passes * 1000, 1),
        "ratio": round(single / passes, 2),
    }


def lm_predictor(root: Path) -> tuple[Predictor, list[str]]:
    rows = [json.loads(line) for line in (ROOT / "examples/causal-lm/data/train.jsonl").open()]
    texts = [row["prompt"] + row["completion"] for row in rows]
    model = build_tiny_model(root / "llama", texts, "llama")
    predictor = Predictor.from_files(ModelFiles(model, "full", "causal-lm", [], None))
    return predictor, [row["prompt"] for row in rows]


def compare(name: str, predictor: Predictor, inputs: list[str], rounds: int, **options) -> dict:
    one = median_s(lambda: [predictor.predict([text], **options) for text in inputs], rounds)
    batch = median_s(lambda: predictor.predict(inputs, **options), rounds)
    return {
        "task": name,
        "inputs": len(inputs),
        "one_at_a_time_ms": round(one * 1000, 1),
        "batched_ms": round(batch * 1000, 1),
        "ratio": round(one / batch, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    quiet_transformers()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sentences = [
            f"Amara Okafor flew from Port Elsby to Kelderby on day {i}, said Ravi Szabo."
            for i in range(args.inputs)
        ]
        tagger = minilm_predictor(root, "token-classification", TAGS)
        print(json.dumps(compare("ner", tagger, sentences, args.rounds)))
        predictor, prompts = lm_predictor(root)
        prompts = (prompts * args.inputs)[: args.inputs]
        lm = compare("causal-lm", predictor, prompts, args.rounds, max_new_tokens=16)
        print(json.dumps(lm))
        classifier = minilm_predictor(root, "sequence-classification", ["neg", "pos"])
        print(json.dumps(long_request(classifier, mixed_reviews(256), args.rounds)))


if __name__ == "__main__":
    main()
