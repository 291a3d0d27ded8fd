"""Dynamic batches split by what can share one forward pass: the same version and options."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

Answer = Callable[[str, list[str], dict[str, Any]], Awaitable[list[Any]]]


async def answer_grouped(
    refs: list[str], inputs: list[list[str]], options: list[dict[str, Any]], answer: Answer
) -> list[Any]:
    """One `answer(ref, inputs, options)` call per (version, options) group of a batch, each
    request's share of it in its place; a group that fails puts its exception in the places of
    its own requests only."""
    results: list[Any] = [None] * len(refs)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (ref, option) in enumerate(zip(refs, options, strict=True)):
        groups[(ref, json.dumps(option, sort_keys=True))].append(index)

    async def run(ref: str, members: list[int]) -> None:
        try:
            flat = [text for index in members for text in inputs[index]]
            answers = await answer(ref, flat, options[members[0]])
        except Exception as exc:  # reported to the requests of this group
            for index in members:
                results[index] = exc
            return
        start = 0
        for index in members:
            results[index] = answers[start : start + len(inputs[index])]
            start += len(inputs[index])

    await asyncio.gather(*(run(ref, members) for (ref, _), members in groups.items()))
    return results
