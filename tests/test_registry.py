"""The registry contract, run against the local store and a real S3 HTTP server (moto on
127.0.0.1, real boto3). Concurrency is tested on the local store only: moto's conditional writes
are not atomic under concurrent requests, so they cannot arbitrate a race there."""

import json
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from registry import BlobCache, NotFound, PreconditionFailed, Registry, RegistryError, StoreError
from registry.cache import sha256_file
from registry.layout import GC_LOCK_KEY, GC_LOCK_TTL_S, blob_key
from registry.local_store import LocalStore
from registry.s3_store import S3Store


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path) -> Registry:
    if request.param == "local":
        store = LocalStore(tmp_path / "registry")
    else:
        request.getfixturevalue("s3_endpoint")
        store = S3Store(f"s3://ftray-test/{uuid.uuid4().hex}")
    return Registry(store, BlobCache(tmp_path / "cache"))


def model_dir(root: Path, weights: bytes = b"w" * 5000, name: str = "model") -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(weights)
    (directory / "config.json").write_text('{"model_type": "bert"}')
    (directory / "sub").mkdir()
    (directory / "sub" / "vocab.txt").write_text("a\nb\n")
    return directory


def test_versions_count_up_and_latest_follows(registry, tmp_path):
    first = registry.register(
        model_dir(tmp_path, b"one"),
        "sentiment",
        "full",
        task="sequence-classification",
        labels=["neg", "pos"],
        metrics={"f1": 0.9},
    )
    second = registry.register(model_dir(tmp_path, b"two", "m2"), "sentiment", "full")
    assert (first.version, second.version) == (1, 2)
    assert registry.resolve("sentiment").version == 2
    assert registry.resolve("sentiment@latest").version == 2
    resolved = registry.resolve("sentiment:1")
    assert resolved.labels == ["neg", "pos"] and resolved.metrics == {"f1": 0.9}
    assert set(resolved.files) == {"model.safetensors", "config.json", "sub/vocab.txt"}
    assert registry.models() == ["sentiment"]
    assert [m.version for m in registry.versions("sentiment")] == [1, 2]
    assert [e["action"] for e in registry.events("sentiment")] == ["register", "register"]


def test_the_layout_is_plain_objects_at_the_documented_keys(registry, tmp_path):
    manifest = registry.register(model_dir(tmp_path), "layout", "full")
    keys = {info.key for info in registry.store.list("")}
    sha = manifest.files["model.safetensors"]["sha256"]
    assert f"blobs/sha256/{sha[:2]}/{sha}" in keys
    assert "models/layout/versions/000001.json" in keys
    assert "models/layout/aliases/latest.json" in keys
    assert any(k.startswith("models/layout/events/") and k.endswith(".json") for k in keys)
    raw, _ = registry.store.get("models/layout/versions/000001.json")
    assert json.loads(raw)["files"]["model.safetensors"] == {"sha256": sha, "size": 5000}
    assert registry.store.get(f"blobs/sha256/{sha[:2]}/{sha}")[0] == b"w" * 5000


def test_manifests_written_before_test_metrics_and_evaluations_still_load(registry, tmp_path):
    manifest = registry.register(model_dir(tmp_path), "old", "full", metrics={"f1": 0.5})
    document = json.loads(manifest.to_json())
    del document["test_metrics"]  # as a manifest of the previous release was written
    registry.store.put("models/old/versions/000001.json", json.dumps(document).encode())
    loaded = registry.resolve("old:1")
    assert loaded.test_metrics == {} and loaded.metrics == {"f1": 0.5}
    assert registry.evaluations("old:1") == []
    key = registry.record_evaluation("old@latest", {"rows": 3, "metrics": {"accuracy": 1.0}})
    assert key.startswith("models/old/evaluations/000001/") and key.endswith(".json")
    assert registry.evaluations("old:1") == [{"rows": 3, "metrics": {"accuracy": 1.0}}]
    assert registry.store.get("models/old/versions/000001.json")[0] == json.dumps(document).encode()
    assert registry.events("old")[-1]["action"] == "evaluate"


def test_identical_files_are_stored_once(registry, tmp_path):
    registry.register(model_dir(tmp_path), "a", "full")
    before = registry.bytes_uploaded
    registry.register(model_dir(tmp_path, name="copy"), "b", "full")  # same bytes, other model
    assert registry.bytes_uploaded == before
    again = registry.register(model_dir(tmp_path, name="again"), "a", "full", reuse_identical=True)
    assert again.version == 1  # recognised, not a new version


def test_aliases_move_by_compare_and_swap_and_roll_back(registry, tmp_path):
    for i in range(3):
        registry.register(model_dir(tmp_path, f"w{i}".encode(), f"m{i}"), "clf", "full")
    registry.set_alias("clf", "production", 1)
    registry.set_alias("clf", "production", 3)
    assert registry.resolve("clf@production").version == 3
    assert registry.rollback("clf", "production")["version"] == 1
    assert registry.resolve("clf@production").version == 1
    with pytest.raises(RegistryError, match="clf@production has no earlier version to roll"):
        registry.rollback("clf", "production")
    assert registry.aliases("clf") == {"production": 1, "latest": 3}
    actions = [e["action"] for e in registry.events("clf")]
    assert actions[-3:] == ["alias", "alias", "rollback"]
    with pytest.raises(RegistryError, match="'latest' is maintained by the registry"):
        registry.set_alias("clf", "latest", 1)
    with pytest.raises(RegistryError, match="unknown version clf:9: clf has versions 1-3"):
        registry.set_alias("clf", "staging", 9)
    with pytest.raises(RegistryError, match=r"unknown alias clf@nope \(aliases: latest, prod"):
        registry.resolve("clf@nope")


def test_alias_writes_are_conditional(registry, tmp_path):
    registry.register(model_dir(tmp_path), "m", "full")
    store = registry.store
    registry.set_alias("m", "prod", 1)
    _, etag = store.get("models/m/aliases/prod.json")
    store.put("models/m/aliases/prod.json", b'{"version": 1, "history": []}', if_match=etag)
    with pytest.raises(PreconditionFailed):  # the etag read before that write is stale now
        store.put("models/m/aliases/prod.json", b"{}", if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.put("models/m/versions/000001.json", b"{}", create_only=True)


def test_pull_verifies_uses_the_cache_and_refuses_a_non_empty_directory(registry, tmp_path):
    manifest = registry.register(model_dir(tmp_path), "m", "full")
    first = registry.pull("m:1", tmp_path / "out")
    assert (tmp_path / "out/sub/vocab.txt").read_text() == "a\nb\n"
    assert json.loads((tmp_path / "out/ftray_manifest.json").read_text())["version"] == 1
    assert registry.bytes_downloaded == manifest.size and first.ref == "m:1"
    registry.pull("m@latest", tmp_path / "again")
    assert registry.bytes_downloaded == manifest.size  # the second pull came from the cache
    with pytest.raises(RegistryError, match="is not an empty directory"):
        registry.pull("m:1", tmp_path / "out")


def test_a_tampered_blob_is_detected_on_pull_and_by_verify(registry, tmp_path):
    manifest = registry.register(model_dir(tmp_path), "m", "full")
    sha = manifest.files["model.safetensors"]["sha256"]
    registry.store.put(f"blobs/sha256/{sha[:2]}/{sha}", b"tampered")
    with pytest.raises(RegistryError, match=r"m:1 model.safetensors is corrupt"):
        registry.pull("m:1", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    report = registry.verify()
    assert report["problems"] == [
        f"m:1 model.safetensors: blob {sha[:12]}... is missing or corrupt"
    ]
    assert registry.verify("m:1")["problems"] and not registry.verify("m:1")["problems"][
        0
    ].startswith("x")


class FailingUploads:
    """A store whose Nth blob upload raises: a registration dying part-way."""

    def __init__(self, store, fail_at: int) -> None:
        self.store, self.fail_at, self.uploads = store, fail_at, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def upload(self, key, path):
        self.uploads += 1
        if self.uploads == self.fail_at:
            raise OSError("connection reset mid-upload")
        self.store.upload(key, path)


def test_a_registration_that_dies_mid_upload_leaves_no_version(registry, tmp_path):
    flaky = Registry(FailingUploads(registry.store, fail_at=2), registry.cache)
    with pytest.raises(OSError):
        flaky.register(model_dir(tmp_path), "m", "full")
    with pytest.raises(RegistryError, match="unknown model 'm'"):
        registry.resolve("m")
    assert registry.register(model_dir(tmp_path, name="retry"), "m", "full").version == 1
    assert registry.verify()["problems"] == []


def test_gc_deletes_only_unreferenced_blobs_past_the_grace_period(registry, tmp_path):
    kept = registry.register(model_dir(tmp_path), "m", "full")
    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(b"left behind by a failed registration")
    registry.store.upload("blobs/sha256/ab/ab" + "0" * 62, orphan)
    assert registry.gc(grace_s=3600)["kept_in_grace"] == 1  # young: maybe an upload in flight
    dry = registry.gc(dry_run=True, grace_s=0)
    assert dry["would_delete"] == ["ab" + "0" * 62]
    assert registry.gc(grace_s=0)["deleted"] == ["ab" + "0" * 62]
    assert registry.gc(grace_s=0)["deleted"] == []
    assert registry.verify()["problems"] == [] and registry.pull(kept.ref, tmp_path / "out")


def test_gc_spares_the_blobs_of_a_registration_in_flight(registry, tmp_path):
    blob = tmp_path / "b.bin"
    blob.write_bytes(b"uploaded, manifest not yet written")
    sha = "cd" + "1" * 62
    registry.store.upload(f"blobs/sha256/cd/{sha}", blob)
    registry.store.put("models/m/pending/x.json", json.dumps([sha]).encode())
    assert registry.gc(grace_s=0)["deleted"] == []


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 129, "..", "-lead"])
def test_invalid_names_are_refused(registry, tmp_path, name):
    with pytest.raises(RegistryError, match="model name"):
        registry.register(model_dir(tmp_path), name, "full")


def test_unknown_references(registry, tmp_path):
    with pytest.raises(RegistryError, match="unknown model 'ghost'"):
        registry.resolve("ghost@prod")
    registry.register(model_dir(tmp_path), "m", "full")
    with pytest.raises(RegistryError, match="unknown version m:4: m has versions 1-1"):
        registry.resolve("m:4")
    with pytest.raises(RegistryError, match="version after ':' must be a number"):
        registry.resolve("m:x")
    # Kinds are the strategies' (plugins add theirs): the registry checks only their spelling.
    with pytest.raises(RegistryError, match="kind 'We ird': use lower-case letters"):
        registry.register(model_dir(tmp_path, name="k"), "m", "We ird")


def register_one(root: str, source: str) -> int:
    return Registry(LocalStore(root)).register(source, "race", "full").version


def test_sixteen_concurrent_threads_get_versions_1_to_16(tmp_path):
    root = tmp_path / "registry"
    sources = [model_dir(tmp_path, f"thread {i}".encode(), f"t{i}") for i in range(16)]
    results: list[int] = []
    barrier = threading.Barrier(16)

    def work(source: Path) -> None:
        barrier.wait()
        results.append(register_one(str(root), str(source)))

    threads = [threading.Thread(target=work, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(1, 17))
    registry = Registry(LocalStore(root), BlobCache(tmp_path / "cache"))
    assert registry.verify()["problems"] == []
    contents = {
        registry.resolve(f"race:{v}").files["model.safetensors"]["sha256"] for v in range(1, 17)
    }
    assert len(contents) == 16  # every registration kept its own files: none lost
    assert registry.resolve("race@latest").version == 16


def test_sixteen_concurrent_processes_get_versions_1_to_16(tmp_path):
    root = tmp_path / "registry"
    sources = [str(model_dir(tmp_path, f"process {i}".encode(), f"p{i}")) for i in range(16)]
    with multiprocessing.get_context("spawn").Pool(16) as pool:
        versions = pool.starmap(register_one, [(str(root), s) for s in sources])
    assert sorted(versions) == list(range(1, 17))
    registry = Registry(LocalStore(root), BlobCache(tmp_path / "cache"))
    assert registry.verify()["problems"] == []
    assert len(registry.versions("race")) == 16


def test_concurrent_alias_moves_lose_no_update(tmp_path):
    registry = Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    for i in range(8):
        registry.register(model_dir(tmp_path, f"{i}".encode(), f"m{i}"), "m", "full")
    threads = [
        threading.Thread(target=registry.set_alias, args=("m", "prod", v)) for v in range(1, 9)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    document = json.loads(registry.store.get("models/m/aliases/prod.json")[0])
    assert sorted([*document["history"], document["version"]]) == list(range(1, 9))


def test_an_unreachable_endpoint_fails_fast_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASECRETKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    started = time.time()
    with pytest.raises(StoreError) as caught:
        Registry.open("s3://bucket/prefix").models()
    message = str(caught.value)
    assert message.startswith("registry: cannot reach http://127.0.0.1:9")
    assert "\n" not in message and "very-secret" not in message and "AKIASECRETKEYID" not in message
    assert time.time() - started < 30


def test_wrong_credentials_and_missing_bucket_are_one_line(s3_endpoint, monkeypatch):
    import requests

    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        Registry.open("s3://no-such-bucket").models()
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0")  # moto now checks credentials
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAREALKEY00000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        with pytest.raises(StoreError) as caught:
            Registry.open("s3://ftray-test/x").models()
    finally:
        requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"inf")
    message = str(caught.value)
    assert "denied" in message and "check the AWS credentials" in message
    assert "not-the-secret" not in message and "AKIANOTAREALKEY00000" not in message


def test_s3_objects_are_readable_with_plain_boto3(s3_endpoint, tmp_path):
    registry = Registry(S3Store("s3://ftray-test/plain"), BlobCache(tmp_path / "cache"))
    registry.register(model_dir(tmp_path), "m", "full")
    body = boto3.client("s3").get_object(
        Bucket="ftray-test", Key="plain/models/m/versions/000001.json"
    )
    assert json.loads(body["Body"].read())["name"] == "m"
    with pytest.raises(NotFound):
        registry.store.head("models/m/versions/000002.json")


@pytest.mark.parametrize("crt", ["1", "0"])
def test_each_blob_transfer_leaves_the_whole_file_in_place_when_it_returns(
    s3_endpoint, tmp_path, monkeypatch, crt
):
    """Both transfer clients, uploads and downloads back to back, sizes from empty to multipart.
    On the CRT, a download's `result()` returns before its temporary file is renamed into
    place: reading the file straight after it failed 20 of 90 times here before the wait."""
    if crt == "1":
        pytest.importorskip("awscrt")
    monkeypatch.setenv("FTRAY_S3_CRT", crt)
    store = S3Store(f"s3://ftray-test/transfers-{crt}")
    assert store.transfers.name == ("crt" if crt == "1" else "s3transfer")
    sizes = [0, 1, 10, 5000] * 10 + [9 * 2**20]
    for index, size in enumerate(sizes):
        data = os.urandom(size)
        sent, got = tmp_path / f"sent-{index}", tmp_path / f"got-{index}"
        sent.write_bytes(data)
        store.upload(f"blob-{index}", sent)
        store.download(f"blob-{index}", got)
        assert got.read_bytes() == data, f"blob {index} of {size} bytes"


def test_a_transfer_from_a_missing_object_is_one_line(s3_endpoint, tmp_path):
    with pytest.raises(NotFound, match="no-such-blob not found"):
        S3Store("s3://ftray-test/transfers").download("no-such-blob", tmp_path / "x")


class DeleteHookStore(LocalStore):
    """A local store that runs `hook` once, just before the first blob is deleted: the moment
    a gc has decided and a concurrent registration can still slip in."""

    hook: Callable[[], None] | None = None

    def delete(self, key: str) -> None:
        if key.startswith("blobs/") and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        super().delete(key)


def test_gc_never_deletes_a_blob_that_a_concurrent_registration_reuses(tmp_path):
    # Local store only: moto's S3 server does not apply conditional writes atomically.
    root = tmp_path / "registry"
    store = DeleteHookStore(root)
    source = model_dir(tmp_path, b"weights a crashed registration uploaded", "reuser")
    for path in (p for p in source.rglob("*") if p.is_file()):  # orphans, old enough for gc
        store.upload(blob_key(sha256_file(path)), path)
    registered: list = []
    racing: list[threading.Thread] = []

    def register_meanwhile() -> None:
        other = Registry(LocalStore(root), BlobCache(tmp_path / "other-cache"))
        thread = threading.Thread(
            target=lambda: registered.append(other.register(source, "m", "full"))
        )
        thread.start()
        thread.join(timeout=3)  # the old gc let it finish here, reusing what it then deleted
        racing.append(thread)

    store.hook = register_meanwhile
    registry = Registry(store, BlobCache(tmp_path / "cache"))
    assert registry.gc(grace_s=0)["deleted"]
    racing[0].join(timeout=30)
    assert [m.ref for m in registered] == ["m:1"]
    assert registry.verify()["problems"] == []


def test_one_gc_at_a_time_and_a_dead_gcs_lock_is_taken_over(tmp_path):
    store = LocalStore(tmp_path / "registry")
    registry = Registry(store, BlobCache(tmp_path / "cache"))
    store.put(GC_LOCK_KEY, b"{}", create_only=True)
    with pytest.raises(RegistryError, match=r"^gc: another gc is running \(gc.lock is held\)$"):
        registry.gc(grace_s=0)
    stale = time.time() - GC_LOCK_TTL_S - 60
    os.utime(tmp_path / "registry" / GC_LOCK_KEY, (stale, stale))
    assert registry.gc(grace_s=0)["deleted"] == []
    with pytest.raises(NotFound):
        store.head(GC_LOCK_KEY)
