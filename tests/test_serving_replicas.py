"""Two replicas behind Serve's proxy: a request naming its version in the multiplexed-model header
goes to the replica that already holds that version; without the header it may go to either."""

import time

import pytest
from test_artefacts import trained_output

from ftray.artefacts import register_output
from registry import BlobCache, Registry
from registry.local_store import LocalStore
from serving.client import call
from serving.launch import serving

pytestmark = pytest.mark.slow


def versions_per_replica(samples: int = 20) -> set[tuple[str, ...]]:
    """What each replica holds, sampled through a handle (it picks replicas at random)."""
    from ray import serve

    handle = serve.get_deployment_handle("endpoint", app_name="ftray")
    stats = [handle.stats.remote().result() for _ in range(samples)]
    return {tuple(v for base in s["shared_bases"] for v in base["versions"]) for s in stats}


def ask(url: str, ref: str, pinned: bool) -> str:
    headers = {"serve_multiplexed_model_id": ref} if pinned else {}
    return call(url, "/v1/predict", {"model": ref, "inputs": ["fine"]}, headers=headers)["model"]


def test_the_header_keeps_a_version_on_the_replica_that_holds_it(tmp_path, tiny_bert):
    registry = Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    ref = register_output(registry, trained_output(tmp_path, tiny_bert, "adapter", 1), "clf").ref
    with serving(
        [ref], registry=str(tmp_path / "registry"), port=8125, replicas=2, num_cpus=0.5
    ) as url:
        assert ask(url, ref, pinned=True) == ref
        time.sleep(5)  # the loading replica's model list reaches the proxy asynchronously
        for _ in range(20):
            assert ask(url, ref, pinned=True) == ref
        assert versions_per_replica() == {(ref,), ()}
        for _ in range(20):
            ask(url, ref, pinned=False)
        assert versions_per_replica() == {(ref,)}  # unpinned requests reached the other one too
