"""ftray's training overhead against a plain torchrun DDP loop, measured in the same run.

    python bench/train_overhead.py [--steps 60] [--skip-strategies]

1. The baseline: bench/ddp_baseline.py under torchrun, 2 processes, MiniLM full fine-tuning.
2. ftray: `ftray.train` with 2 Ray Train workers, DeepSpeed ZeRO 0, the same model, data, batch
   size, sequence length and number of steps.
Prints steady-state step time ftray / baseline (target <= 1.10), and against DDP with fused AdamW
(the optimizer ftray steps) through both data paths (in memory; streamed by Ray Data, the same
file), start-up times separately, then
samples/s for each strategy on MiniLM. Absolute times on a shared 2-core machine mean little; the
ratio is measured back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftray.models import resolve_model_path  # noqa: E402
from ftray.spec import load_spec  # noqa: E402
from ftray.train import train  # noqa: E402

JOB = ROOT / "examples/sentiment/job.yaml"


def baseline(steps: int, batch_size: int, max_length: int, fused_adamw: bool = False) -> dict:
    started, launched = time.perf_counter(), time.time()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        "29533",
        str(ROOT / "bench/ddp_baseline.py"),
        "--model",
        resolve_model_path("all-MiniLM-L6-v2"),
        "--train",
        str(ROOT / "examples/sentiment/data/train.jsonl"),
        "--steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--max-length",
        str(max_length),
        # The flag the "same optimizer" row needs: without it that row was a second plain run.
        *(["--fused-adamw"] if fused_adamw else []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    # From `torchrun` starting (its launcher imports torch too) to the first step's end: what
    # ftray's startup_s times from its TorchTrainer's launch.
    result["launch_to_first_step_s"] = result["first_step_at"] - launched
    return result


def ftray_run(
    strategy: str,
    steps: int,
    batch_size: int,
    max_length: int,
    storage: str,
    streamed: bool = False,
) -> dict:
    # Streamed: the same file through Ray Data; half a CPU per worker leaves one for its tasks.
    streaming = ["data.streaming=true", "scaling.cpus_per_worker=0.5"] if streamed else []
    spec = load_spec(
        JOB,
        [
            *streaming,
            f"strategy.kind={strategy}",
            "deepspeed.zero_stage=0",
            "scaling.num_workers=2",
            f"train.max_steps={steps}",
            "train.epochs=100",
            "train.eval_steps=100000",
            f"train.batch_size={batch_size}",
            f"model.max_length={max_length}",
            "train.early_stopping.patience=0",
            f"checkpoint.storage_path={storage}",
            "train.learning_rate=5e-5",
        ],
    )
    started = time.perf_counter()
    result = train(spec, progress=False)
    return {**result.timings.model_dump(), "wall_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--skip-strategies", action="store_true")
    args = parser.parse_args()
    geometry = (args.steps, args.batch_size, args.max_length)
    with tempfile.TemporaryDirectory() as storage:
        plain = baseline(*geometry)
        tuned = baseline(*geometry, fused_adamw=True)
        ours = ftray_run("full", *geometry, storage)
        streamed = ftray_run("full", *geometry, storage, streamed=True)
        report = {
            "steps": args.steps,
            "batch_size_per_worker": args.batch_size,
            "baseline_step_s": plain["step_time_s"],
            "baseline_fused_adamw_step_s": tuned["step_time_s"],
            "ftray_step_s": ours["step_time_s"],
            "step_time_ratio": ours["step_time_s"] / plain["step_time_s"],
            "step_time_ratio_same_optimizer": ours["step_time_s"] / tuned["step_time_s"],
            "ftray_streamed_step_s": streamed["step_time_s"],
            "streamed_ratio_same_optimizer": streamed["step_time_s"] / tuned["step_time_s"],
            "ftray_streamed_startup_s": streamed["startup_s"],
            "baseline_first_step_s": plain["first_step_s"],
            "baseline_launch_to_first_step_s": plain["launch_to_first_step_s"],
            "ftray_startup_s": ours["startup_s"],
            "startup_ratio": ours["startup_s"] / plain["launch_to_first_step_s"],
            "baseline_wall_s": plain["wall_s"],
            "ftray_wall_s": ours["wall_s"],
        }
        print(
            f"steady-state step time: ftray {ours['step_time_s']:.3f}s / torchrun DDP "
            f"{plain['step_time_s']:.3f}s = {report['step_time_ratio']:.3f} (target <= 1.10)"
        )
        print(
            f"same optimizer (fused AdamW on both): ftray / torchrun DDP "
            f"{report['step_time_ratio_same_optimizer']:.3f} (target <= 1.00)"
        )
        print(
            f"same optimizer, data streamed by Ray Data: ftray / torchrun DDP "
            f"{report['streamed_ratio_same_optimizer']:.3f} (target <= 1.00)"
        )
        print(
            f"start-up, launch to first step: ftray {ours['startup_s']:.1f}s (Ray + DeepSpeed "
            f"workers; streamed {streamed['startup_s']:.1f}s), torchrun "
            f"{plain['launch_to_first_step_s']:.1f}s = {report['startup_ratio']:.2f} (target <= 2; "
            f"torchrun from its workers' start {plain['first_step_s']:.1f}s)"
        )
        if not args.skip_strategies:
            report["samples_per_second"] = {"full": ours["samples_per_second"]}
            for strategy in ("partial", "adapter", "prompt"):
                run = ftray_run(strategy, *geometry, storage)
                report["samples_per_second"][strategy] = run["samples_per_second"]
            rates = ", ".join(f"{k} {v:.0f}" for k, v in report["samples_per_second"].items())
            print(f"throughput (samples/s, 2 CPU workers, MiniLM): {rates}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
