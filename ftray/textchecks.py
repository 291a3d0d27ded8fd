"""Measures of text data that tell when a validation score will not hold on new text.

- near duplicates across splits: word shingles, MinHash LSH (datasketch) to find
  candidates, exact Jaccard to confirm them;
- shortcut phrases: word n-grams that alone predict a label with high precision while covering a
  large share of the training rows (a template's verdict phrase, not a word of the language);
- diversity: the share of distinct word 3-grams, and a template estimate (rows that differ from
  another row in no more than two words);
- entity surfaces (NER): how many held-out entities occur verbatim in the training data.

Pure functions over lists of strings; `ftray.datacheck` turns their results into findings.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

WORD = re.compile(r"\w+(?:['’]\w+)?|[^\w\s]")
MINHASH_PERMUTATIONS = 64


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def shingles(text: str, n: int = 1) -> set[str]:
    """Word n-gram shingles; single words by default, since the short rows of labelled data
    (a review, a sentence) share few longer n-grams even when one is a slot-filled copy of the
    other."""
    tokens = words(text)
    if len(tokens) < n:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class NearDuplicates:
    share: float  # of the held-out rows
    count: int
    examples: list[tuple[str, str, float]]  # (held-out text, train text, Jaccard)


def near_duplicates(
    train: Sequence[str], held_out: Sequence[str], threshold: float, examples: int = 3
) -> NearDuplicates:
    """Held-out rows with a training row at Jaccard >= threshold over their word shingles."""
    from datasketch import MinHash, MinHashLSH

    def signature(items: set[str]) -> MinHash:
        minhash = MinHash(num_perm=MINHASH_PERMUTATIONS, seed=1)
        minhash.update_batch([s.encode() for s in items])
        return minhash

    # LSH finds candidates above a looser threshold; the exact Jaccard decides.
    index = MinHashLSH(threshold=max(0.05, threshold - 0.2), num_perm=MINHASH_PERMUTATIONS)
    train_shingles = [shingles(t) for t in train]
    for i, items in enumerate(train_shingles):
        index.insert(str(i), signature(items))
    found: list[tuple[str, str, float]] = []
    for text in held_out:
        items = shingles(text)
        best, best_row = 0.0, -1
        for key in index.query(signature(items)):
            score = jaccard(items, train_shingles[int(key)])
            if score > best:
                best, best_row = score, int(key)
        if best >= threshold:
            found.append((text, train[best_row], best))
    share = len(found) / len(held_out) if held_out else 0.0
    found.sort(key=lambda f: -f[2])
    return NearDuplicates(share, len(found), found[:examples])


@dataclass
class Shortcut:
    phrase: str
    label: str
    precision: float  # share of training rows with the phrase that carry `label`
    coverage: float  # share of training rows that contain the phrase


@dataclass
class Shortcuts:
    phrases: list[Shortcut]
    train_share: float  # training rows that contain at least one shortcut
    held_out_share: dict[str, float]  # per held-out split


def shortcuts(
    texts: Sequence[str],
    labels: Sequence[str],
    held_out: dict[str, Sequence[str]],
    min_precision: float,
    min_coverage: float,
    lengths: tuple[int, ...] = (2, 3, 4, 5, 6),
) -> Shortcuts:
    """Phrases of 2-6 words (punctuation left out) that predict one label with >= min_precision
    and appear in >= min_coverage of the training rows. Single words are left out: "terrible"
    predicting "negative" is the task, "I would buy it again" in every fifth positive row is a
    template."""
    per_row = [_ngrams(_plain_words(t), lengths) for t in texts]
    support: Counter[str] = Counter()
    by_label: dict[str, Counter[str]] = defaultdict(Counter)
    for grams, label in zip(per_row, labels, strict=True):
        support.update(grams)
        by_label[label].update(grams)
    rows = len(texts)
    found = []
    for gram, count in support.items():
        if count / rows < min_coverage:
            continue
        label, hits = max(((lab, c[gram]) for lab, c in by_label.items()), key=lambda x: x[1])
        if hits / count >= min_precision:
            found.append(Shortcut(gram, label, hits / count, count / rows))
    found = _drop_contained(found)
    phrases = {s.phrase for s in found}

    def share(split: Sequence[str]) -> float:
        if not split:
            return 0.0
        hits = sum(bool(_ngrams(_plain_words(t), lengths) & phrases) for t in split)
        return hits / len(split)

    held_out_share = {name: share(split) for name, split in held_out.items()}
    return Shortcuts(found, share(texts), held_out_share)


def _plain_words(text: str) -> list[str]:
    return [w for w in words(text) if w[0].isalnum()]


def _ngrams(tokens: list[str], lengths: tuple[int, ...]) -> set[str]:
    return {" ".join(tokens[i : i + n]) for n in lengths for i in range(len(tokens) - n + 1)}


def _drop_contained(found: list[Shortcut]) -> list[Shortcut]:
    """Keep the longest phrases: "buy it again" adds nothing when "would buy it again" is
    listed with the same coverage."""
    kept: list[Shortcut] = []
    for shortcut in sorted(found, key=lambda s: -len(s.phrase.split())):
        if not any(
            f" {shortcut.phrase} " in f" {k.phrase} " and k.coverage >= 0.8 * shortcut.coverage
            for k in kept
        ):
            kept.append(shortcut)
    return sorted(kept, key=lambda s: -s.coverage)


@dataclass
class Diversity:
    distinct_trigram_share: float  # distinct word 3-grams / all word 3-grams
    template_share: float  # rows that differ from another row in at most SLOT_WORDS words
    example: tuple[str, str]  # two such rows


SLOT_WORDS = 2


def diversity(texts: Sequence[str]) -> Diversity:
    """Distinct 3-grams, and the share of rows that differ from another row of the same length
    only in SLOT_WORDS word positions or fewer: the mark of a template filled with slot words."""
    tokenised = [words(t) for t in texts]
    trigrams = [" ".join(t[i : i + 3]) for t in tokenised for i in range(len(t) - 2)]
    distinct = len(set(trigrams)) / len(trigrams) if trigrams else 1.0
    rows_by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for row, tokens in enumerate(tokenised):
        if len(tokens) <= 2 * SLOT_WORDS:  # "Not great." and "I'm thrilled." share no template
            continue
        for key in _blanked(tokens):
            rows_by_key[key].append(row)
    templated: set[int] = set()
    example: tuple[str, str] = ("", "")
    for rows in rows_by_key.values():
        distinct_rows = {r for r in rows if tokenised[r] != tokenised[rows[0]]} | {rows[0]}
        if len(distinct_rows) > 1:
            templated.update(distinct_rows)
            if not example[0]:
                first, second = sorted(distinct_rows)[:2]
                example = (texts[first], texts[second])
    share = len(templated) / len(texts) if texts else 0.0
    return Diversity(distinct, share, example)


def _blanked(tokens: list[str]) -> list[tuple[str, ...]]:
    """The row with every set of SLOT_WORDS positions blanked (rows sharing one differ only
    there); long rows are keyed by their first 24 words to bound the work."""
    tokens = tokens[:24]
    keys = []
    for i in range(len(tokens)):
        for j in range(i + 1, len(tokens)):
            key = list(tokens)
            key[i] = key[j] = "\x00"
            keys.append((str(len(tokens)), *key))
    return keys or [(str(len(tokens)), *tokens)]


@dataclass
class EntityOverlap:
    share: float  # held-out entities whose surface appears as an entity in train
    entities: int
    seen_examples: list[str]


def entity_overlap(train: set[str], held_out: list[str], examples: int = 5) -> EntityOverlap:
    """`train` and `held_out` are entity surfaces ("type:words", lowercased)."""
    seen = [e for e in held_out if e in train]
    share = len(seen) / len(held_out) if held_out else 0.0
    common = [e for e, _ in Counter(seen).most_common(examples)]
    return EntityOverlap(share, len(held_out), common)
