"""ASHA against FIFO on the same sampled configurations, measured in the same run.

    python bench/tune.py [--samples 8] [--epochs 4]

LoRA on all-MiniLM-L6-v2 over a quarter of the sentiment example, learning rate and rank drawn
by the same seeded searcher for both runs; two trials at a time, one worker each. Prints the
compute each scheduler used (trial-epochs, counted from the steps each trial really ran) ASHA ÷
FIFO (target <= 0.6), and the best validation loss each found (ASHA within 0.02 of FIFO).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftray.runtime import ray_runtime  # noqa: E402
from ftray.spec import load_spec  # noqa: E402
from ftray.tune import tune  # noqa: E402


def run(scheduler: str, samples: int, epochs: int, storage: str) -> dict:
    spec = load_spec(
        ROOT / "examples/sentiment/job.yaml",
        [
            "data.fraction=0.25",
            "model.max_length=48",
            "scaling.num_workers=1",
            f"train.epochs={epochs}",
            "train.early_stopping.patience=0",
            f"checkpoint.storage_path={storage}",
            f"tune.num_samples={samples}",
            "tune.seed=3",
            "tune.metric=val_loss",
            "tune.max_concurrent_trials=2",
            f"tune.scheduler.kind={scheduler}",
            "tune.scheduler.grace_period=1",
            "tune.scheduler.reduction_factor=2",
            "tune.search_space={train.learning_rate: {loguniform: [1.0e-5, 3.0e-3]},"
            " strategy.r: {choice: [4, 8, 16]}}",
        ],
    )
    return tune(spec, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as storage, ray_runtime():
        fifo = run("fifo", args.samples, args.epochs, storage)
        asha = run("asha", args.samples, args.epochs, storage)
    same_configs = sorted(map(str, (r.config for r in fifo.leaderboard))) == sorted(
        map(str, (r.config for r in asha.leaderboard))
    )
    compute = asha.trial_epochs / fifo.trial_epochs
    gap = asha.leaderboard[0].best - fifo.leaderboard[0].best
    print(f"same sampled configurations in both runs: {same_configs}")
    print(
        f"compute: ASHA {asha.trial_epochs} / FIFO {fifo.trial_epochs} trial-epochs = "
        f"{compute:.3f} (target <= 0.6); "
        f"{asha.stopped_by_scheduler} of {asha.trials} trials stopped"
    )
    best_asha, best_fifo = asha.leaderboard[0].best, fifo.leaderboard[0].best
    print(
        f"best val_loss: ASHA {best_asha:.4f}, FIFO {best_fifo:.4f} "
        f"(ASHA - FIFO = {gap:+.4f}, target within 0.02)"
    )
    print(f"wall: ASHA {asha.wall_s:.0f}s, FIFO {fifo.wall_s:.0f}s")
    print(
        json.dumps(
            {
                "compute_ratio": compute,
                "asha_trial_epochs": asha.trial_epochs,
                "fifo_trial_epochs": fifo.trial_epochs,
                "asha_best": asha.leaderboard[0].best,
                "fifo_best": fifo.leaderboard[0].best,
                "asha_wall_s": asha.wall_s,
                "fifo_wall_s": fifo.wall_s,
                "same_configs": same_configs,
                "asha_winner_f1": asha.best.metrics["f1"],
                "fifo_winner_f1": fifo.best.metrics["f1"],
            }
        )
    )


if __name__ == "__main__":
    main()
