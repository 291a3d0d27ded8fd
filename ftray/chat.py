"""Chat rows for causal-LM training: OpenAI-style `messages` (or ShareGPT `conversations`,
mapped by `data.chat`), rendered by the model's chat template, with labels on the turns the
loss covers (the assistant's, by default).

Which tokens belong to a turn is found on the rendered text, not guessed from token ids: a
trained message's span runs from the end of the conversation rendered up to it (with the
generation prompt, i.e. where the model starts answering) to the end of the conversation
rendered through it. Tokens whose characters start in a span are labelled. This needs a
template that renders a conversation's beginning the same whether or not more follows, which
every common template does; one that does not is refused with the message it failed on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftray.encoding import IGNORE
from ftray.errors import FtrayError, first_line

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ftray.spec import ChatSpec

ROLES = ("system", "user", "assistant")

# For base models without a template of their own (`data.chat.template: zephyr`): each turn
# opens with its role and ends with EOS, so a served model stops after its answer.
TEMPLATES = {
    "zephyr": (
        "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
        "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
}


def template_text(template: str | None) -> str | None:
    """The Jinja source of `data.chat.template`: a built-in name, or the template itself."""
    return TEMPLATES.get(template, template) if template else None


def read_messages(row: dict[str, Any], chat: ChatSpec, at: str) -> list[dict[str, str]]:
    """A row's conversation as {"role", "content"} messages in OpenAI's roles, checked."""
    name = chat.messages_field
    raw = row.get(name)
    if not isinstance(raw, list) or not raw:
        raise FtrayError(f"{at}: field {name!r} must be a non-empty list of messages")
    messages = []
    for number, message in enumerate(raw, start=1):
        where = f"{at}: {name} message {number}"
        if not isinstance(message, dict):
            raise FtrayError(f"{where} is not an object")
        role = message.get(chat.role_key)
        role = chat.roles.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise FtrayError(
                f"{where}: unknown role {role!r} (system, user or assistant; "
                "map other names with data.chat.roles)"
            )
        content = message.get(chat.content_key)
        if not isinstance(content, str):
            raise FtrayError(f"{where}: {chat.content_key!r} must be text")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise FtrayError(f"{at}: {name} has no assistant turn to learn from")
    return messages


def trained_spans(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], loss_on: str, text: str
) -> list[tuple[int, int]]:
    """The character spans of `text` (the rendered conversation) the loss covers: every
    assistant turn, the last one, or all of it."""
    if loss_on == "all":
        return [(0, len(text))]
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if loss_on == "last":
        assistant = assistant[-1:]
    return [turn_span(tokenizer, messages, i, text) for i in assistant]


def render(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], prompt: bool = False
) -> str:
    """The template's text of `messages`; with `prompt`, ending where the assistant answers."""
    if not getattr(tokenizer, "chat_template", None):
        raise FtrayError(
            "data.chat.template: the model's tokenizer has no chat template; "
            "give one (Jinja) or a built-in name (zephyr)"
        )
    if not messages:
        return ""
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    except Exception as exc:  # Jinja errors and templates that raise on these messages
        message = f"data.chat.template: cannot render a conversation: {first_line(exc)}"
        raise FtrayError(message) from None
    return str(text)


def encode_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    loss_on: str,
    max_length: int,
) -> dict[str, list[int]]:
    """Token ids and labels of one conversation, labels only where `loss_on` says."""
    text = render(tokenizer, messages)
    spans = trained_spans(tokenizer, messages, loss_on, text)
    encoded = tokenizer(
        text,
        add_special_tokens=False,  # the template writes the special tokens it wants
        return_offsets_mapping=True,
        truncation=True,
        max_length=max_length,
    )
    ids = encoded["input_ids"]
    labels = [
        token if any(start <= a < end for start, end in spans) else IGNORE
        for token, (a, _) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def turn_span(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], index: int, text: str
) -> tuple[int, int]:
    """Where message `index`'s turn lies in `text`, the whole conversation rendered."""
    before = render(tokenizer, messages[:index], prompt=True)
    through = render(tokenizer, messages[: index + 1])
    if not (through.startswith(before) and text.startswith(through)):
        raise FtrayError(
            f"data.chat.template: the template renders message {index + 1} differently when "
            "more follows, so its tokens cannot be found; set data.chat.loss_on: all"
        )
    return len(before), len(through)
