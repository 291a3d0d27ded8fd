"""The multi-node path on a real two-node Ray cluster on loopback (`cluster/local.sh`): jobs
submitted through the Job Submission API, workers on different nodes, checkpoints and the registry
on the local S3 server, logs, stop, and a worker node killed mid-training."""

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, sentiment_raw

from ftray import storage
from ftray import submit as jobs
from registry import Registry

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "cluster" / "local.sh"
AWS_ENV = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]


@pytest.fixture(scope="module")
def cluster(s3_endpoint):
    directory = tempfile.mkdtemp(prefix="ftc-", dir="/tmp")  # Ray's socket paths must stay short
    env = {
        **os.environ,
        "FTRAY_CLUSTER_DIR": directory,
        "FTRAY_CLUSTER_PORT": "6391",
        "FTRAY_DASHBOARD_PORT": "8267",
        "RAY": str(ROOT / ".venv/bin/ray") if (ROOT / ".venv/bin/ray").exists() else "ray",
        # Jobs run `python -m ftray.cli`: the cluster's `python` must be this environment's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for name in AWS_ENV:  # the cluster must get S3 credentials from the job, not inherit them
        env.pop(name, None)

    def script(*args: str) -> str:
        done = subprocess.run(
            [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    address = script("start", "1")
    yield {"address": address, "dir": directory, "script": script}
    script("stop")


def job_file(tmp_path, tiny_bert, name, **sections):
    raw = sentiment_raw(
        tiny_bert,
        scaling={"num_workers": 2, "placement_strategy": "SPREAD"},
        checkpoint={
            "storage_path": f"s3://ftray-test/{name}",
            "output_dir": str(tmp_path / "out"),
            "max_failures": 3,
        },
        registry={
            "uri": f"s3://ftray-test/{name}-registry",
            "register_as": name,
            "aliases": ["candidate"],
        },
        **sections,
    )
    raw["name"] = name
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(raw))
    return path


def run_result(storage_uri: str) -> dict:
    [run] = [d for d in storage.list_dirs(storage_uri) if not d.startswith(".")]
    return json.loads(storage.read_text(storage.join(storage_uri, run, "ftray_result.json")))


def why(address: str, job_id: str) -> str:
    """What a failed assertion on a job shows: Ray's status message (why a job failed before its
    entrypoint printed anything: runtime env, supervisor actor), then the log's tail."""
    message = jobs.status(address, job_id)["message"]
    return f"message: {message}\nlogs: {jobs.logs(address, job_id)[-3000:]}"


def wait_for_status(address, job_id, wanted, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = jobs.status(address, job_id)["status"]
        if current == wanted:
            return
        assert current not in jobs.TERMINAL, why(address, job_id)
        time.sleep(0.5)
    raise AssertionError(f"{job_id} never reached {wanted}")


def test_a_job_trains_on_two_nodes_with_checkpoints_and_registry_on_s3(
    cluster, tmp_path, tiny_bert
):
    job = job_file(tmp_path, tiny_bert, "two-nodes")
    # The secret key goes as a file every node has (one machine here): only its path is sent.
    # boto3 finds no credentials without it, so the job succeeds only if each process read it.
    secret = tmp_path / "aws-secret"
    secret.write_text("only-in-the-file-7f3a\n")  # the S3 test server takes any key
    submitted = jobs.submit(
        job,
        cluster["address"],
        env=[name for name in AWS_ENV if name != "AWS_SECRET_ACCESS_KEY"],
        secret_files=[f"AWS_SECRET_ACCESS_KEY={secret}"],
    )
    logs = io.StringIO()
    # Bounded: a job whose workers never start fails here, with ftray's note of what they
    # wait for in its log, instead of holding CI until its own limit.
    final = jobs.follow(cluster["address"], submitted["job_id"], out=logs, timeout=480)
    assert final["status"] == "SUCCEEDED", why(cluster["address"], submitted["job_id"])

    result = run_result("s3://ftray-test/two-nodes")
    assert len(result["worker_nodes"]) == 2 and len(set(result["worker_nodes"])) == 2
    assert result["registered"]["ref"] == "two-nodes:1"
    manifest = Registry.open("s3://ftray-test/two-nodes-registry").resolve("two-nodes@candidate")
    assert manifest.metrics["accuracy"] == result["metrics"]["accuracy"]
    # The secret was never printed, and Ray's record of the job holds its path, not its value.
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in jobs.logs(
        cluster["address"], submitted["job_id"]
    )
    stored = jobs.connect(cluster["address"]).get_job_info(submitted["job_id"]).runtime_env
    assert "only-in-the-file-7f3a" not in json.dumps(stored)
    assert str(secret) in stored["env_vars"]["FTRAY_SECRET_FILES"]

    cli = [sys.executable, "-m", "ftray.cli", "jobs"]
    listed = subprocess.run(
        [*cli, "list", "--address", cluster["address"], "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert submitted["job_id"] in {row["job_id"] for row in json.loads(listed.stdout)}
    printed = subprocess.run(
        [*cli, "logs", submitted["job_id"], "--address", cluster["address"]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "training" in printed.stdout or "two-nodes" in printed.stdout


def test_stop_stops_a_running_job(cluster, tmp_path, tiny_bert):
    job = job_file(tmp_path, tiny_bert, "stopped", train={"epochs": 50})
    job_id = jobs.submit(job, cluster["address"], env=AWS_ENV)["job_id"]
    wait_for_status(cluster["address"], job_id, "RUNNING")
    # Into training, not just started; following a job that runs on returns when told to.
    assert jobs.follow(cluster["address"], job_id, io.StringIO(), timeout=5)["status"] == "RUNNING"
    jobs.stop(cluster["address"], job_id)
    assert jobs.wait(cluster["address"], job_id, timeout=120)["status"] == "STOPPED"


def test_local_storage_is_refused_on_a_multi_node_cluster(cluster, tmp_path, tiny_bert):
    job = job_file(tmp_path, tiny_bert, "local-storage")
    raw = json.loads(job.read_text())
    raw["checkpoint"]["storage_path"] = str(tmp_path / "runs")
    job.write_text(json.dumps(raw))
    job_id = jobs.submit(job, cluster["address"], env=AWS_ENV)["job_id"]
    assert jobs.wait(cluster["address"], job_id, timeout=120)["status"] == "FAILED"
    logged = jobs.logs(cluster["address"], job_id)
    assert "is a local directory but the Ray cluster has 2 nodes" in logged, why(
        cluster["address"], job_id
    )
    assert not (tmp_path / "runs").exists()  # refused before any worker started


def raylets(directory: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "raylet" and directory in command:
            found.append(process)
    return sorted(found, key=lambda p: p.create_time())


def wait_for_checkpoint(address: str, job_id: str, bucket_prefix: str, timeout=240) -> None:
    """Until Ray Train has registered a checkpoint in S3 (its snapshot lists one)."""
    import boto3

    s3 = boto3.client("s3")
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert jobs.status(address, job_id)["status"] not in jobs.TERMINAL, why(address, job_id)
        listed = s3.list_objects_v2(Bucket="ftray-test", Prefix=bucket_prefix).get("Contents", [])
        for item in listed:
            if item["Key"].endswith("checkpoint_manager_snapshot.json"):
                body = s3.get_object(Bucket="ftray-test", Key=item["Key"])["Body"].read()
                if b"checkpoint_0" in body:
                    return
        time.sleep(0.5)
    raise AssertionError("no checkpoint was registered in S3")


def test_a_killed_worker_node_resumes_from_its_s3_checkpoint(cluster, tmp_path, tiny_bert):
    job = job_file(
        tmp_path,
        tiny_bert,
        "node-killed",
        train={"epochs": 2, "eval_steps": 10, "batch_size": 8, "learning_rate": 3e-3},
    )
    job_id = jobs.submit(job, cluster["address"], env=AWS_ENV)["job_id"]
    wait_for_checkpoint(cluster["address"], job_id, "node-killed/")
    _head, *workers = raylets(cluster["dir"])
    assert workers, "no worker node found"
    workers[-1].send_signal(signal.SIGKILL)  # the node dies with the Train worker it hosted
    cluster["script"]("add-worker", "1")  # and another node joins
    final = jobs.wait(cluster["address"], job_id, timeout=400)
    assert final["status"] == "SUCCEEDED", why(cluster["address"], job_id)

    result = run_result("s3://ftray-test/node-killed")
    resumed = result["resumed_from"]
    # Continued from a checkpoint (every 10 steps), did not start over.
    assert resumed is not None and resumed["step"] >= 10 and resumed["step"] % 10 == 0
    steps = [row["step"] for row in result["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 200
