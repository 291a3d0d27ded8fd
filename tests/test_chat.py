"""Chat rows: reading (OpenAI and ShareGPT), template rendering and the label masks."""

import pytest

from ftray.chat import encode_chat, read_messages
from ftray.encoding import IGNORE
from ftray.errors import FtrayError
from ftray.models import load_tokenizer
from ftray.spec import ChatSpec
from ftray.tasks import get_task
from tests.conftest import clm_raw, make_spec

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "how are you"},
    {"role": "assistant", "content": "fine"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return load_tokenizer(str(tiny_llama), "zephyr")


def labelled_text(tokenizer, feature) -> list[str]:
    """The labelled tokens as text, in runs: what the loss covers, readable."""
    runs, current = [], []
    for token, label in zip(feature["input_ids"], feature["labels"], strict=True):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def test_the_loss_covers_assistant_turns_only(tokenizer):
    feature = encode_chat(tokenizer, CONVERSATION, "assistant", 256)
    text = tokenizer.decode(feature["input_ids"])
    assert text == (
        "<s><|system|>\nBe brief.</s>\n<|user|>\nhi</s>\n<|assistant|>\nhello</s>\n"
        "<|user|>\nhow are you</s>\n<|assistant|>\nfine</s>\n"
    )
    # Each answer and the EOS that ends it, never the role header or the user's words.
    assert labelled_text(tokenizer, feature) == ["hello</s>\n", "fine</s>\n"]
    ids, labels = feature["input_ids"], feature["labels"]
    first = next(i for i, label in enumerate(labels) if label != IGNORE)
    assert tokenizer.decode(ids[:first]).endswith("hi</s>\n<|assistant|>\n")


def test_last_and_all_turns(tokenizer):
    last = encode_chat(tokenizer, CONVERSATION, "last", 256)
    assert labelled_text(tokenizer, last) == ["fine</s>\n"]
    everything = encode_chat(tokenizer, CONVERSATION, "all", 256)
    assert everything["labels"] == everything["input_ids"]


def test_truncation_keeps_labels_aligned(tokenizer):
    full = encode_chat(tokenizer, CONVERSATION, "assistant", 256)
    cut = encode_chat(tokenizer, CONVERSATION, "assistant", 30)
    assert cut["input_ids"] == full["input_ids"][:30] and cut["labels"] == full["labels"][:30]


def test_sharegpt_rows_map_their_roles():
    chat = ChatSpec(
        messages_field="conversations",
        role_key="from",
        content_key="value",
        roles={"human": "user", "gpt": "assistant"},
    )
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    assert read_messages(row, chat, "train.jsonl row 1") == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([{"role": "bot", "content": "x"}], "row 3: messages message 1: unknown role 'bot'"),
        ([{"role": "user", "content": "x"}], "row 3: messages has no assistant turn"),
        ([{"role": "assistant", "content": 5}], "message 1: 'content' must be text"),
        ("hello", "row 3: field 'messages' must be a non-empty list"),
    ],
)
def test_bad_chat_rows_get_one_line(messages, message):
    with pytest.raises(FtrayError, match=message.replace("(", r"\(")):
        read_messages({"messages": messages}, ChatSpec(), "train.jsonl row 3")


def test_a_model_without_a_template_or_a_broken_one_is_refused(tiny_llama):
    plain = load_tokenizer(str(tiny_llama))
    with pytest.raises(FtrayError, match="data.chat.template: .* has no chat template"):
        encode_chat(plain, CONVERSATION, "assistant", 64)
    broken = load_tokenizer(str(tiny_llama), "{% for m in messages %}{{ m.content | nofilter }}")
    with pytest.raises(FtrayError, match="data.chat.template: cannot render"):
        encode_chat(broken, CONVERSATION, "assistant", 64)


def test_causal_lm_reads_chats_pairs_and_plain_text(tiny_llama, tmp_path):
    spec = make_spec(clm_raw(tiny_llama))
    task = get_task("causal-lm")
    rows = [
        {"messages": CONVERSATION},
        {"prompt": "Q:", "completion": " A"},
        {"text": "plain words"},
    ]
    examples = [task.read_example(r, spec.data, f"row {i}") for i, r in enumerate(rows[:2])]
    spec.data.layout = "text"  # plain text is never guessed
    examples.append(task.read_example(rows[2], spec.data, "row 2"))
    assert [sorted(e) for e in examples] == [
        ["loss_on", "messages"],
        ["completion", "prompt"],
        ["text"],
    ]
    tokenizer = load_tokenizer(str(tiny_llama), "zephyr")
    chat, pair, text = task.encode(examples, tokenizer, [], 256)
    assert labelled_text(tokenizer, chat) == ["hello</s>\n", "fine</s>\n"]
    assert labelled_text(tokenizer, pair) == [" A</s>"]
    assert text["labels"] == text["input_ids"]


def test_ftray_eval_reads_chat_rows_with_the_trained_mapping():
    from ftray.evaluate import _data_spec, check_task_fields

    recorded = {"data": {"train": "x.jsonl", "chat": {"messages_field": "conversations"}}}
    data = _data_spec(recorded)
    assert data.chat.messages_field == "conversations"
    check_task_fields({"conversations": []}, "causal-lm", data, "test.jsonl")
    with pytest.raises(FtrayError, match="needs field\\(s\\) 'prompt', 'completion'"):
        check_task_fields({"question": "?"}, "causal-lm", data, "test.jsonl")
