"""Registry throughput against raw boto3, measured in the same run on a local S3 server.

    python bench/registry.py [--mb 200] [--rounds 3]

Starts moto's S3 server on 127.0.0.1 and moves the same ~200 MB model (random, incompressible
weights) through:
- raw boto3 `upload_file` / `download_file` (its default transfer settings), and
- ftray: `Registry.register` (sha256 + upload + manifest + aliases + events) and
  `Registry.pull` (download + sha256 check + placement), with a cold cache, once with blobs on
  boto3's transfers (FTRAY_S3_CRT=0) and once on the CRT client (when `awscrt` is installed).
Rounds alternate them and the medians are compared with raw boto3 (targets with the CRT: push
>= 1.0, pull >= 1.5). Then: bytes stored by a second version on an unchanged base (target 0),
and an adapter version's size as a share of the full model it adapts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s3server import start_s3  # noqa: E402  (beside this script, on sys.path)


def make_model(directory: Path, megabytes: int) -> Path:
    directory.mkdir(parents=True)
    with (directory / "model.safetensors").open("wb") as handle:
        for _ in range(megabytes):
            handle.write(os.urandom(1024 * 1024))
    (directory / "config.json").write_text(json.dumps({"model_type": "bench", "hidden_size": 384}))
    return directory


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    import boto3

    from registry import BlobCache, Registry
    from registry.s3_store import S3Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = start_s3()
    client = boto3.client("s3")
    scratch = Path(tempfile.mkdtemp(prefix="ftray-bench-"))
    try:
        model = make_model(scratch / "model", args.mb)
        size = sum(p.stat().st_size for p in model.iterdir())
        clients = ["s3transfer", "crt"] if importlib.util.find_spec("awscrt") else ["s3transfer"]
        push: dict[str, list[float]] = {name: [] for name in ["boto3", *clients]}
        pull: dict[str, list[float]] = {name: [] for name in ["boto3", *clients]}
        weights = str(model / "model.safetensors")
        for round_ in range(args.rounds):
            key = f"raw/{round_}/model.safetensors"
            push["boto3"].append(timed(lambda k=key: client.upload_file(weights, "bench", k)))
            target = scratch / f"raw-{round_}.bin"
            pull["boto3"].append(
                timed(lambda k=key, t=target: client.download_file("bench", k, str(t)))
            )
            target.unlink()
            for name in clients:
                os.environ["FTRAY_S3_CRT"] = "1" if name == "crt" else "0"
                # A fresh registry prefix and cold cache each round: every byte really moves.
                cache, pulled = scratch / f"cache-{round_}", scratch / f"pull-{round_}"
                registry = Registry(S3Store(f"s3://bench/{uuid.uuid4().hex}"), BlobCache(cache))
                assert registry.store.transfers.name == name
                push[name].append(timed(lambda r=registry: r.register(model, "bench", "full")))
                pull[name].append(timed(lambda r=registry, p=pulled: r.pull("bench:1", p)))
                shutil.rmtree(pulled)
                shutil.rmtree(cache)
        os.environ.pop("FTRAY_S3_CRT")

        mb = size / 1e6
        medians = {
            way: {name: statistics.median(times) for name, times in runs.items()}
            for way, runs in (("push", push), ("pull", pull))
        }
        for way, baseline in (("push", "upload_file"), ("pull", "download_file")):
            raw = medians[way]["boto3"]
            for name in clients:
                ours = medians[way][name]
                print(
                    f"{way} on {name}: ftray {mb / ours:.0f} MB/s, boto3 {baseline} "
                    f"{mb / raw:.0f} MB/s -> ratio {raw / ours:.3f}"
                )

        # Deduplication: a base registered once, two adapters on it.
        registry = Registry(
            S3Store(f"s3://bench/{uuid.uuid4().hex}"), BlobCache(scratch / "cache-dedupe")
        )
        registry.register(model, "base-model", "base", reuse_identical=True)
        after_base = registry.bytes_uploaded
        registry.register(model, "base-model", "base", reuse_identical=True)
        second_base_bytes = registry.bytes_uploaded - after_base
        adapter = scratch / "adapter"
        adapter.mkdir()
        (adapter / "adapter_model.safetensors").write_bytes(
            os.urandom(300 * 1024)
        )  # ~LoRA r=8 on MiniLM
        (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
        before_adapter = registry.bytes_uploaded
        manifest = registry.register(adapter, "clf", "adapter", base={"ref": "base-model:1"})
        adapter_share = (registry.bytes_uploaded - before_adapter) / size
        print(
            f"second registration of an unchanged base: {second_base_bytes} bytes stored (target 0)"
        )
        print(
            f"adapter version {manifest.size / 1e3:.0f} KB = "
            f"{100 * adapter_share:.2f}% of the full model"
        )
        print(
            json.dumps(
                {
                    "model_bytes": size,
                    "push_s": push,
                    "pull_s": pull,
                    "second_base_bytes": second_base_bytes,
                    "adapter_share": adapter_share,
                }
            )
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        server.stop()


if __name__ == "__main__":
    main()
