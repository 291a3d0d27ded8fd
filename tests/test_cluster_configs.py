"""Cluster configs checked by the tools that will read them, and `ftray submit`'s refusals, which
all happen before anything reaches a cluster."""

import socket
import time
from typing import Literal

import kubernetes_validate
import pytest
import yaml
from conftest import ROOT, TEMPLATED, sentiment_raw
from pydantic import BaseModel, ConfigDict, Field

from ftray import submit as jobs
from ftray.errors import FtrayError
from ftray.spec import load_spec

CLUSTER = ROOT / "cluster"


def test_the_aws_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` runs before launching anything
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {}  # the head trains nothing
    assert any("g5" in t["node_config"]["InstanceType"] for t in types.values())


# KubeRay's own fields (ray.io/v1), strict: a misspelt or misplaced key fails. The pod templates
# inside are checked against Kubernetes' strict OpenAPI schema.
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)


class HeadGroupSpec(Strict):
    rayStartParams: dict[str, str] = {}
    serviceType: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = None
    template: dict


class WorkerGroupSpec(Strict):
    groupName: str
    replicas: int = Field(ge=0)
    minReplicas: int = Field(ge=0)
    maxReplicas: int = Field(ge=0)
    rayStartParams: dict[str, str] = {}
    template: dict


class RayClusterSpec(Strict):
    rayVersion: str
    enableInTreeAutoscaling: bool = False
    headGroupSpec: HeadGroupSpec
    workerGroupSpecs: list[WorkerGroupSpec] = []


class RayCluster(Strict):
    apiVersion: Literal["ray.io/v1"]
    kind: Literal["RayCluster"]
    metadata: Metadata
    spec: RayClusterSpec


class RayJobSpec(Strict):
    entrypoint: str
    shutdownAfterJobFinishes: bool = False
    ttlSecondsAfterFinished: int = Field(0, ge=0)
    backoffLimit: int = Field(0, ge=0)
    rayClusterSpec: RayClusterSpec


class RayJob(Strict):
    apiVersion: Literal["ray.io/v1"]
    kind: Literal["RayJob"]
    metadata: Metadata
    spec: RayJobSpec


def check_pod_template(template: dict) -> None:
    pod_template = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "check"},
        "template": template,
    }
    kubernetes_validate.validate(pod_template, "1.37.0", strict=True)


def check_cluster_spec(spec: RayClusterSpec) -> None:
    check_pod_template(spec.headGroupSpec.template)
    for group in spec.workerGroupSpecs:
        assert group.minReplicas <= group.replicas <= group.maxReplicas
        check_pod_template(group.template)
    assert spec.rayVersion == __import__("ray").__version__  # the image runs the Ray ftray uses


def test_the_kuberay_raycluster_is_a_valid_raycluster():
    manifest = RayCluster.model_validate(
        yaml.safe_load((CLUSTER / "kuberay/raycluster.yaml").read_text())
    )
    check_cluster_spec(manifest.spec)


def test_the_kuberay_rayjob_is_a_valid_rayjob_running_ftray():
    manifest = RayJob.model_validate(yaml.safe_load((CLUSTER / "kuberay/rayjob.yaml").read_text()))
    check_cluster_spec(manifest.spec.rayClusterSpec)
    assert manifest.spec.entrypoint.startswith("python -m ftray.cli train ")
    assert "s3://" in manifest.spec.entrypoint  # multi-node runs keep checkpoints on S3


def test_a_misplaced_key_fails_the_schema_check():
    raw = yaml.safe_load((CLUSTER / "kuberay/raycluster.yaml").read_text())
    raw["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        check_cluster_spec(RayCluster.model_validate(raw).spec)


def test_an_unreachable_address_is_one_line_within_the_timeout():
    with socket.socket() as listener:  # accepts connections but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.time()
        with pytest.raises(FtrayError, match="no Ray dashboard answers at") as caught:
            jobs.connect(address, timeout=1.0)
    assert time.time() - started < 5 and "\n" not in str(caught.value)


def job_yaml(tmp_path, tiny_bert, **sections):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(sentiment_raw(tiny_bert, **sections)))
    return path


def test_an_invalid_spec_is_refused_before_contacting_the_cluster(tmp_path, tiny_bert):
    job = job_yaml(tmp_path, tiny_bert, train={"epochs": 0})
    with pytest.raises(FtrayError, match="train.epochs"):
        jobs.submit(job, "http://127.0.0.1:1")  # nothing listens there: never reached


def test_a_missing_data_file_is_refused_naming_it(tmp_path, tiny_bert):
    job = job_yaml(tmp_path, tiny_bert, data={"train": str(tmp_path / "absent.jsonl")})
    with pytest.raises(FtrayError, match="absent.jsonl"):
        jobs.submit(job, "http://127.0.0.1:1")


def test_unset_environment_variables_are_refused_by_name(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.delenv("FTRAY_TEST_SECRET", raising=False)
    with pytest.raises(FtrayError, match="FTRAY_TEST_SECRET not set"):
        jobs.submit(job_yaml(tmp_path, tiny_bert), "http://127.0.0.1:1", env=["FTRAY_TEST_SECRET"])


def test_the_package_carries_the_spec_and_its_data(tmp_path, tiny_bert):
    job = job_yaml(tmp_path, tiny_bert, checkpoint={"storage_path": "s3://bucket/runs"})
    packed = tmp_path / "packed"
    packed.mkdir()
    jobs.package(job, ["train.epochs=2"], packed)
    written = yaml.safe_load((packed / jobs.SPEC_FILE).read_text())
    assert written["data"]["train"] == "data/train-train.jsonl"
    assert (packed / written["data"]["train"]).read_bytes() == (
        TEMPLATED / "templated-sentiment/train.jsonl"
    ).read_bytes()
    assert written["train"]["epochs"] == 2 and written["checkpoint"]["storage_path"] == (
        "s3://bucket/runs"
    )
    spec = load_spec(packed / jobs.SPEC_FILE)  # what the job's driver will load
    assert spec.data.validation == str(packed / "data/validation-validation.jsonl")
