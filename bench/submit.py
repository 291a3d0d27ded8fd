"""What `ftray submit` costs over a plain Job Submission API call, measured in one run.

    python bench/submit.py [--rounds 5]

Starts a two-node loopback cluster (cluster/local.sh), then submits the sentiment example
(spec + 2,000 rows of data) `--rounds` times each way, alternating: `ftray.submit.submit`
(validates the spec, reads the data, packages it, uploads, submits) and `submit_job` with a
prepared working_dir of the same files. Prints the median seconds each and their ratio. Stops
the cluster it started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftray import submit as jobs  # noqa: E402

JOB = ROOT / "examples/sentiment/job.yaml"
DASHBOARD_PORT = "8269"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="ftb-", dir="/tmp")
    env = {
        **os.environ,
        "FTRAY_CLUSTER_DIR": directory,
        "FTRAY_CLUSTER_PORT": "6393",
        "FTRAY_DASHBOARD_PORT": DASHBOARD_PORT,
    }
    script = [str(ROOT / "cluster/local.sh")]
    address = subprocess.run(
        [*script, "start", "1"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        client = jobs.connect(address)
        plain_dir = Path(tempfile.mkdtemp())
        shutil.copy(JOB, plain_dir / "job.yaml")
        shutil.copytree(JOB.parent / "data", plain_dir / "data")
        ftray_s, plain_s = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            jobs.submit(JOB, address, args=["--help"])  # a job that ends at once
            ftray_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            client.submit_job(
                entrypoint="python -m ftray.cli train --help",
                runtime_env={"working_dir": str(plain_dir)},
            )
            plain_s.append(time.perf_counter() - start)
        ftray_median, plain_median = statistics.median(ftray_s), statistics.median(plain_s)
        print(f"{args.rounds} submissions each of the sentiment example to {address}")
        print(
            f"submit latency median: ftray {ftray_median:.3f} s, plain submit_job "
            f"{plain_median:.3f} s, ratio {ftray_median / plain_median:.2f}"
        )
    finally:
        subprocess.run([*script, "stop"], env=env, check=False)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
