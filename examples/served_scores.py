"""Score a served model on a labelled file through the HTTP endpoint, as a client would see it.

    python examples/served_scores.py sentiment@production examples/sentiment/data/challenge.jsonl
    python examples/served_scores.py ner@latest examples/ner/data/challenge.jsonl

Starts `ftray serve` for the reference on 127.0.0.1 (or uses --url), sends the rows through
`POST /v1/predict`, and prints accuracy (classification) or entity-level
precision/recall/F1 (NER: the served character spans are mapped back onto the words).
`ftray eval` scores the same model in-process; the two should agree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ftray import metrics
from ftray.data import read_rows
from ftray.fields import string_list
from serving.client import predict
from serving.launch import serving


def classification_scores(url: str, ref: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    outputs = predict(url, ref, [r["text"] for r in rows])["outputs"]
    correct = sum(o["label"] == r["label"] for o, r in zip(outputs, rows, strict=True))
    return {"rows": len(rows), "accuracy": correct / len(rows)}


def word_tags(tokens: list[str], entities: list[dict[str, Any]]) -> list[str]:
    """BIO tags of the words of " ".join(tokens) from served character spans."""
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    tags = ["O"] * len(tokens)
    for entity in entities:
        inside = [
            i
            for i, start in enumerate(starts)
            if start >= entity["start"] and start + len(tokens[i]) <= entity["end"]
        ]
        for n, i in enumerate(inside):
            tags[i] = ("B-" if n == 0 else "I-") + entity["type"]
    return tags


def entity_scores(url: str, ref: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    outputs = predict(url, ref, [" ".join(r["tokens"]) for r in rows])["outputs"]
    predicted = [word_tags(r["tokens"], o["entities"]) for r, o in zip(rows, outputs, strict=True)]
    gold = [r["tags"] for r in rows]
    types = metrics.entity_types([t for tags in gold for t in tags])
    scores = metrics.entity_metrics(metrics.entity_counts(predicted, gold, types), types)
    return {"rows": len(rows), **{k: scores[k] for k in ("precision", "recall", "f1")}}


def served_scores(url: str, ref: str, path: Path) -> dict[str, Any]:
    rows = read_rows(str(path), what=str(path))  # JSONL, CSV or Parquet, as ftray eval reads
    if "tokens" in rows[0]:
        words = [
            {k: string_list(row, k, f"{path} row {n}") for k in ("tokens", "tags")}
            for n, row in enumerate(rows, start=1)
        ]  # a CSV cell holds the words space-separated
        return entity_scores(url, ref, words)
    return classification_scores(url, ref, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref")
    parser.add_argument("data", type=Path)
    parser.add_argument("--url", help="an endpoint already serving REF (default: start one)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if args.url:
        print(json.dumps(served_scores(args.url, args.ref, args.data)))
        return
    with serving([args.ref], port=args.port) as url:
        print(json.dumps(served_scores(url, args.ref, args.data)))


if __name__ == "__main__":
    main()
