"""Streamed training data without Ray: sources (directories, globs), the driver's sample and
refusals, the encoder Ray Data runs, and a worker's batches (every row once, fillers, the
accumulation boundary, resuming by example ids). The Ray run from S3 with a killed worker is in
test_train_ray.py."""

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TEMPLATED, make_spec, read_jsonl, sentiment_raw

from ftray.checkpointing import TrainState
from ftray.data import load_splits, read_rows
from ftray.datacheck import check_data
from ftray.early_stopping import EarlyStopping
from ftray.encoding import IGNORE, Collator
from ftray.errors import FtrayError
from ftray.sources import resolve
from ftray.streaming import (
    EXAMPLE_ID,
    MIN_BUFFER_BYTES,
    EncodeRows,
    StreamedTrainData,
    TrainedIds,
    block_rows,
    buffer_bytes,
    example_id,
    filler_batch,
)

ROWS = read_jsonl(TEMPLATED / "templated-sentiment/train.jsonl")


def write_parts(directory: Path, rows: list[dict], parts: int = 3) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        pq.write_table(pa.Table.from_pylist(rows[part::parts]), directory / f"part-{part}.parquet")
    return directory


def streamed_raw(model: Path, train: str, **data) -> dict:
    validation = str(TEMPLATED / "templated-sentiment/validation.jsonl")
    return sentiment_raw(
        model, data={"train": train, "validation": validation, "streaming": True, **data}
    )


def test_a_directory_and_a_glob_read_as_their_files_together(tmp_path):
    write_parts(tmp_path / "train", ROWS)
    (tmp_path / "train" / "_SUCCESS").write_text("")  # writers' markers are not data
    by_directory = read_rows(str(tmp_path / "train"))
    by_glob = read_rows(str(tmp_path / "train" / "part-*.parquet"))
    assert Counter(map(example_id, by_directory)) == Counter(map(example_id, ROWS))
    assert by_glob == by_directory


def test_sources_name_the_field_when_files_are_missing_or_mixed(tmp_path):
    with pytest.raises(FtrayError, match=r"^data.train: no data files at .*nothing"):
        resolve(str(tmp_path / "nothing" / "*.parquet"), "auto", "data.train")
    write_parts(tmp_path / "mixed", ROWS[:10], parts=1)
    (tmp_path / "mixed" / "notes.txt").write_text("x")
    with pytest.raises(FtrayError, match=r"^data.train: cannot tell the format .*parquet, unknown"):
        resolve(str(tmp_path / "mixed"), "auto", "data.train")


def test_a_streamed_set_keeps_a_sample_on_the_driver(tmp_path, tiny_bert):
    write_parts(tmp_path / "train", ROWS)
    splits = load_splits(make_spec(streamed_raw(tiny_bert, str(tmp_path / "train"))))
    assert splits.stream is not None and splits.stream.exact
    assert splits.train_rows == len(ROWS) and len(splits.train) == len(ROWS)  # under the cap
    assert splits.labels == ["negative", "positive"]
    report = check_data(make_spec(streamed_raw(tiny_bert, str(tmp_path / "train"))), splits)
    assert report.findings[0].message.startswith(f"{len(ROWS)} train (streamed; these checks")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"validation": None}, "data.validation: a streamed training set needs"),
        ({"test_split": 0.1}, "data.test_split: a streamed training set needs data.test"),
        ({"fraction": 0.5}, "data.fraction: cannot subsample a streamed training set"),
    ],
)
def test_what_needs_the_whole_set_is_refused_for_a_stream(tmp_path, tiny_bert, data, message):
    write_parts(tmp_path / "train", ROWS)
    raw = streamed_raw(tiny_bert, str(tmp_path / "train"))
    raw["data"].update(data)
    with pytest.raises(FtrayError, match=message):
        load_splits(make_spec(raw))


def encoded_table(tiny_bert, rows: list[dict]) -> pa.Table:
    spec = make_spec(streamed_raw(tiny_bert, "unused"))
    return EncodeRows(spec.model_dump(mode="json"), ["negative", "positive"], [])(
        pa.Table.from_pylist(rows)
    )


def test_the_encoder_gives_features_and_stable_ids(tiny_bert):
    table = encoded_table(tiny_bert, ROWS[:40])
    assert table.num_rows == 40
    assert table.column(EXAMPLE_ID).to_pylist() == [example_id(r) for r in ROWS[:40]]
    assert set(table.column("labels").to_pylist()) == {0, 1}
    with pytest.raises(FtrayError, match="label 'meh' is not among the labels"):
        encoded_table(tiny_bert, [{**ROWS[0], "label": "meh"}])


class FakeShard:
    """What a worker gets from Ray Train: iter_batches over its rows (here, all of them)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def iter_batches(self, batch_size, batch_format, local_shuffle_buffer_size, local_shuffle_seed):
        assert batch_format == "pyarrow"
        order = np.random.default_rng(local_shuffle_seed).permutation(self.table.num_rows)
        shuffled = self.table.take(order)
        for start in range(0, shuffled.num_rows, batch_size):
            yield shuffled.slice(start, batch_size)


def streamed_data(tiny_bert, rows, accumulation=1) -> StreamedTrainData:
    raw = streamed_raw(tiny_bert, "unused")
    raw["train"].update(batch_size=8, gradient_accumulation_steps=accumulation)
    spec = make_spec(raw)
    collate = Collator(0)
    table = encoded_table(tiny_bert, rows)
    filler = filler_batch(collate, table.drop_columns([EXAMPLE_ID]).slice(0, 1).to_pylist()[0])
    return StreamedTrainData(FakeShard(table), collate, filler, spec, rank=0)


def test_an_epoch_trains_every_row_once_and_pads_to_the_accumulation_step(tiny_bert):
    data = streamed_data(tiny_bert, ROWS[:36], accumulation=2)  # 5 batches: 8 8 8 8 4
    batches = list(data.batches(epoch=0, resumed_micro=0))
    assert [last for _, last in batches] == [False] * 5 + [True]
    real, filler = batches[:5], batches[5][0]
    assert [len(b["labels"]) for b, _ in real] == [8, 8, 8, 8, 4]
    assert (filler["labels"] == IGNORE).all() and int(filler["tokens"]) == 0
    trained = np.concatenate(data.trained).tolist()
    assert Counter(trained) == Counter(example_id(r) for r in ROWS[:36])


def test_a_resumed_epoch_skips_exactly_what_its_checkpoint_trained(tiny_bert, tmp_path):
    rows = ROWS[:40] + ROWS[:3]  # three rows twice: equal ids, each copy counted
    first = streamed_data(tiny_bert, rows)
    epoch = first.batches(epoch=2, resumed_micro=0)
    for _ in range(3):
        next(epoch)
    state = TrainState(stopper=EarlyStopping("max", 0, 0.0), epoch=2, micro_in_epoch=3)
    first.save(tmp_path, state, rank=0)

    resumed = streamed_data(tiny_bert, rows)
    resumed.restore(tmp_path, state)
    list(resumed.batches(epoch=2, resumed_micro=3))
    done_before = np.concatenate(first.trained).tolist()
    restored, *new = resumed.trained  # carried into later checkpoints of the epoch
    assert Counter(restored.tolist()) == Counter(done_before) and len(done_before) == 24
    done_after = np.concatenate(new).tolist()
    assert len(done_after) == len(rows) - 24
    assert Counter(done_before + done_after) == Counter(example_id(r) for r in rows)


def test_blocks_grow_with_the_set_but_each_worker_still_gets_many(tiny_bert):
    raw = streamed_raw(tiny_bert, "s3://bucket/train/")
    spec = make_spec(raw | {"scaling": {"num_workers": 2}})
    assert block_rows(1_000, spec) == 256  # small sets: blocks of a tokenizer call
    assert block_rows(100_000, spec) == 100_000 // 64  # 32 blocks a worker
    assert block_rows(10_000_000, spec) == 4096  # a round trip per 4,096 rows at most


def test_read_ahead_is_a_few_blocks_a_worker_with_a_floor(tiny_bert):
    raw = streamed_raw(tiny_bert, "s3://bucket/train/")
    short = make_spec(raw | {"scaling": {"num_workers": 2}})
    assert buffer_bytes(4096, short) == MIN_BUFFER_BYTES  # 4,096 rows x 48 tokens: small
    long = make_spec(
        raw | {"scaling": {"num_workers": 2}, "model": {**raw["model"], "max_length": 512}}
    )
    assert buffer_bytes(4096, long) == 2 * 2 * 4096 * 512 * 32  # 2 blocks a worker


def test_trained_ids_are_a_multiset():
    skip = TrainedIds(np.array([5, 7, 7]))
    assert skip.take(np.array([7, 1, 7, 7, 5, 5])).tolist() == [1, 0, 1, 0, 1, 0]
    assert not TrainedIds().take(np.array([1, 2])).any()


def test_the_filler_trains_nothing(tiny_bert):
    data = streamed_data(tiny_bert, ROWS[:8])
    logits = torch.randn(1, 2, requires_grad=True)
    from ftray.losses import cross_entropy

    loss, positions = cross_entropy(logits, data.filler["labels"])
    loss.backward()
    assert positions == 0 and float(loss.detach()) == 0 and not logits.grad.any()
