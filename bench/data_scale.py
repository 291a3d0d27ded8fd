"""Does a worker's memory and start-up stay flat as the training set grows? Streamed (Ray Data,
Parquet on an S3 server) against in-memory (every worker reads and encodes the whole set),
measured in one run.

    python bench/data_scale.py [--steps 150] [--large 1000000] [--model all-MiniLM-L6-v2]

Each run: `ftray.train`, 2 workers x 0.5 CPU (the other CPU is Ray Data's), a tiny random BERT
(or `--model`, any model ftray can load: one whose step costs more than reading and tokenizing a
row shows whether the stream keeps up with real training), batch 32, `max_steps` optimizer
steps, generated rows (seeded templates, two labels). Runs: in-memory 10k and 100k rows (local
JSONL), streamed 10k and `--large` rows (Parquet on moto's S3 server). Prints per-worker peak
RSS, worker start-up (process start to the first step: data, model, engine) and steady-state
samples/s, with the ratios large / 10k for each path; then the rows/s the streamed pipeline
delivers on its own (no training competing for the CPUs; read ahead as far as training reads).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from s3server import start_s3  # noqa: E402  (beside this script, on sys.path)

from ftray.spec import spec_from_dict  # noqa: E402

SUBJECTS = ["the kettle", "this lamp", "the novel", "our tent", "the film", "that blender"]
GOOD = ["works well", "is a delight", "exceeded what we hoped", "holds up nicely"]
BAD = ["broke quickly", "is a letdown", "wasted our money", "falls apart"]
EXTRA = ["after a month", "on day one", "for the price", "in the rain", "at home", ""]


def rows(count: int, seed: int) -> list[dict]:
    """Generated reviews: subject + verdict + context; the verdict decides the label."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        positive = rng.random() < 0.5
        verdict = rng.choice(GOOD if positive else BAD)
        text = f"{rng.choice(SUBJECTS)} {verdict} {rng.choice(EXTRA)} #{rng.randrange(10**6)}"
        out.append({"text": text.strip(), "label": "positive" if positive else "negative"})
    return out


def write_jsonl(path: Path, data: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return str(path)


def upload_parquet(count: int, prefix: str, work: Path, files: int = 20) -> str:
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq

    s3 = boto3.client("s3")
    per_file = -(-count // files)
    for part in range(files):
        chunk = rows(min(per_file, count - part * per_file), seed=1000 + part)
        local = work / f"{prefix}-{part}.parquet"
        pq.write_table(pa.Table.from_pylist(chunk), local)
        s3.upload_file(str(local), "bench", f"{prefix}/part-{part:03d}.parquet")
        local.unlink()
    return f"s3://bench/{prefix}/"


def run(model: str, train: str, validation: str, steps: int, work: Path, streamed: bool):
    from ftray.train import train as train_job

    spec = spec_from_dict(
        {
            "name": "data-scale",
            "model": {"name": model, "max_length": 32},
            "data": {"train": train, "validation": validation, "streaming": streamed},
            "strategy": {"kind": "full"},
            # max_steps ends the run; a small set is trained for as many epochs as that takes.
            "train": {"epochs": 100, "max_steps": steps, "batch_size": 32, "learning_rate": 1e-3},
            "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
            "checkpoint": {"storage_path": str(work / "runs"), "output_dir": str(work / "out")},
        }
    )
    started = time.perf_counter()
    result = train_job(spec, progress=False)
    return {
        "peak_rss_mb": round(result.metrics["peak_memory_mb"], 1),
        "worker_startup_s": round(result.timings.startup_s or 0, 2),
        "samples_per_s": round(result.timings.samples_per_second or 0, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def pipeline_rate(model: str, url: str, work: Path, rows_read: int = 200_000) -> float:
    """Rows/s the streamed pipeline alone delivers (read, tokenize, split; no training): two
    consumers iterate their shards of the first `rows_read` rows as the workers do, with every
    CPU free for Ray Data."""
    import threading

    from ftray.data import load_splits
    from ftray.streaming import EXAMPLE_ID, train_dataset

    validation = write_jsonl(work / "pipeline-validation.jsonl", rows(100, seed=3))
    spec = spec_from_dict(
        {
            "name": "pipeline",
            "model": {"name": model, "max_length": 32},
            "data": {"train": url, "validation": validation},
        }
    )
    # Read ahead as far as training reads; each shard read to its end: a shard left half-read
    # keeps Ray Data's threads reading it, and those kill the process if Ray shuts down first.
    dataset = train_dataset(spec, load_splits(spec)).limit(rows_read)
    shards = dataset.streaming_split(2, equal=False)
    start, elapsed, seen, failures = threading.Barrier(2), [], [], []

    def consume(shard) -> None:
        try:
            start.wait()
            began, count = time.perf_counter(), 0
            for table in shard.iter_batches(
                batch_size=32, batch_format="pyarrow", local_shuffle_buffer_size=10_000
            ):
                count += len(table.drop_columns([EXAMPLE_ID]).to_pylist())
            elapsed.append(time.perf_counter() - began)
            seen.append(count)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=consume, args=(shard,)) for shard in shards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        # Raised here, not in the thread, so it reaches the caller before Ray shuts down.
        failure = failures[0]
        raise RuntimeError(f"a consumer of the streamed set failed: {failure!r}") from failure
    return sum(seen) / max(elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--model", help="a model to train instead of the tiny random BERT")
    args = parser.parse_args()

    from ftray.runtime import ray_runtime
    from ftray.tiny_models import build_tiny_model

    server: Any = start_s3()  # moto on 127.0.0.1, bucket "bench"
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ftray-data-scale-") as tmp:
        work = Path(tmp)
        model = args.model or str(
            build_tiny_model(work / "bert", [r["text"] for r in rows(2000, 7)], "bert")
        )
        validation = write_jsonl(work / "validation.jsonl", rows(1000, seed=99))
        sources = {
            "in-memory 10k": (write_jsonl(work / "10k.jsonl", rows(10_000, 1)), False),
            "in-memory 100k": (write_jsonl(work / "100k.jsonl", rows(100_000, 2)), False),
            "streamed 10k": (upload_parquet(10_000, "s10k", work), True),
            f"streamed {args.large // 1000}k": (upload_parquet(args.large, "slarge", work), True),
        }
        with ray_runtime():
            for name, (train, streamed) in sources.items():
                figures[name] = run(model, train, validation, args.steps, work / name, streamed)
                print(name, figures[name], flush=True)
            large = list(sources)[-1]
            try:
                pipeline = pipeline_rate(model, sources[large][0], work)
            except Exception:
                # Printed now: leaving Ray's session with the split's threads alive can end the
                # process (Ray's core worker exits it) before Python prints the traceback.
                traceback.print_exc()
                raise
        figures["pipeline alone"] = {"rows_per_s": round(pipeline), "source": large}
    server.stop()
    names = list(figures)[:4]
    print(json.dumps(figures, indent=1))
    for path, (small, large) in {"in-memory": names[:2], "streamed": names[2:]}.items():
        a, b = figures[small], figures[large]
        print(
            f"{path}: {large} / {small}: peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x, "
            f"worker start-up {b['worker_startup_s'] / a['worker_startup_s']:.2f}x, "
            f"samples/s {b['samples_per_s'] / a['samples_per_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
