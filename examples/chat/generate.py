"""Generate seeded multi-turn conversations with a library's help desk, and a tiny Llama to tune.

The desk answers from a small table of facts (opening hours, where a subject is shelved, late
fees). Each question comes in many phrasings (15-20 a kind) and names its subject or item the
ways people do ("recipe books", "a DVD", "on Saturdays"), while the desk answers with the table's
own name; with or without a system message, a greeting and a goodbye. The model is randomly
initialised from a config, with a byte-level BPE tokenizer trained on the rendered
conversations, so nothing is downloaded; it is written to `model/` and is not committed.

`data/dev.jsonl` and `data/dev2.jsonl` (40 and 55 hand-written conversations) chose between
versions of this generator and the model's shape; nothing trains on them.
`data/challenge.jsonl` (20 others) is the example's test split.

    python examples/chat/generate.py --out examples/chat
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SYSTEM = "You are the help desk of the Harbour Library. Answer in one sentence."
HOURS = {
    "Monday": "from 9 to 5",
    "Tuesday": "from 9 to 5",
    "Wednesday": "from 9 to 8",
    "Thursday": "from 9 to 5",
    "Friday": "from 9 to 5",
    "Saturday": "from 10 to 2",
    "Sunday": None,
}
SHELVES = {
    "poetry": "on the second floor, east wing",
    "history": "on the second floor, west wing",
    "maps": "in the basement",
    "cookbooks": "on the ground floor, by the cafe",
    "comics": "on the ground floor, near the door",
    "science": "on the first floor",
    "travel": "on the first floor, by the windows",
}
FEES = {"book": "20 cents", "film": "1 euro", "magazine": "10 cents", "board game": "50 cents"}
GREETINGS = [
    "Hello",
    "Hi there",
    "Good morning",
    "Hi",
    "Good afternoon",
    "Hey",
    "Morning",
    "Hello there",
    "Good evening",
    "Hi!",
]
THANKS = [
    "Thanks",
    "Thank you, bye",
    "Great, thanks",
    "Thanks a lot",
    "ok thanks",
    "Cheers",
    "thank you",
    "Perfect, thank you!",
    "That helps, thanks",
    "thx",
]
# How people name what they ask about: the desk answers with the table's own name.
SUBJECT_NAMES = {
    "poetry": ["poetry", "poems", "poetry books", "books of poems"],
    "history": ["history", "history books", "books on history"],
    "maps": ["maps", "road maps", "the map collection"],
    "cookbooks": ["cookbooks", "recipe books", "cookery books"],
    "comics": ["comics", "comic books"],
    "science": ["science", "science books", "books on science"],
    "travel": ["travel", "travel books", "travel guides"],
}
ITEM_NAMES = {
    "book": ["book", "novel", "library book"],
    "film": ["film", "DVD", "movie"],
    "magazine": ["magazine"],
    "board game": ["board game", "game"],
}
HOURS_ASKED = [
    "When are you open on {day}?",
    "What are the hours on {day}?",
    "Is the library open on {day}?",
    "What time do you open on {day}?",
    "{day} opening hours?",
    "Can I visit on {day}?",
    "Are you open {day}?",
    "How long are you open on {day}?",
    "Could you tell me the hours for {day}?",
    "What time do you close on {day}?",
    "When do you close on {day}?",
    "How late are you open on {day}?",
    "Are you open on {day}s?",
    "What are your {day} hours?",
    "Open on {day}?",
    "I want to come on {day}. When are you open?",
    "Do you open on {day}?",
    "Is the library closed on {day}?",
    "hours on {day}?",
    "What are the opening hours for {day}?",
]
# {named}: the subject as the asker names it; {subject}: the table's own name.
SHELF_ASKED = [
    "Where are the {subject} books?",
    "Where can I find {named}?",
    "Which floor has {named}?",
    "I am looking for {named}. Where should I go?",
    "Where is {named}?",
    "Do you have {named}? Where?",
    "{named}, where are they?",
    "Which part of the library has {named}?",
    "I need {named}, where do I look?",
    "Where do you keep {named}?",
    "Where do I find {named}?",
    "Which floor for {named}?",
    "I'm looking for {named}",
    "Where would I look for {named}?",
    "Is there a {subject} section? Where?",
    "Where is the {subject} section?",
    "{named}?",
]
FEE_ASKED = [
    "How much is the late fee for a {item}?",
    "What does it cost if I return a {item} late?",
    "Is there a fine for a late {item}?",
    "Late fee for a {item}?",
    "My {item} is overdue. How much do I pay?",
    "What do you charge for a late {item}?",
    "How much per day for an overdue {item}?",
    "What is the fine for a late {item}?",
    "How much do I owe for a late {item}?",
    "What's the charge for an overdue {item}?",
    "I returned my {item} late, what do I pay?",
    "What happens if I bring a {item} back late?",
    "late {item} fee?",
    "How much do late {item}s cost?",
    "Do you charge for late {item}s?",
]


HELLO = "Hello! How can I help you today?"
GOODBYE = "You are welcome. Goodbye!"


def hours_answer(day: str) -> str:
    hours = HOURS[day]
    return f"On {day} we are open {hours}." if hours else f"On {day} the library is closed."


def shelf_answer(subject: str) -> str:
    return f"You will find {subject} {SHELVES[subject]}."


def fee_answer(item: str) -> str:
    return f"A late {item} costs {FEES[item]} per day."


def answers() -> set[str]:
    """Every answer the desk gives."""
    return {
        HELLO,
        GOODBYE,
        *map(hours_answer, HOURS),
        *map(shelf_answer, SHELVES),
        *map(fee_answer, FEES),
    }


def question(rng: random.Random) -> tuple[str, str, str]:
    """(question, answer, kind) about one fact of the desk's table."""
    kind = rng.choice(["hours", "shelf", "fee"])
    if kind == "hours":
        day = rng.choice(list(HOURS))
        answer = hours_answer(day)
        return rng.choice(HOURS_ASKED).format(day=day), answer, kind
    if kind == "shelf":
        subject = rng.choice(list(SHELVES))
        answer = shelf_answer(subject)
        named = rng.choice(SUBJECT_NAMES[subject])
        asked = rng.choice(SHELF_ASKED).format(named=named, subject=subject)
        return asked, answer, kind
    item = rng.choice(list(FEES))
    answer = fee_answer(item)
    return rng.choice(FEE_ASKED).format(item=rng.choice(ITEM_NAMES[item])), answer, kind


def typed(rng: random.Random, text: str) -> str:
    """As people type: sometimes all lower case, sometimes without the question mark."""
    if rng.random() < 0.3:
        text = text.lower()
    if rng.random() < 0.2:
        text = text.rstrip("?")
    return text


def conversation(rng: random.Random) -> dict:
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": SYSTEM})
    if rng.random() < 0.4:
        messages += [
            {"role": "user", "content": typed(rng, rng.choice(GREETINGS))},
            {"role": "assistant", "content": HELLO},
        ]
    kinds = []
    for _ in range(rng.randint(1, 3)):
        asked, answer, kind = question(rng)
        messages += [
            {"role": "user", "content": typed(rng, asked)},
            {"role": "assistant", "content": answer},
        ]
        kinds.append(kind)
    if rng.random() < 0.3:
        messages += [
            {"role": "user", "content": typed(rng, rng.choice(THANKS))},
            {"role": "assistant", "content": GOODBYE},
        ]
    return {"messages": messages, "group": kinds[-1]}


def generate(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [conversation(rng) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--validation", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
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
        from jinja2 import Template

        from ftray.chat import TEMPLATES
        from ftray.tiny_models import build_tiny_model

        # The tokenizer learns the rendered conversations, role markers included.
        render = Template(TEMPLATES["zephyr"]).render
        rows = splits["train"]
        texts = [render(messages=r["messages"], bos_token="", eos_token="") for r in rows]
        # Wide initial weights: the tied output embedding stays frozen under LoRA, and at the
        # usual 0.02 its logits could not get confident (low perplexity) whatever LoRA learns.
        # Four heads, not two: across two seeds they read the deciding word far more reliably
        # (93 and 90 of 115 hand-written conversations right, against 87 and 56; BENCHMARKS.md).
        build_tiny_model(
            args.out / "model",
            texts,
            architecture="llama",
            hidden_size=64,
            layers=2,
            heads=4,
            initializer_range=0.3,
        )


if __name__ == "__main__":
    main()
