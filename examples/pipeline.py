"""The whole pipeline on embedded defaults: train, register, serve, ask, shut down.

    python examples/pipeline.py [--port 8000]          (`make demo` sets up and runs this)

The bundled all-MiniLM-L6-v2 fully fine-tuned over examples/sentiment (mean-pooled, as the
checkpoint was trained) by two Ray Train workers under DeepSpeed (ZeRO-0) on a local Ray instance;
the best checkpoint registered as `sentiment` in the local registry (~/.ftray/registry, or
$FTRAY_REGISTRY) with the alias `production`; served by Ray Serve on 127.0.0.1; asked about
reviews it has never seen, then scored through the endpoint on the 171 hand-written reviews of
examples/sentiment/data/challenge.jsonl; shut down.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ftray import load_spec, train
from ftray.runtime import ray_runtime
from serving.client import predict
from serving.launch import serving

EXAMPLES = Path(__file__).resolve().parent
JOB = EXAMPLES / "sentiment" / "job.yaml"
CHALLENGE = EXAMPLES / "sentiment" / "data" / "challenge.jsonl"
sys.path.insert(0, str(EXAMPLES))
from served_scores import served_scores  # noqa: E402  (a sibling script, not a package)

REVIEWS = [
    "The blender is brilliant: quiet, quick and easy to clean.",
    "The headphones broke after two days and support never answered.",
    "A gripping novel with characters I still think about.",
    "The film dragged on forever and the ending made no sense.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    console = Console(stderr=True)
    started = time.time()
    spec = load_spec(JOB, ["registry.register_as=sentiment", "registry.aliases=[production]"])
    # One local Ray for training and serving; one replica, so HAProxy ingress as `ftray serve`.
    with ray_runtime(haproxy=True):
        result = train(spec)
        registered = result.registered
        validation, test = result.metrics, result.test_metrics
        console.print(
            f"[bold]registered[/] {registered['ref']} (alias production) in "
            f"{registered['registry']}\n"
            f"  validation (generated, {result.validation_examples} reviews): accuracy "
            f"{validation['accuracy']:.3f}, f1 {validation['f1']:.3f}\n"
            f"  test (hand-written, {result.test_examples} reviews):  accuracy "
            f"{test['accuracy']:.3f}, f1 {test['f1']:.3f}"
        )
        with serving(["sentiment@production"], port=args.port) as url:
            console.print(f"[bold]serving[/] sentiment@production at {url}")
            answer = predict(url, "sentiment@production", REVIEWS)
            served = served_scores(url, "sentiment@production", CHALLENGE)
    table = Table(title=f"POST {url}/v1/predict -> {answer['model']}")
    table.add_column("review")
    table.add_column("label")
    table.add_column("score", justify="right")
    for review, output in zip(REVIEWS, answer["outputs"], strict=True):
        table.add_row(review, output["label"], f"{output['scores'][output['label']]:.3f}")
    Console().print(table)
    console.print(
        f"through the endpoint, on the {served['rows']} hand-written reviews: "
        f"accuracy {served['accuracy']:.3f}"
    )
    console.print(f"pipeline done in {time.time() - started:.0f} s; the endpoint is shut down")
    console.print(
        "next:\n  ftray predict --local sentiment@production 'your review'\n"
        "  ftray eval sentiment@production YOURS.jsonl  # fields: text, label\n"
        "  ftray serve sentiment@production",
        highlight=False,
    )


if __name__ == "__main__":
    main()
