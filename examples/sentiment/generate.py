"""Generate seeded reviews of everyday things, labelled positive/negative, with a `group` field.

The aim is a model that holds up on reviews people write, so the generator varies what a template
generator usually keeps fixed: 24 domains from headphones to plumbers, several hundred opinion
phrases (plain, intensified, hedged), first-hand experiences ("it stopped working after a
week"), verdicts, star ratings, comparisons, negation both ways ("not bad at all", "hardly worth
it"), contrast where the later clause decides ("looks great, but it broke in a day"), understated
irony ("it lasted a whole week"), and neutral sentences that occur equally with both labels.
Sentences are joined in random order, case and punctuation vary, and no phrase belongs to one
domain. `--noise` flips a share of the training labels.

Hand-written files sit beside the generated data. `data/handwritten.jsonl` (423 reviews
written for ftray, most of them saying what happened rather than what the writer thinks of it)
joins the training data, three variants of each, minus 60 that join the validation split, so
that the choice of epoch sees natural text too. `data/challenge.jsonl` (171 other reviews) is
the example's test split; `data/holdout.jsonl` and `data/blind.jsonl` are further sets for
scoring. Nothing here reads them.

    python examples/sentiment/generate.py --out examples/sentiment/data
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# domain -> (group, things reviewed, aspects)
DOMAINS: dict[str, tuple[str, list[str], list[str]]] = {
    "audio": (
        "electronics",
        ["headphones", "earbuds", "speaker", "soundbar", "turntable"],
        ["sound", "bass", "battery", "fit", "pairing", "noise cancelling"],
    ),
    "computing": (
        "electronics",
        ["laptop", "keyboard", "mouse", "monitor", "router", "webcam", "printer", "tablet"],
        [
            "screen",
            "keyboard",
            "battery life",
            "setup",
            "connection",
            "trackpad",
            "drivers",
            "fan noise",
        ],
    ),
    "phones": (
        "electronics",
        ["phone", "phone case", "charger", "power bank", "smartwatch"],
        ["camera", "battery", "screen", "charging speed", "grip", "software updates"],
    ),
    "kitchen": (
        "home",
        [
            "kettle",
            "frying pan",
            "blender",
            "knife set",
            "toaster",
            "coffee grinder",
            "air fryer",
            "rice cooker",
            "espresso machine",
        ],
        ["handle", "heat control", "cleanup", "blade", "lid", "coating", "timer"],
    ),
    "furniture": (
        "home",
        [
            "sofa",
            "desk chair",
            "bookshelf",
            "mattress",
            "dining table",
            "bed frame",
            "standing desk",
        ],
        ["assembly", "cushions", "finish", "stability", "instructions", "comfort"],
    ),
    "garden": (
        "home",
        ["lawn mower", "hose", "garden shears", "barbecue", "patio heater"],
        ["motor", "grip", "reach", "assembly", "cutting height", "ignition"],
    ),
    "cleaning": (
        "home",
        [
            "vacuum cleaner",
            "robot vacuum",
            "steam mop",
            "washing machine",
            "dishwasher",
            "dehumidifier",
        ],
        ["suction", "noise", "app", "filter", "drum", "water tank", "cycle time"],
    ),
    "books": (
        "media",
        [
            "novel",
            "cookbook",
            "biography",
            "travel guide",
            "poetry collection",
            "textbook",
            "thriller",
            "memoir",
        ],
        ["writing", "plot", "pacing", "ending", "characters", "translation", "recipes"],
    ),
    "films": (
        "media",
        [
            "film",
            "sequel",
            "documentary",
            "horror movie",
            "comedy",
            "animated feature",
            "miniseries",
        ],
        ["acting", "script", "soundtrack", "ending", "camera work", "dialogue", "effects"],
    ),
    "games": (
        "media",
        ["game", "board game", "puzzle", "video game", "card game"],
        ["controls", "story", "graphics", "rules", "replay value", "multiplayer"],
    ),
    "music": (
        "media",
        ["album", "concert", "live record", "playlist subscription"],
        ["vocals", "production", "setlist", "mixing", "lyrics"],
    ),
    "apps": (
        "media",
        ["app", "banking app", "podcast", "streaming service", "fitness app"],
        ["interface", "notifications", "search", "subscription price", "sync"],
    ),
    "restaurants": (
        "food and travel",
        ["restaurant", "pizzeria", "café", "takeaway", "food truck", "bakery", "sushi bar"],
        ["food", "service", "portions", "waiting time", "desserts", "staff", "atmosphere"],
    ),
    "hotels": (
        "food and travel",
        ["hotel", "hostel", "holiday flat", "guesthouse", "resort"],
        ["room", "breakfast", "check-in", "location", "bed", "shower", "wifi"],
    ),
    "travel": (
        "food and travel",
        ["flight", "airline", "train company", "ferry", "car hire", "tour", "bus service"],
        ["seats", "crew", "timing", "luggage handling", "booking", "legroom"],
    ),
    "groceries": (
        "food and travel",
        ["coffee beans", "olive oil", "tea", "chocolate", "meal kit", "protein bars"],
        ["taste", "packaging", "freshness", "price", "flavour", "delivery"],
    ),
    "clothing": (
        "clothing",
        ["jacket", "jeans", "dress", "sweater", "raincoat", "t-shirt", "suit"],
        ["fit", "fabric", "stitching", "colour", "sizing", "zip", "pockets"],
    ),
    "shoes": (
        "clothing",
        ["running shoes", "boots", "sandals", "trainers", "hiking boots"],
        ["sole", "fit", "grip", "laces", "cushioning", "waterproofing"],
    ),
    "accessories": (
        "clothing",
        ["backpack", "watch", "sunglasses", "wallet", "suitcase", "umbrella"],
        ["strap", "wheels", "lining", "clasp", "zips", "size"],
    ),
    "repairs": (
        "services",
        ["plumber", "electrician", "garage", "bike shop", "phone repair shop", "locksmith"],
        ["price", "punctuality", "communication", "workmanship", "quote"],
    ),
    "care": (
        "services",
        ["hair salon", "dentist", "gym", "yoga studio", "vet", "barber"],
        ["staff", "booking", "prices", "cleanliness", "opening hours", "equipment"],
    ),
    "delivery": (
        "services",
        [
            "courier",
            "delivery service",
            "online shop",
            "removal company",
            "internet provider",
            "bank",
        ],
        ["customer service", "tracking", "refund", "support line", "billing"],
    ),
    "toys": (
        "home",
        ["toy", "doll house", "lego set", "scooter", "drone", "kite"],
        ["parts", "battery", "instructions", "durability", "remote"],
    ),
    "pets": (
        "home",
        ["dog bed", "cat tree", "pet food", "dog lead", "litter box", "aquarium"],
        ["material", "size", "smell", "build", "filter"],
    ),
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
    "great",
    "brilliant",
    "lovely",
    "outstanding",
    "first-rate",
    "sturdy",
    "comfortable",
    "spot on",
    "flawless",
    "perfect",
    "terrific",
    "top notch",
    "well made",
    "a joy",
    "amazing",
    "very good",
    "really nice",
    "better than expected",
    "faultless",
    "smooth",
    "pleasant",
    "easy to use",
    "well designed",
    "quick",
    "generous",
    "friendly",
    "helpful",
    "good value",
    "sharp",
    "crisp",
    "tasty",
    "gorgeous",
    "charming",
    "clever",
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
    "horrible",
    "shoddy",
    "rubbish",
    "broken",
    "unreliable",
    "uncomfortable",
    "a mess",
    "a nightmare",
    "painfully slow",
    "overpriced",
    "bland",
    "rude",
    "clumsy",
    "noisy",
    "fiddly",
    "confusing",
    "mediocre",
    "poor",
    "bad",
    "worse than expected",
    "a disaster",
    "a joke",
    "faulty",
    "dull",
    "tacky",
    "weak",
    "unhelpful",
    "stale",
    "greasy",
    "sloppy",
    "pathetic",
    "second-rate",
]
INTENSIFIERS = [
    "",
    "",
    "",
    "really ",
    "very ",
    "truly ",
    "absolutely ",
    "genuinely ",
    "surprisingly ",
    "honestly ",
    "just ",
    "pretty ",
    "incredibly ",
    "so ",
]
GOOD_EVENTS = [
    "it does exactly what it promises",
    "it has held up for {n} months without a problem",
    "it works perfectly",
    "it arrived early and well packed",
    "it was worth the wait",
    "everything worked straight out of the box",
    "they fixed it the same day",
    "the staff went out of their way to help",
    "it still looks new after {n} months",
    "setting it up took five minutes",
    "they refunded me without any fuss",
    "my kids love it",
    "my partner keeps borrowing it",
    "we use it every single day",
    "it made my mornings easier",
    "I was impressed from the first minute",
    "it solved a problem I had for years",
    "I have already recommended it to friends",
    "it feels like it will last for years",
    "it exceeded my expectations",
    "they answered my question within minutes",
    "it is quieter than I expected",
    "the price was fair for what you get",
    "it was fun from start to finish",
    "I could not put it down",
    "it made me laugh out loud",
    "I have nothing to complain about",
    "it beat every other one I tried",
    "I will definitely be back",
    "I came away happy",
    # Implicit: a fact that is good news, no opinion word.
    "it has not missed a beat since I got it",
    "the battery easily gets me through a long day",
    "it was ready in half the time",
    "it fits in my bag without any trouble",
    "nothing has broken or worn out yet",
    "they called back within the hour",
    "the replacement arrived the next morning",
    "the whole family uses it now",
    "I have ordered a second one for my {who}",
    "the room stays warm even in January",
    "it pays for itself in a few months",
    "I finished it in two evenings",
    "the kids asked to go back the next day",
    "we stayed an extra night because we liked it so much",
    "my {who} asked where I got it",
    "it cut my cleaning time in half",
    "it has survived two falls without a scratch",
    "the staff knew exactly what they were doing",
    "the price was lower than the quote",
    "it arrived a day before they promised",
    "I have worn it almost every day since",
    "the colours are exactly as in the pictures",
    "it took no time at all to learn",
    "they sorted it out on the first call",
    "I didn't have to chase them once",
    "it never gets hot, even after hours",
    "it does not leak, even when full",
    "there was not a single mistake on the bill",
    "the queue moved quickly",
    "every part fitted first time",
    "it starts first time, every time",
    "I stopped looking for alternatives",
    "I have nothing but good things to say",
    "it has become part of my daily routine",
    "my old one never worked this well",
    "it handles everything I throw at it",
]
BAD_EVENTS = [
    "it stopped working after {n} days",
    "it broke the first time I used it",
    "it arrived scratched and missing a part",
    "I had to send it back",
    "nobody answered my emails",
    "it fell apart within a week",
    "they charged me twice and never apologised",
    "it took {n} weeks to arrive",
    "the instructions made no sense",
    "it leaks every time",
    "it overheats after an hour",
    "we waited {n} minutes and nobody came",
    "I regret buying it",
    "it drains the battery",
    "it smells of plastic",
    "I wasted a whole afternoon on it",
    "the refund never came",
    "it gave up after {n} uses",
    "it keeps disconnecting",
    "I fell asleep halfway through",
    "I had to ask three times",
    "it ruined my weekend",
    "it cracked in the first week",
    "the order was wrong twice",
    "it is louder than a hairdryer",
    "it made me angry",
    "they cancelled at the last minute",
    "it died before the warranty even started",
    "I got a used one with someone else's fingerprints",
    "I gave up on it",
    # Implicit: a fact that is bad news, no opinion word.
    "it stopped charging after a month",
    "the screen went black on the second day",
    "the paint started peeling within weeks",
    "I am still waiting for a reply",
    "they sent the wrong size twice",
    "the handle came off in my hand",
    "it takes ages to do anything",
    "it freezes every few minutes",
    "we had to ask for the bill three times",
    "my order went to the wrong address",
    "the noise kept us awake all night",
    "it needed a new part within a month",
    "the seams split the first time I wore it",
    "it won't connect to anything",
    "half of the pieces were missing",
    "they charged me for things I never ordered",
    "the price went up after I booked",
    "it lost a third of its battery overnight",
    "the colour washed out immediately",
    "it arrived a week after the party",
    "nobody showed up for the appointment",
    "I had to reset it every morning",
    "it wobbles no matter what I do",
    "they never returned my calls",
    "I spent more time fixing it than using it",
    "the smell never went away",
    "I ended up buying a different one",
    "the second one had the same fault",
    "it looks nothing like the photos",
    "I could hear every word from the next room",
    "the ending was obvious from the first page",
    "it was over before it got going",
]
GOOD_VERDICTS = [
    "I would buy it again",
    "worth every penny",
    "highly recommended",
    "five stars",
    "I keep coming back to it",
    "I love it",
    "best purchase this year",
    "ten out of ten",
    "would recommend to anyone",
    "a real bargain",
    "can't fault it",
    "I am very happy with it",
    "no regrets",
    "I'm thrilled",
    "it is a keeper",
    "glad I chose it",
    "money well spent",
    "I'd go again tomorrow",
    "full marks",
    "couldn't be happier",
    "four stars, happily",
    "we will order again",
    "an easy recommendation",
    "it won me over",
]
BAD_VERDICTS = [
    "I want my money back",
    "a waste of money",
    "I would not recommend it",
    "one star",
    "avoid",
    "save your money",
    "never again",
    "I regret it",
    "zero stars if I could",
    "two stars at most",
    "not worth the price",
    "a total waste of time",
    "stay away",
    "I'm disappointed",
    "what a letdown",
    "I will not be ordering again",
    "skip it",
    "I expected much more",
    "don't bother",
    "I'm returning it",
    "it is going back",
    "I'd give it zero",
    "huge disappointment",
    "I can't recommend it",
]
# Irony and understatement: no strong word carries the label.
IRONIC_BAD = [
    "flimsy, and you can tell",
    "you get what you pay for",
    "it lasted a whole week",
    "if you enjoy waiting, you will love this {thing}",
    "great, if you like reading error messages",
    "a lovely box, shame about what was inside",
    "it looks nice in the photos",
    "I have never been so glad to see a refund",
    "the highlight was leaving",
    "at least the packaging was pretty",
    "it works, some of the time",
    "it makes a good doorstop",
    "it did not live up to the hype",
]
IRONIC_GOOD = [
    "I was ready to hate it and I can't",
    "I expected little and got a lot",
    "for once the reviews were right",
    "I did not think a {thing} could make me this happy",
    "it turned out far better than the price suggests",
    "the hype is justified",
    "my expectations were low, and it blew past them",
    "it quietly does its job, every day",
]
# "not <word>" flips the word's polarity.
NOT_BAD = [
    "not bad at all",
    "not disappointing in the slightest",
    "never once a problem",
    "no complaints",
    "nothing to fault",
    "not flimsy in any way",
    "hardly any noise",
    "no issues so far",
    "not a single thing went wrong",
]
NOT_GOOD = [
    "not great",
    "not worth it",
    "not exactly reliable",
    "hardly worth the money",
    "not comfortable at all",
    "never worked properly",
    "nothing special",
    "not what I ordered",
    "not good enough",
    "no better than the cheapest one",
    "not fit for purpose",
    "not what the photos show",
]
FILLER = [
    "I bought it for my {who}.",
    "It arrived on a {day}.",
    "I read a few reviews before ordering.",
    "We have had it for {n} weeks now.",
    "My {who} picked it out.",
    "It came in a plain box.",
    "I used it on a trip last month.",
    "This is my second one.",
    "We went on a {day} evening.",
    "I paid full price.",
    "It was on sale.",
    "I ordered the blue one.",
    "We booked online.",
    "I tried it after a friend mentioned it.",
    "It replaced an older model.",
    "My {who} uses it more than I do.",
    "We were a group of four.",
    "I went in without a booking.",
    "I have owned a few of these over the years.",
    "It was a birthday present.",
]
WHO = [
    "sister",
    "neighbour",
    "father",
    "colleague",
    "flatmate",
    "grandmother",
    "son",
    "wife",
    "husband",
    "best friend",
    "daughter",
    "uncle",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
COMPARE_GOOD = [
    "better than my old {thing}",
    "much nicer than the one I had before",
    "the best {thing} I have owned",
    "miles ahead of the competition",
]
COMPARE_BAD = [
    "worse than my old {thing}",
    "not a patch on the one I had before",
    "the worst {thing} I have ever bought",
    "way behind the cheaper ones",
]


# A problem that happens (negative) or no longer happens (positive): negation of bad news is good
# news, which word-level cues get backwards.
TROUBLE_VERBS = [
    ("jams", "jam"),
    ("leaks", "leak"),
    ("crashes", "crash"),
    ("rattles", "rattle"),
    ("overheats", "overheat"),
    ("squeaks", "squeak"),
    ("lags", "lag"),
    ("wobbles", "wobble"),
    ("fogs up", "fog up"),
    ("tangles", "tangle"),
    ("fades", "fade"),
    ("sticks", "stick"),
    ("drops the connection", "drop the connection"),
    ("runs out of battery", "run out of battery"),
    ("goes wrong", "go wrong"),
    ("breaks down", "break down"),
    ("gets stuck", "get stuck"),
    ("slips", "slip"),
    ("smells", "smell"),
    ("scratches", "scratch"),
]
TROUBLES = [
    "pain",
    "noise",
    "delays",
    "leaks",
    "errors",
    "queues",
    "hidden fees",
    "headaches",
    "stains",
    "blisters",
    "mess",
    "arguments with support",
    "lag",
    "static",
    "crumbs",
]
OLD_VS_NEW = [
    (
        "my old {thing} {verb} all the time; this one never does",
        "my old {thing} never did this, but this one {verb} all the time",
    ),
    (
        "the last one {verb} every week, and I have had no such trouble here",
        "it {verb} every single week, just like the cheap one it replaced",
    ),
]
EXPECTATIONS = [
    ("I expected {bad} and got {good}", "I expected {good} and got {bad}"),
    ("I was braced for {bad}, but it was {good}", "I was hoping for {good}; instead it was {bad}"),
]
OUTCOME_GOOD = [
    "a pleasant surprise",
    "a smooth ride",
    "exactly what I needed",
    "a real treat",
    "the easiest job of the week",
    "money well spent",
    "a lovely evening",
]
OUTCOME_BAD = [
    "a headache",
    "a long wait",
    "a mess",
    "a total letdown",
    "a wasted afternoon",
    "a pile of excuses",
    "a broken promise",
]


def trouble(rng: random.Random, thing: str, positive: bool) -> str:
    """A clause about a problem: present (negative) or absent (positive)."""
    verb, base = rng.choice(TROUBLE_VERBS)
    problem = rng.choice(TROUBLES)
    if rng.random() < 0.3:
        old_new = rng.choice(OLD_VS_NEW)[0 if positive else 1]
        return old_new.format(thing=thing, verb=verb)
    if rng.random() < 0.3:
        pair = rng.choice(EXPECTATIONS)[0 if positive else 1]
        return pair.format(good=rng.choice(OUTCOME_GOOD), bad=rng.choice(OUTCOME_BAD))
    if positive:
        return rng.choice(
            [
                f"it never {base}s" if " " not in base else f"it never {verb}",
                f"not once has it {base}ed" if base[-1] != "e" else f"it doesn't {base}, ever",
                f"no more {problem}",
                f"{rng.randint(2, 11)} months in and it hasn't {base}ed once"
                if " " not in base and base[-1] != "e"
                else f"no {problem} at all",
                f"no {problem}, no fuss",
                f"it does not {base}, unlike {rng.choice(PREVIOUS)}",
            ]
        )
    return rng.choice(
        [
            f"it {verb} constantly",
            f"it {verb} every few days",
            f"nothing but {problem} since day one",
            f"{problem} every single time",
            f"after a week it started to {base}",
        ]
    )


# Facts whose polarity comes from what happened, not from an opinion word: composed from parts,
# events and durations so the model learns "broke within a week" rather than a phrase list.
PARTS = [
    "the battery",
    "the screen",
    "the handle",
    "the zip",
    "the strap",
    "the lid",
    "the motor",
    "the app",
    "the heel",
    "the seams",
    "the wheels",
    "the buttons",
    "the cable",
    "the hinge",
    "the sole",
    "the paint",
    "the coating",
    "the signal",
    "the heating",
    "the wifi",
    "the fan",
    "the charger",
    "the clasp",
    "the door",
    "the speaker",
    "the remote",
    "the pump",
]
FAILURES = [
    "broke",
    "cracked",
    "came off",
    "stopped working",
    "fell apart",
    "snapped",
    "gave out",
    "died",
    "started peeling",
    "wore through",
    "started leaking",
    "jammed",
    "froze",
    "split",
    "faded",
    "came loose",
    "burnt out",
    "went dead",
]
SOON = [
    "after two days",
    "within a week",
    "on the first day",
    "the second time I used it",
    "after a month",
    "before the trip was over",
    "within hours",
    "after three uses",
    "a day after the warranty ended",
    "before I had even finished setting it up",
]
HOLDS = [
    "still works perfectly",
    "still looks new",
    "has held up fine",
    "is still going strong",
    "has not faded at all",
    "works as well as on day one",
    "has never given any trouble",
    "is as good as new",
]
LATER = [
    "after two years",
    "after a year of daily use",
    "after months of heavy use",
    "three winters on",
    "after countless washes",
    "after all this time",
    "a year later",
]
HAD_TO = [
    "send it back",
    "call them four times",
    "buy a replacement",
    "glue it back together",
    "wait two weeks for a refund",
    "ask for a manager",
    "reset it every day",
    "complain twice",
    "fix it myself",
    "chase them for a month",
    "take it to a repair shop",
    "explain it again",
]
WAITED_FOR = [
    "our food",
    "a reply",
    "the technician",
    "the delivery",
    "our drinks",
    "a table",
    "the bill",
    "a refund",
    "the room to be ready",
    "someone to answer the phone",
]
LONG_WAIT = [
    "over an hour",
    "three weeks",
    "most of the afternoon",
    "forty-five minutes",
    "two months",
    "ages",
]
SHORT_WAIT = [
    "ten minutes",
    "a day",
    "no time at all",
    "less than an hour",
    "the same afternoon",
    "two days",
]
TASKS = [
    "setting it up",
    "the repair",
    "delivery",
    "check-in",
    "the whole job",
    "assembly",
    "getting a refund",
    "the installation",
]


PREVIOUS = [
    "my last one",
    "the old one",
    "my previous one",
    "the one before",
    "the cheap one",
    "my sister's",
    "the one it replaced",
    "the last model",
]
NEVER_HAD_TO = [
    "I never had to",
    "not once did I need to",
    "there was no need to",
    "I didn't have to",
    "so far I haven't had to",
    "we never needed to",
]
BROKEN = ["broken", "cracked", "leaked", "worn out", "come loose"]
ARRIVED = ["came", "arrived", "turned up", "was sorted", "was there", "showed up"]


def implicit(rng: random.Random, positive: bool) -> str:
    """A fact that is good or bad news without an opinion word."""
    part = rng.choice(PARTS)
    if positive:
        shapes = [
            f"{part} {rng.choice(HOLDS)} {rng.choice(LATER)}",
            f"{rng.choice(LATER)}, {part} {rng.choice(HOLDS)}",
            f"{rng.choice(NEVER_HAD_TO)} {rng.choice(HAD_TO)}",
            f"{rng.choice(WAITED_FOR)} {rng.choice(ARRIVED)} within {rng.choice(SHORT_WAIT)}",
            f"{rng.choice(TASKS)} took {rng.choice(SHORT_WAIT)}",
            f"nothing {rng.choice(FAILURES).split()[0]} {rng.choice(LATER)}",
            f"unlike {rng.choice(PREVIOUS)}, {part} hasn't {rng.choice(BROKEN)}",
        ]
    else:
        shapes = [
            f"{part} {rng.choice(FAILURES)} {rng.choice(SOON)}",
            f"{rng.choice(SOON)}, {part} {rng.choice(FAILURES)}",
            f"I had to {rng.choice(HAD_TO)}",
            f"we waited {rng.choice(LONG_WAIT)} for {rng.choice(WAITED_FOR)}",
            f"{rng.choice(TASKS)} took {rng.choice(LONG_WAIT)}",
            f"{rng.choice(TASKS)} took {rng.choice(LONG_WAIT)} and {part} {rng.choice(FAILURES)}",
            f"the replacement {rng.choice(FAILURES)} {rng.choice(SOON)} as well",
        ]
    return rng.choice(shapes)


def fill(rng: random.Random, text: str, thing: str) -> str:
    return text.format(thing=thing, n=rng.randint(2, 20), who=rng.choice(WHO), day=rng.choice(DAYS))


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def judgement(rng: random.Random, thing: str, aspect: str, positive: bool) -> str:
    """One clause that carries the label."""
    word = rng.choice(GOOD if positive else BAD)
    very = rng.choice(INTENSIFIERS)
    shapes = [
        lambda: f"the {aspect} is {very}{word}",
        lambda: f"the {thing} is {very}{word}",
        lambda: f"this {thing} is {very}{word}",
        lambda: f"{very}{word} {aspect}",
        lambda: f"{rng.choice(GOOD_EVENTS if positive else BAD_EVENTS)}",
        lambda: f"{rng.choice(GOOD_VERDICTS if positive else BAD_VERDICTS)}",
        lambda: f"the {aspect}: {rng.choice(NOT_BAD if positive else NOT_GOOD)}",
        lambda: rng.choice(NOT_BAD if positive else NOT_GOOD),
        lambda: rng.choice(IRONIC_GOOD if positive else IRONIC_BAD),
        lambda: rng.choice(COMPARE_GOOD if positive else COMPARE_BAD),
        lambda: trouble(rng, thing, positive),
        lambda: implicit(rng, positive),
        lambda: implicit(rng, positive),
        lambda: implicit(rng, positive),
        lambda: f"I found the {aspect} {very}{word}",
        lambda: (
            f"what {article(word)} {word} {thing}"
            if " " not in word
            else f"the {thing} turned out {word}"
        ),
    ]
    return fill(rng, rng.choice(shapes)(), thing)


def contrast(rng: random.Random, thing: str, aspects: list[str], positive: bool) -> str:
    """A minor point of the other polarity, then the clause that decides."""
    # The minor point is a plain remark about one aspect, as in real reviews.
    minor = f"the {rng.choice(aspects)} is {rng.choice(BAD if positive else GOOD)}"
    major = judgement(rng, thing, rng.choice(aspects), positive)
    shapes = [
        f"{minor}, but {major}",
        f"although {minor}, {major}",
        f"{minor}. still, {major}",
        f"{minor}; however, {major}",
        f"sure, {minor}, yet {major}",
    ]
    return rng.choice(shapes)


def sentence(clause: str, rng: random.Random) -> str:
    clause = clause.strip()
    end = rng.choice([".", ".", ".", "!", "..."])
    return clause[0].upper() + clause[1:] + ("" if clause[-1] in ".!?" else end)


def review(rng: random.Random, domain: str, positive: bool) -> str:
    _, things, aspects = DOMAINS[domain]
    thing = rng.choice(things)
    parts = []
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        if rng.random() < 0.1:  # real reviews mostly keep to one side
            parts.append(contrast(rng, thing, aspects, positive))
        else:
            parts.append(judgement(rng, thing, rng.choice(aspects), positive))
    sentences = [sentence(p, rng) for p in parts]
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        sentences.insert(rng.randint(0, len(sentences)), fill(rng, rng.choice(FILLER), thing))
    text = " ".join(sentences)
    return text.lower() if rng.random() < 0.1 else text


def generate(count: int, seed: int, noise: float) -> list[dict]:
    """`count` distinct reviews (a repeated review teaches nothing new)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        domain = rng.choice(list(DOMAINS))
        positive = rng.random() < 0.5
        label = positive if rng.random() >= noise else not positive
        text = review(rng, domain, positive)
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        rows.append(
            {
                "text": text,
                "label": "positive" if label else "negative",
                "group": DOMAINS[domain][0],
            }
        )
    return rows


HANDWRITTEN = Path(__file__).parent / "data" / "handwritten.jsonl"
HANDWRITTEN_VALIDATION = 60


def handwritten(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """The hand-written reviews: most for training (as written, and with a neutral sentence
    before and after), HANDWRITTEN_VALIDATION for validation."""
    rows = [json.loads(line) for line in HANDWRITTEN.read_text().splitlines() if line.strip()]
    rng.shuffle(rows)
    validation, train = rows[:HANDWRITTEN_VALIDATION], rows[HANDWRITTEN_VALIDATION:]
    variants = []
    for row in train:
        before, after = (fill(rng, rng.choice(FILLER), "one") for _ in range(2))
        variants += [row, {**row, "text": f"{before} {row['text']}"},
                     {**row, "text": f"{row['text']} {after}"}]  # fmt: skip
    return variants, validation


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
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--validation", type=int, default=500)
    parser.add_argument("--noise", type=float, default=0.0, help="share of flipped train labels")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed + 2)
    written_train, written_validation = handwritten(rng)
    train = generate(args.train, args.seed, args.noise) + written_train
    rng.shuffle(train)
    validation = held_out(generate(args.validation * 2, args.seed + 1, 0.0), train)
    write_jsonl(train, args.out / "train.jsonl")
    write_jsonl(validation[: args.validation] + written_validation, args.out / "validation.jsonl")


if __name__ == "__main__":
    main()
