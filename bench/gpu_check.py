"""The GPU check: bf16 full fine-tuning and LoRA of a ~0.55B-parameter causal LM under ZeRO-2
and ZeRO-3 on one GPU, through ftray's own training loop without Ray (`ftray.local`).

    bash bench/gpu_check.sh             # on a CUDA machine (about 5 minutes)
    bash bench/gpu_check.sh --dry-run   # the same path on CPU with a tiny config (CI)

The model is built from a Llama config (hidden 1536, 20 layers, GQA 12/4 heads, vocab 32,000;
random weights, nothing downloaded) with a byte-level BPE tokenizer trained on the generated
text. Rows are plain text packed into full rows of `--seq` tokens (`train.packing`), so every
token of a step is real. For each run it prints steady-state tokens/s, peak GPU memory and MFU:

    model FLOPs per token = 6 N + 12 L d s   (full: forward, and backward for activations and
                                              weights; the second term is attention's scores)
                          = 4 N +  8 L d s   (LoRA: the frozen base has no weight gradients)
    MFU = model FLOPs per token x tokens/s / the GPU's peak dense bf16 FLOP/s (--peak-tflops)

N counts every parameter once (the tied output embedding is the LM head's matmul), L layers,
d hidden size, s sequence length. Results also go to $OUT/gpu_check.json when OUT is set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ftray.local import run_local  # noqa: E402
from ftray.models import quiet_transformers  # noqa: E402
from ftray.spec import spec_from_dict  # noqa: E402
from ftray.tiny_models import build_tokenizer  # noqa: E402

SIZES = {  # LlamaConfig fields: the check's model, and the dry run's
    "gpu": {"hidden_size": 1536, "num_hidden_layers": 20, "intermediate_size": 4096,
            "num_attention_heads": 12, "num_key_value_heads": 4, "vocab_size": 32000},
    "dry": {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2000},
}  # fmt: skip
RUNS = [("full", 2), ("full", 3), ("adapter", 2), ("adapter", 3)]
WORDS = "harbour lantern quiet river stone amber orchard window market signal".split()  # noqa: SIM905


def build_model(directory: Path, size: dict[str, int], texts: list[str]) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(texts, "llama", vocab_size=min(size["vocab_size"], 4000))
    config = LlamaConfig(
        **size,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def write_rows(path: Path, count: int, rng: random.Random) -> list[str]:
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 400))) for _ in range(count)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return texts


def job(directory: Path, model: Path, strategy: str, stage: int, args: argparse.Namespace) -> dict:
    adapter = {"target_modules": "all-linear"} if strategy == "adapter" else {}
    return {
        "name": f"gpu-check-{strategy}-z{stage}",
        "model": {"name": str(model), "task": "causal-lm", "max_length": args.seq},
        "data": {
            "train": str(directory / "train.jsonl"),
            "validation": str(directory / "validation.jsonl"),
            "layout": "text",
        },
        "strategy": {"kind": strategy, **adapter},
        "train": {
            "max_steps": args.steps,
            "batch_size": args.batch,
            "learning_rate": 1e-4 if strategy == "full" else 1e-3,
            "packing": True,
            "early_stopping": {"patience": 0},
        },
        "scaling": {"num_workers": 1},
        "deepspeed": {"zero_stage": stage},
        "checkpoint": {"storage_path": str(directory / "runs")},
    }  # fmt: skip


def flops_per_token(params: int, size: dict[str, int], seq: int, strategy: str) -> float:
    layers, hidden = size["num_hidden_layers"], size["hidden_size"]
    if strategy == "full":
        return 6 * params + 12 * layers * hidden * seq
    return 4 * params + 8 * layers * hidden * seq


def run_one(directory: Path, model: Path, strategy: str, stage: int, args, size) -> dict[str, Any]:
    spec = spec_from_dict(job(directory, model, strategy, stage, args))
    started = time.perf_counter()
    [report] = run_local(spec, directory / f"run-{strategy}-z{stage}")
    tokens_per_s = report["tokens_per_second"]  # real tokens of the packed rows, steady state
    flops = flops_per_token(report["total_params"], size, args.seq, strategy)
    cuda = torch.cuda.is_available()
    return {
        "run": f"{strategy} ZeRO-{stage}",
        "params": report["total_params"],
        "trainable": report["trainable_params"],
        "step_time_s": round(report["step_time_s"], 4),
        "tokens_per_s": round(tokens_per_s),
        "peak_memory_gib": round(report["peak_memory_mb"] / 1024, 2),
        "mfu": round(flops * tokens_per_s / (args.peak_tflops * 1e12), 4) if cuda else None,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny config on CPU")
    parser.add_argument("--seq", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="H200/H100 dense bf16")
    args = parser.parse_args()
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here; use --dry-run to check the path on CPU")
    size = SIZES["dry" if dry else "gpu"]
    args.seq = args.seq or (64 if dry else 1024)
    args.batch = args.batch or (2 if dry else 8)
    args.steps = args.steps or (5 if dry else 30)
    quiet_transformers()
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.distributed deprecations
    results = []
    with tempfile.TemporaryDirectory(prefix="ftray-gpu-check-") as scratch:
        directory = Path(scratch)
        rng = random.Random(0)
        rows = args.batch * args.steps * args.seq // 100 + 16  # enough packed rows for the steps
        texts = write_rows(directory / "train.jsonl", rows, rng)
        write_rows(directory / "validation.jsonl", 8, rng)
        model = build_model(directory / "model", size, texts)
        for strategy, stage in RUNS:
            results.append(run_one(directory, model, strategy, stage, args, size))
            print(json.dumps(results[-1]), flush=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    summary = {"device": device, "seq": args.seq, "batch": args.batch, "steps": args.steps,
               "peak_tflops": args.peak_tflops, "runs": results}  # fmt: skip
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(summary, indent=1))
    print(f"gpu_check: {len(results)} runs on {device} passed")


if __name__ == "__main__":
    main()
