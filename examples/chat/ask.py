"""Ask a served chat version through the official `openai` client, streaming, and score it.

    python examples/chat/ask.py chat@latest [--url http://127.0.0.1:8000]

Starts `ftray serve` for the reference on 127.0.0.1 (or uses --url). Streams one multi-turn
answer chunk by chunk, then scores the hand-written conversations of data/challenge.jsonl: for
each, the conversation up to its last answer is sent to /v1/chat/completions (temperature 0)
and the reply is compared with the answer written down: exact matches and token-level F1.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from openai import OpenAI

from ftray.data import read_rows
from serving.launch import serving

CHALLENGE = Path(__file__).resolve().parent / "data" / "challenge.jsonl"
ASK = [
    {"role": "system", "content": "You are the help desk of the Harbour Library."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "user", "content": "Where are the cookbooks?"},
]


def token_f1(said: str, expected: str) -> float:
    said_words, expected_words = Counter(said.lower().split()), Counter(expected.lower().split())
    common = sum((said_words & expected_words).values())
    if not common:
        return 0.0
    precision, recall = common / sum(said_words.values()), common / sum(expected_words.values())
    return 2 * precision * recall / (precision + recall)


def score(client: OpenAI, model: str, rows: list[dict[str, Any]]) -> dict[str, float]:
    exact = f1 = 0.0
    for row in rows:
        *asked, answer = row["messages"]
        reply = client.chat.completions.create(
            model=model, messages=asked, temperature=0, max_tokens=32
        )
        said = (reply.choices[0].message.content or "").strip()
        exact += said == answer["content"]
        f1 += token_f1(said, answer["content"])
    return {"conversations": len(rows), "exact": exact / len(rows), "token_f1": f1 / len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref")
    parser.add_argument("--url", help="an endpoint already serving REF")
    parser.add_argument("--data", type=Path, default=CHALLENGE)
    args = parser.parse_args()
    rows = read_rows(str(args.data), what=str(args.data))
    with nullcontext(args.url) if args.url else serving([args.ref]) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused")
        print(f"user: {ASK[-1]['content']}\nassistant (streamed): ", end="", flush=True)
        chunks = client.chat.completions.create(
            model=args.ref, messages=ASK, temperature=0, max_tokens=32, stream=True
        )
        pieces = 0
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
                pieces += 1
        print(f"\n({pieces} chunks)")
        print(json.dumps(score(client, args.ref, rows)))


if __name__ == "__main__":
    main()
