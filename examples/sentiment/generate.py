"""Generate seeded product and movie reviews labelled positive/negative, with a `group` field.

Reviews mix an opinion clause with neutral filler, negated opinions ("not worth it" is negative,
"not bad at all" positive) and contrast clauses whose last half decides the label, so the task
needs more than a keyword lookup. `--noise` flips a share of the training labels to exercise the
data checks and regularisation.

    python examples/sentiment/generate.py --out examples/sentiment/data
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

GROUPS = {
    "electronics": ["headphones", "charger", "keyboard", "monitor", "speaker", "router", "webcam"],
    "books": ["novel", "cookbook", "biography", "travel guide", "poetry collection", "textbook"],
    "kitchen": ["kettle", "frying pan", "blender", "knife set", "toaster", "coffee grinder"],
    "movies": ["film", "sequel", "documentary", "thriller", "comedy", "animated feature"],
}
ASPECTS = {
    "electronics": ["battery life", "sound", "build quality", "setup", "screen", "connection"],
    "books": ["writing", "plot", "pacing", "ending", "characters", "print quality"],
    "kitchen": ["handle", "finish", "heat control", "cleanup", "blade", "lid"],
    "movies": ["acting", "script", "soundtrack", "ending", "camera work", "dialogue"],
}
GOOD = [
    "excellent",
    "wonderful",
    "superb",
    "reliable",
    "impressive",
    "delightful",
    "solid",
    "fantastic",
    "well made",
    "a pleasure to use",
]
BAD = [
    "terrible",
    "awful",
    "flimsy",
    "disappointing",
    "useless",
    "dreadful",
    "poorly made",
    "a letdown",
    "frustrating",
    "cheap feeling",
]
GOOD_VERDICTS = [
    "I would buy it again",
    "worth every penny",
    "highly recommended",
    "I keep coming back to it",
    "five stars from me",
    "it exceeded my expectations",
]
BAD_VERDICTS = [
    "I want my money back",
    "a waste of money",
    "I would not recommend it",
    "I returned it within a week",
    "one star from me",
    "it fell short in every way",
]
FILLER = [
    "I got it as a gift for my {who}.",
    "It arrived on a {day}.",
    "I had read a few reviews before ordering.",
    "We have had it for {n} weeks now.",
    "My {who} picked it out.",
    "It came in a plain box.",
]
WHO = ["sister", "neighbour", "father", "colleague", "flatmate", "grandmother"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def opinion(rng: random.Random, group: str, positive: bool) -> str:
    item, aspect = rng.choice(GROUPS[group]), rng.choice(ASPECTS[group])
    good, bad = rng.choice(GOOD), rng.choice(BAD)
    verdict = rng.choice(GOOD_VERDICTS if positive else BAD_VERDICTS)
    shapes = [
        f"The {item} is {good if positive else bad}.",
        f"The {aspect} is {good if positive else bad}, {verdict}.",
        # Negation flips the surface word.
        f"The {aspect} is not {bad if positive else good} at all.",
        # Contrast: the clause after "but" carries the verdict.
        f"The {aspect} is {bad if positive else good}, but overall the {item} is "
        f"{good if positive else bad}.",
        f"{verdict.capitalize()}; the {item} is {good if positive else bad}.",
    ]
    return rng.choice(shapes)


def review(rng: random.Random, group: str, positive: bool) -> str:
    parts = [opinion(rng, group, positive)]
    if rng.random() < 0.6:
        filler = rng.choice(FILLER).format(
            who=rng.choice(WHO), day=rng.choice(DAYS), n=rng.randint(2, 9)
        )
        parts.insert(rng.randint(0, 1), filler)
    return " ".join(parts)


def generate(count: int, seed: int, noise: float) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        group = rng.choice(list(GROUPS))
        positive = rng.random() < 0.5
        label = positive if rng.random() >= noise else not positive
        rows.append(
            {
                "text": review(rng, group, positive),
                "label": "positive" if label else "negative",
                "group": group,
            }
        )
    return rows


def held_out(rows: list[dict], seen: list[dict]) -> list[dict]:
    """Validation rows whose text appears neither in `seen` (train) nor earlier in `rows`."""
    taken = {r["text"].lower() for r in seen}
    kept = []
    for row in rows:
        if row["text"].lower() not in taken:
            taken.add(row["text"].lower())
            kept.append(row)
    return kept


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--train", type=int, default=1600)
    parser.add_argument("--validation", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.02, help="share of flipped train labels")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    train = generate(args.train, args.seed, args.noise)
    validation = held_out(generate(args.validation * 2, args.seed + 1, 0.0), train)[
        : args.validation
    ]
    write_jsonl(train, args.out / "train.jsonl")
    write_jsonl(validation, args.out / "validation.jsonl")


if __name__ == "__main__":
    main()
