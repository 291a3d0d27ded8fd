"""Packed against padded training, in the same run, on a length distribution with a long tail.

    python bench/packing.py [--examples 1200] [--hidden 128]

The training loop (`ftray.local`, one worker, no Ray) on generated prompt/completion rows:
80% short (4-16 words), 20% long (60-160 words), a tiny Llama (built from a config, with a
tokenizer trained on the rows) at max_length 256. Padded: 16 examples a step, each batch padded
to its longest. Packed (`train.packing`): rows of up to 256 tokens, 4 a step (about as many
real tokens a step). The figure is real (non-padding) tokens trained per second of steady-state
step time; both runs train the same tokens for one epoch.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftray.local import run_local  # noqa: E402
from ftray.models import load_tokenizer  # noqa: E402
from ftray.spec import spec_from_dict  # noqa: E402
from ftray.tiny_models import build_tiny_model  # noqa: E402

WORDS = [
    "river",
    "stone",
    "cloud",
    "lamp",
    "seed",
    "wolf",
    "pine",
    "amber",
    "field",
    "harbour",
    "night",
    "window",
    "garden",
]


def rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = rng.randint(60, 160) if rng.random() < 0.2 else rng.randint(4, 16)
        text = " ".join(rng.choice(WORDS) for _ in range(words))
        out.append({"prompt": "Echo:", "completion": " " + text})
    return out


def write(path: Path, data: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return str(path)


def run(directory: Path, model: Path, packing: bool, batch_size: int) -> dict:
    spec = spec_from_dict(
        {
            "name": "packing-bench",
            "model": {"name": str(model), "task": "causal-lm", "max_length": 256},
            "data": {
                "train": str(directory / "train.jsonl"),
                "validation": str(directory / "validation.jsonl"),
            },
            "strategy": {"kind": "full"},
            "train": {
                "epochs": 1,
                "batch_size": batch_size,
                "packing": packing,
                "early_stopping": {"patience": 0},
            },
            "scaling": {"num_workers": 1},
            "checkpoint": {"storage_path": str(directory / "runs")},
        }
    )
    [report] = run_local(spec, directory / ("packed" if packing else "padded"))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1200)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftray-packing-") as scratch:
        directory = Path(scratch)
        train = rows(args.examples, 0)
        write(directory / "train.jsonl", train)
        write(directory / "validation.jsonl", rows(32, 1))
        texts = [r["prompt"] + r["completion"] for r in train]
        model = build_tiny_model(directory / "model", texts, "llama", hidden_size=args.hidden)
        tokenizer = load_tokenizer(str(model))
        tokens = sum(min(256, len(tokenizer(t)["input_ids"]) + 1) for t in texts)
        figures = {}
        for name, packing, batch in (("padded", False, 16), ("packed", True, 4)):
            report = run(directory, model, packing, batch)
            seconds = report["step_time_s"] * report["step"]
            figures[name] = {
                "steps": report["step"],
                "step_time_s": round(report["step_time_s"], 4),
                "tokens_per_s": round(tokens / seconds),
            }
    ratio = figures["packed"]["tokens_per_s"] / figures["padded"]["tokens_per_s"]
    print(json.dumps({"examples": args.examples, "real_tokens": tokens, **figures}, indent=1))
    print(f"packed / padded tokens/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
