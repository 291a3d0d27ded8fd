"""NER over HTTP: 16 concurrent clients with dynamic batching against without, in one run.

    python bench/serve_ner.py [--seconds 15] [--clients 16]

A LoRA version of all-MiniLM-L6-v2 with a 9-tag token-classification head (untrained: speed does
not depend on its values), served by `serving.launch.serving` on 127.0.0.1 as `ftray serve`
serves one replica (HAProxy ingress). Each client sends one sentence per `/v1/predict` request,
back to back; the replica runs with max_batch_size 16, then 1. Target: ratio >= 2.
`bench/batching.py` measures the same batching in-process.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

# Beside this script, on sys.path; it puts the repository first, so `registry` is the package.
from serve import SENTENCES, Registry, register_lora, serving, under_load

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as root:
        registry = Registry.open(str(Path(root) / "registry"))
        ref = register_lora(Path(root), registry, "token-classification", TAGS, "ner")
        for size in (16, 1):
            options = {"registry": registry.uri, "port": 8130, "poll_interval_s": 0}
            with serving([ref], max_batch_size=size, **options) as url:
                runs[size] = under_load(url, ref, SENTENCES, args)
    batched, single = runs[16], runs[1]
    print(
        f"NER via the default path, {args.clients} clients, one sentence per request: batching "
        f"{batched['rate']:.1f} inputs/s ({batched['batch']:.1f} inputs a forward), "
        f"max_batch_size=1 {single['rate']:.1f} inputs/s, "
        f"ratio {batched['rate'] / single['rate']:.2f} (target >= 2)"
    )


if __name__ == "__main__":
    main()
