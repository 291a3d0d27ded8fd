"""Generate seeded instruction/completion pairs and a tiny Llama-architecture model to tune on them.

The tasks (reverse a word list, name the colour of a fruit, count items, continue a weekday) are
small enough for a few-hundred-thousand-parameter model to learn on a CPU in seconds. The model is
randomly initialised from a config and gets a byte-level BPE tokenizer trained on this data, so
nothing is downloaded; it is written to `model/` and is not committed.

    python examples/causal-lm/generate.py --out examples/causal-lm
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

COLOURS = {
    "banana": "yellow",
    "lime": "green",
    "cherry": "red",
    "plum": "purple",
    "orange": "orange",
    "blueberry": "blue",
    "lemon": "yellow",
    "kiwi": "green",
}
WORDS = ["red", "blue", "green", "stone", "river", "cloud", "lamp", "seed", "wolf", "pine"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def pair(rng: random.Random) -> dict:
    kind = rng.choice(["reverse", "colour", "count", "weekday"])
    if kind == "reverse":
        words = rng.sample(WORDS, 3)
        return {
            "prompt": f"Reverse: {' '.join(words)}\nAnswer:",
            "completion": " " + " ".join(reversed(words)),
            "group": kind,
        }
    if kind == "colour":
        fruit = rng.choice(list(COLOURS))
        return {
            "prompt": f"Colour of {fruit}?\nAnswer:",
            "completion": f" {COLOURS[fruit]}",
            "group": kind,
        }
    if kind == "count":
        n = rng.randint(1, 6)
        return {
            "prompt": f"Count: {' '.join(['dot'] * n)}\nAnswer:",
            "completion": f" {NUMBERS[n]}",
            "group": kind,
        }
    day = rng.randrange(7)
    return {
        "prompt": f"Day after {DAYS[day]}?\nAnswer:",
        "completion": f" {DAYS[(day + 1) % 7]}",
        "group": kind,
    }


def generate(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [pair(rng) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--validation", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-model", action="store_true", help="write the data only")
    args = parser.parse_args()
    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": generate(args.train, args.seed),
        "validation": generate(args.validation, args.seed + 1),
    }
    for name, rows in splits.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if not args.no_model:
        from ftray.tiny_models import build_tiny_model

        texts = [r["prompt"] + r["completion"] for r in splits["train"]]
        build_tiny_model(args.out / "model", texts, architecture="llama", hidden_size=64, layers=2)


if __name__ == "__main__":
    main()
