"""A soak of the serving endpoint: clients without pause while an alias moves and versions are
evicted and reloaded, counting failed requests and the replica's memory growth.

    python bench/soak.py [--seconds 180] [--clients 16] [--move-every 3]

Two LoRA versions of a tiny BERT classifier (`clf`, alias `prod` moved between them every few
seconds) and a second model (`other`) on one replica of capacity 1, so that each request for
the model not loaded evicts the other and loads it back. The clients ask `clf@prod` and
`other:1` at random over HTTP through Serve's proxy. Prints requests, failures (any non-200 or
connection error), throughput, and the replica's resident memory at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import psutil  # noqa: E402
from test_artefacts import trained_output  # noqa: E402

from ftray.artefacts import register_output  # noqa: E402
from ftray.errors import FtrayError  # noqa: E402
from ftray.tiny_models import build_tiny_model  # noqa: E402
from registry import Registry  # noqa: E402
from serving.client import predict  # noqa: E402
from serving.launch import serving  # noqa: E402

TEXTS = ["The kettle is superb.", "A dreadful sequel.", "It works, mostly.", "Never again."]


def replica_rss_mb() -> float:
    """Resident memory of the endpoint's replica process (found through Ray's state API)."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], detail=True)
    pids = [a.pid for a in actors if "endpoint" in (a.class_name or "") and a.pid]
    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--move-every", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=8317)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftray-soak-") as scratch:
        root = Path(scratch)
        base = build_tiny_model(root / "bert", TEXTS * 10, "bert")
        registry = Registry.open(str(root / "registry"))
        for seed in (1, 2):
            register_output(registry, trained_output(root, base, "adapter", seed), "clf")
        register_output(registry, trained_output(root, base, "full", 3), "other")
        registry.set_alias("clf", "prod", 1)
        refs = ["clf@prod", "other:1"]
        with serving(
            refs, registry=registry.uri, port=args.port, capacity=1, poll_interval_s=0.5
        ) as url:
            predict(url, "clf@prod", TEXTS[:1])
            rss_start = replica_rss_mb()
            outcomes = soak(url, registry, refs, args)
            rss_end = replica_rss_mb()
    ok, failed = outcomes["ok"], outcomes["failed"]
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "clients": args.clients,
                "requests": ok + len(failed),
                "failed": len(failed),
                "first_failures": failed[:3],
                "requests_per_s": round((ok + len(failed)) / args.seconds, 1),
                "alias_moves": outcomes["moves"],
                "replica_rss_mb": [round(rss_start), round(rss_end)],
                "rss_growth_mb": round(rss_end - rss_start, 1),
            },
            indent=1,
        )
    )


def soak(url: str, registry: Registry, refs: list[str], args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.seconds
    ok = [0] * args.clients
    failed: list[str] = []
    moves = 0

    def client(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < deadline:
            try:
                predict(url, rng.choice(refs), [rng.choice(TEXTS)])
                ok[index] += 1
            except FtrayError as exc:
                failed.append(str(exc)[:200])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    while time.monotonic() < deadline:
        time.sleep(args.move_every)
        moves += 1
        registry.set_alias("clf", "prod", 1 + moves % 2)
    for thread in threads:
        thread.join()
    return {"ok": sum(ok), "failed": failed, "moves": moves}


if __name__ == "__main__":
    main()
