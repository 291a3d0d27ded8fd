"""Text generation for served causal-LM versions: a batch of prompts in one `generate` call,
or one prompt token by token for streaming; both honour the same sampling options.

OpenAI's semantics: `temperature` 0 is greedy; `top_p` keeps the smallest set of tokens whose
probabilities reach it; `seed` makes sampling repeatable; `stop` strings end a completion
before they appear (finish reason "stop", as EOS does); `max_tokens` caps new tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ftray.inference import Predictor

MAX_NEW_TOKENS = 32


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # False for a prompt a chat template rendered: it already holds the special tokens it wants.
    special_tokens: bool = True

    @classmethod
    def of(cls, options: dict[str, Any]) -> Sampling:
        stop = options.get("stop") or ()
        return cls(
            max_new_tokens=options.get("max_new_tokens", MAX_NEW_TOKENS),
            temperature=options.get("temperature", 0.0),
            top_p=options.get("top_p", 1.0),
            seed=options.get("seed"),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            special_tokens=options.get("special_tokens", True),
        )

    def generate_options(self) -> dict[str, Any]:
        if self.temperature <= 0:
            return {"do_sample": False}
        # top_k 0: OpenAI has no top-k cut; transformers would otherwise apply its default 50.
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}

    def generator(self, device: torch.device) -> torch.Generator | None:
        return torch.Generator(device).manual_seed(self.seed) if self.seed is not None else None


def prompt_ids(predictor: Predictor, prompt: str, sampling: Sampling) -> list[int]:
    """The prompt's tokens; prompt and completion share the model's positions, so a long
    prompt keeps its end (what the completion continues) and the completion at least one."""
    budget = max(1, predictor.max_length - sampling.max_new_tokens)
    ids = predictor.tokenizer(prompt, add_special_tokens=sampling.special_tokens)["input_ids"]
    return ids[-budget:]


def complete(predictor: Predictor, prompts: list[str], sampling: Sampling) -> list[dict[str, Any]]:
    """Completions of all `prompts` from one `generate` call, with their token counts as OpenAI
    reports them. Prompts are padded on the left, so every row's next token follows its own
    last one; a row that ends (EOS or a stop string) is cut there."""
    tokenizer = predictor.tokenizer
    rows = [prompt_ids(predictor, prompt, sampling) for prompt in prompts]
    longest = max(map(len, rows))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (longest - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows])
    if sampling.seed is not None:  # generate samples from torch's global generator
        torch.manual_seed(sampling.seed)
    output = predictor.model.generate(
        input_ids=input_ids.to(predictor.device),
        attention_mask=mask.to(predictor.device),
        max_new_tokens=min(sampling.max_new_tokens, predictor.max_length - longest),
        **sampling.generate_options(),
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
    )
    return [
        completion_of(tokenizer, row[longest:].tolist(), len(ids), sampling.stop)
        for row, ids in zip(output, rows, strict=True)
    ]


def completion_of(
    tokenizer: Any, new_tokens: list[int], prompt_tokens: int, stop: tuple[str, ...] = ()
) -> dict[str, Any]:
    eos = tokenizer.eos_token_id
    finished = eos in new_tokens
    if finished:  # later positions of a finished row are padding
        new_tokens = new_tokens[: new_tokens.index(eos) + 1]
    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
    cut = first_stop(text, stop)
    return {
        "completion": text if cut is None else text[:cut],
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(new_tokens),
        "finish_reason": "stop" if finished or cut is not None else "length",
    }


def first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    """Where the first stop string begins in `text`, or None."""
    found = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    return min(found) if found else None


def stream(predictor: Predictor, prompt: str, sampling: Sampling) -> Iterator[dict[str, Any]]:
    """One completion token by token: `{"text": delta}` as the text grows, then
    `{"finish_reason", "prompt_tokens", "completion_tokens"}`. The same text as `complete` at
    temperature 0. Each token is one forward pass made when the consumer asks for it, so a
    consumer that stops (a client gone) stops the generation."""
    tokenizer, eos = predictor.tokenizer, predictor.tokenizer.eos_token_id
    ids = prompt_ids(predictor, prompt, sampling)
    tokens = TokenSteps(predictor, ids, sampling)
    # Text that could still turn into a stop string, or ends inside a multi-byte character,
    # waits for the next token.
    held_back = max((len(s) for s in sampling.stop), default=1) - 1
    new: list[int] = []
    sent, finish = "", "length"
    for token in tokens.take(min(sampling.max_new_tokens, predictor.max_length - len(ids))):
        new.append(token)
        text = tokenizer.decode(new, skip_special_tokens=True)
        cut = first_stop(text, sampling.stop)
        if token == eos or cut is not None:
            finish, text = "stop", text if cut is None else text[:cut]
            break
        ready = len(text) - held_back
        if ready > len(sent) and not text.endswith("\ufffd"):
            yield {"text": text[len(sent) : ready]}
            sent = text[:ready]
    else:
        text = tokenizer.decode(new, skip_special_tokens=True)
    if len(text) > len(sent):
        yield {"text": text[len(sent) :]}
    yield {"finish_reason": finish, "prompt_tokens": len(ids), "completion_tokens": len(new)}


class TokenSteps:
    """Next tokens one forward pass at a time: with a KV cache, except under prompt learning,
    whose PEFT forward prepends its virtual tokens on every call (those models recompute the
    sequence for each token)."""

    def __init__(self, predictor: Predictor, ids: list[int], sampling: Sampling) -> None:
        self.predictor, self.sampling = predictor, sampling
        self.sequence = torch.tensor([ids], device=predictor.device)
        self.cached = not prompt_learning(predictor.model)
        self.past: Any = None
        self.random = sampling.generator(predictor.device)

    def take(self, count: int) -> Iterator[int]:
        for _ in range(count):
            self.predictor.activate()  # other requests may have switched the shared adapter
            with torch.no_grad():
                step = self.sequence[:, -1:] if self.past is not None else self.sequence
                output = self.predictor.model(
                    input_ids=step, past_key_values=self.past, use_cache=self.cached
                )
            self.past = output.past_key_values if self.cached else None
            token = self.pick(output.logits[0, -1].float())
            self.sequence = torch.cat([self.sequence, self.sequence.new_tensor([[token]])], 1)
            yield token

    def pick(self, logits: torch.Tensor) -> int:
        sampling = self.sampling
        if sampling.temperature <= 0:
            return int(logits.argmax())
        probabilities = torch.softmax(logits / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:  # the nucleus: the most likely tokens up to top_p in all
            ordered, order = probabilities.sort(descending=True)
            outside = ordered.cumsum(-1) - ordered > sampling.top_p
            probabilities[order[outside]] = 0.0
        return int(torch.multinomial(probabilities, 1, generator=self.random))


def prompt_learning(model: Any) -> bool:
    configs = getattr(model, "peft_config", None) or {}
    active = getattr(model, "active_adapter", None)
    config = configs.get(active) if isinstance(active, str) else None
    return bool(config is not None and config.is_prompt_learning)
