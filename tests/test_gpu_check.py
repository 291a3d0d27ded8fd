"""The GPU check's path runs on CPU (`--dry-run`): the script a GPU machine runs is not first
tried there."""

import json
import subprocess

from conftest import ROOT


def test_gpu_check_dry_run_trains_every_configuration(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "bench/gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("gpu_check: 4 runs on cpu passed")
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    runs = {r["run"]: r for r in summary["runs"]}
    assert set(runs) == {"full ZeRO-2", "full ZeRO-3", "adapter ZeRO-2", "adapter ZeRO-3"}
    for run in runs.values():
        assert run["tokens_per_s"] > 0 and run["peak_memory_gib"] > 0
        assert run["mfu"] is None  # no GPU peak to divide by on CPU
    assert runs["adapter ZeRO-3"]["trainable"] < runs["full ZeRO-3"]["trainable"]
