"""Generate seeded sentences with word-level BIO tags for PER, ORG, LOC and MISC entities.

Names are assembled from invented parts, so entities must be recognised from context and shape
rather than memorised; a `group` field (news, sports, business) allows per-slice metrics.

    python examples/ner/generate.py --out examples/ner/data
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

FIRST = [
    "Amara",
    "Tobias",
    "Ilse",
    "Ravi",
    "Noor",
    "Caspian",
    "Liesel",
    "Mateo",
    "Yuki",
    "Oskar",
    "Zanele",
    "Henrik",
    "Priya",
    "Dario",
    "Elodie",
    "Kwame",
]
LAST = [
    "Vandermolen",
    "Okafor",
    "Lindqvist",
    "Marchetti",
    "Havel",
    "Nakashima",
    "Brennan",
    "Szabo",
    "Achterberg",
    "Quispe",
    "Delacroix",
    "Mbeki",
    "Rasmussen",
    "Ferreira",
]
ORG_HEAD = [
    "Northwind",
    "Bluepeak",
    "Silverline",
    "Greystone",
    "Orchid",
    "Harbor",
    "Quantix",
    "Redfern",
    "Lumen",
    "Copperfield",
]
ORG_TAIL = [
    "Analytics",
    "Foods",
    "Motors",
    "Bank",
    "Institute",
    "Labs",
    "Rovers",
    "United",
    "Logistics",
    "Press",
]
LOC = [
    "Port Elsby",
    "Varnholm",
    "Castellane",
    "New Tarrow",
    "Mirabel",
    "Ostrava Flats",
    "Kelderby",
    "Santa Ruela",
    "Brightwater",
    "Lake Imara",
]
MISC = [
    "Winter Cup",
    "Harvest Festival",
    "Tarrowian",
    "Open Series",
    "Lumen Prize",
    "Varnish",
    "Silver Marathon",
    "Coastal Derby",
]

TEMPLATES = {
    "news": [
        "{PER} arrived in {LOC} on Tuesday .",
        "Officials in {LOC} met {PER} to discuss the {MISC} .",
        "{PER} , a spokesperson for {ORG} , declined to comment .",
        "Residents of {LOC} welcomed the {MISC} for the third year .",
    ],
    "sports": [
        "{PER} scored twice as {ORG} beat the visitors in {LOC} .",
        "The {MISC} final will be held in {LOC} next month .",
        "{ORG} signed {PER} ahead of the {MISC} .",
        "{PER} finished second behind {PER} at the {MISC} .",
    ],
    "business": [
        "{ORG} opened a new office in {LOC} , said {PER} .",
        "Shares of {ORG} rose after the {MISC} announcement .",
        "{PER} will lead the {LOC} division of {ORG} from June .",
        "{ORG} and {ORG} agreed to merge their {LOC} operations .",
    ],
}


def entity(rng: random.Random, kind: str) -> str:
    if kind == "PER":
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.7 else rng.choice(LAST)
    if kind == "ORG":
        return f"{rng.choice(ORG_HEAD)} {rng.choice(ORG_TAIL)}"
    return rng.choice(LOC if kind == "LOC" else MISC)


def sentence(rng: random.Random, group: str) -> dict:
    tokens: list[str] = []
    tags: list[str] = []
    for piece in re.split(r"(\{[A-Z]+\})", rng.choice(TEMPLATES[group])):
        if piece.startswith("{"):
            kind = piece[1:-1]
            words = entity(rng, kind).split()
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            words = piece.split()
            tokens += words
            tags += ["O"] * len(words)
    return {"tokens": tokens, "tags": tags, "group": group}


def generate(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [sentence(rng, rng.choice(list(TEMPLATES))) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--validation", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train = generate(args.train, args.seed)
    seen = {" ".join(r["tokens"]) for r in train}
    validation = []
    for row in generate(args.validation * 3, args.seed + 1):  # held out: unseen sentences only
        text = " ".join(row["tokens"])
        if text not in seen and len(validation) < args.validation:
            seen.add(text)
            validation.append(row)
    for name, rows in (("train", train), ("validation", validation)):
        (args.out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
