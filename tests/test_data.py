import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, clm_raw, make_spec, ner_raw, sentiment_raw, write_jsonl

from ftray.data import Splits, TrainStream, load_splits, read_rows, stratified_split
from ftray.encoding import IGNORE, Collator
from ftray.errors import FtrayError
from ftray.models import load_tokenizer
from ftray.tasks import encode

ROWS = [
    {"text": f"review number {i}", "label": "pos" if i % 3 else "neg", "group": f"g{i % 2}"}
    for i in range(30)
]


def spec_for(tmp_path, train, validation=None, data=None, **sections):
    raw = sentiment_raw(tmp_path / "model", **sections)
    raw["data"] = {"train": str(train), "group_field": "group", **(data or {})}
    if validation:
        raw["data"]["validation"] = str(validation)
    return make_spec(raw)


def test_jsonl_csv_and_parquet_read_the_same_rows(tmp_path):
    jsonl = write_jsonl(tmp_path / "d.jsonl", ROWS)
    with (tmp_path / "d.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "group"])
        writer.writeheader()
        writer.writerows(ROWS)
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    for path in (jsonl, tmp_path / "d.csv", tmp_path / "d.parquet"):
        assert read_rows(str(path)) == ROWS


def test_files_saved_with_a_byte_order_mark_and_crlf_read_the_same_rows(tmp_path):
    # Excel's "CSV UTF-8" and Windows editors start the file with a BOM and end lines in CRLF.
    (tmp_path / "d.jsonl").write_bytes(
        b"\xef\xbb\xbf"
        + write_jsonl(tmp_path / "plain.jsonl", ROWS).read_bytes().replace(b"\n", b"\r\n")
    )
    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["text", "label", "group"], lineterminator="\r\n"
        )
        writer.writeheader()
        writer.writerows(ROWS)
    assert read_rows(str(tmp_path / "d.jsonl")) == ROWS
    assert read_rows(str(tmp_path / "d.csv")) == ROWS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "has no rows"),
        ('{"text": "a", "label": "x"}\n{"text": oops}\n', "d.jsonl line 2: invalid JSON"),
        ("[1, 2]\n", "d.jsonl line 1: expected a JSON object"),
    ],
)
def test_unreadable_files_name_the_file_and_line(tmp_path, content, message):
    (tmp_path / "d.jsonl").write_text(content)
    with pytest.raises(FtrayError, match=message):
        read_rows(str(tmp_path / "d.jsonl"))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FtrayError, match="data.train: file not found"):
        read_rows(str(tmp_path / "absent.jsonl"))
    with pytest.raises(FtrayError, match="cannot tell the format of d.txt"):
        read_rows(str(tmp_path / "d.txt"))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"label": "pos", "group": "g"}, "data.train row 3: field 'text' is missing"),
        ({"text": "", "label": "pos", "group": "g"}, "data.train row 3: field 'text' is empty"),
        ({"text": 5, "label": "pos", "group": "g"}, "field 'text' is not a string"),
        ({"text": "fine", "group": "g"}, "data.train row 3: field 'label' is missing"),
    ],
)
def test_a_bad_row_is_reported_by_number(tmp_path, row, message):
    train = write_jsonl(tmp_path / "t.jsonl", [*ROWS[:2], row, *ROWS[2:]])
    with pytest.raises(FtrayError, match=message):
        load_splits(spec_for(tmp_path, train))


def test_labels_are_inferred_or_checked_against_the_declared_list(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS)
    assert load_splits(spec_for(tmp_path, train)).labels == ["neg", "pos"]
    spec = spec_for(tmp_path, train, model={"labels": ["pos", "neg", "meh"]})
    assert load_splits(spec).labels == ["pos", "neg", "meh"]  # declared order is kept
    with pytest.raises(FtrayError, match="label 'neg' is not in model.labels \\(pos\\)"):
        load_splits(spec_for(tmp_path, train, model={"labels": ["pos"]}))


def test_validation_labels_must_be_known(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS)
    validation = write_jsonl(tmp_path / "v.jsonl", [{"text": "x", "label": "odd", "group": "g0"}])
    with pytest.raises(FtrayError, match="data.validation example 1: label 'odd'"):
        load_splits(spec_for(tmp_path, train, validation))


def test_seeded_split_is_stable_stratified_and_disjoint(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS)
    first = load_splits(spec_for(tmp_path, train))
    second = load_splits(spec_for(tmp_path, train))
    assert first.validation == second.validation
    assert len(first.validation) == 6  # 20% of each label: 2 of 10 neg, 4 of 20 pos
    assert sum(e["label"] == "neg" for e in first.validation) == 2
    texts = {e["text"] for e in first.train}
    assert not texts & {e["text"] for e in first.validation}
    assert first.groups == ["g0", "g1"]


def test_fraction_subsamples_train_and_refuses_an_empty_split(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS)
    spec = spec_for(tmp_path, train, data={"fraction": 0.5})
    assert len(load_splits(spec).train) == 12  # half of the 24 left after the split
    spec.data.fraction = 0.01
    with pytest.raises(FtrayError, match="data.fraction: 0.01 leaves the train split empty"):
        load_splits(spec)
    kept, taken = stratified_split([{"label": "a"}] * 3, 0.1, 0, "label")
    assert (len(kept), len(taken)) == (3, 0)


def test_ner_tags_align_to_the_first_sub_word(tiny_bert):
    tokenizer = load_tokenizer(str(tiny_bert))
    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    example = {"tokens": ["Zanzibarovic", "visited", "Kelderby"], "tags": ["B-PER", "O", "B-LOC"]}
    [feature] = encode([example], "token-classification", tokenizer, labels, [], 64)
    pieces = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    word_ids = tokenizer([example["tokens"]], is_split_into_words=True).word_ids(0)
    assert len(pieces) > len(example["tokens"]) + 2  # the invented name splits into sub-words
    expected = []
    for position, word in enumerate(word_ids):
        first = word is not None and (position == 0 or word_ids[position - 1] != word)
        expected.append(labels.index(example["tags"][word]) if first else IGNORE)
    assert feature["labels"] == expected
    assert [t for t in feature["labels"] if t != IGNORE] == [1, 0, 3]


def test_ner_rows_need_one_tag_per_token(tmp_path):
    rows = [{"tokens": ["a", "b"], "tags": ["O"]}]
    raw = ner_raw(tmp_path / "m")
    raw["data"] = {"train": str(write_jsonl(tmp_path / "n.jsonl", rows))}
    with pytest.raises(FtrayError, match="data.train row 1: 2 tokens but 1 tags"):
        load_splits(make_spec(raw))


def test_causal_lm_masks_the_prompt_and_ends_with_eos(tiny_llama):
    tokenizer = load_tokenizer(str(tiny_llama))
    example = {"prompt": "Colour of lime?\nAnswer:", "completion": " green"}
    [feature] = encode([example], "causal-lm", tokenizer, [], [], 64)
    prompt_ids = tokenizer(example["prompt"])["input_ids"]
    n = len(prompt_ids)
    assert feature["input_ids"][:n] == prompt_ids
    assert feature["labels"][:n] == [IGNORE] * n
    assert feature["labels"][n:] == feature["input_ids"][n:]
    assert feature["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(feature["input_ids"][n:-1]) == " green"


def test_collator_pads_to_the_longest_row():
    batch = Collator(pad_token_id=0)(
        [
            {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [1, IGNORE, 2]},
            {"input_ids": [5], "attention_mask": [1], "labels": [3]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, IGNORE, 2], [3, IGNORE, IGNORE]]
    assert Collator(0, pad_to_multiple_of=8)([{"input_ids": [1, 2, 3]}])["input_ids"].shape[1] == 8


def test_the_examples_load_for_all_three_tasks(tmp_path, tiny_bert, tiny_llama):
    sentiment = load_splits(make_spec(sentiment_raw(tiny_bert)))
    assert sentiment.labels == ["negative", "positive"]
    assert sentiment.groups == ["books", "electronics", "kitchen", "movies"]
    ner = load_splits(make_spec(ner_raw(tiny_bert)))
    assert ner.labels == [
        "O",
        "B-LOC",
        "I-LOC",
        "B-MISC",
        "I-MISC",
        "B-ORG",
        "I-ORG",
        "B-PER",
        "I-PER",
    ]
    clm = load_splits(make_spec(clm_raw(tiny_llama)))
    assert clm.labels == [] and len(clm.train) == 800
    assert (EXAMPLES / "ner/data/train.jsonl").exists()


def test_a_training_set_says_how_its_size_was_found():
    rows = [{"text": "fine", "label": "positive"}] * 3
    assert Splits(train=rows, validation=rows).train_size("checks on") == "3 train"
    estimated = TrainStream(source=None, rows=1000, exact=False)  # type: ignore[arg-type]
    streamed = Splits(train=rows, validation=rows, stream=estimated)
    assert streamed.train_rows == 1000
    assert streamed.train_size("checks on") == "about 1000 train (streamed; checks on its first 3)"
