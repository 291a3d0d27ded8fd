"""Crash consistency: pushes killed with SIGKILL at random points leave no partly visible
version, `verify` stays clean, and `gc` reclaims what the dead pushes uploaded — on the local
store and on a real S3 server (moto on 127.0.0.1)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import ROOT

from registry import BlobCache, NotFound, Registry
from registry.layout import blob_key

KILLS = 30  # pushes killed mid-way, per store
PUSH = """
import sys
from registry import Registry
Registry.open(sys.argv[1]).register(sys.argv[2], "crash", "full", aliases=["candidate"])
"""


def model_files(root: Path, seed: int, mib: int) -> Path:
    """Three files of their own (no deduplication to hide behind) and a config."""
    directory = root / f"model-{seed}"
    directory.mkdir()
    for index in range(3):
        (directory / f"part-{index}.safetensors").write_bytes(os.urandom(mib * 2**20))
    (directory / "config.json").write_text(f'{{"seed": {seed}}}')
    return directory


def visible_versions_are_whole(registry: Registry) -> int:
    """Every version anyone can see has every blob; returns how many there are."""
    versions = registry.versions("crash") if "crash" in registry.models() else []
    for manifest in versions:
        for entry in manifest.files.values():
            try:
                registry.store.head(blob_key(entry["sha256"]))
            except NotFound:
                pytest.fail(f"{manifest.ref} is visible but misses blob {entry['sha256'][:12]}")
    for alias, version in registry.aliases("crash").items() if versions else []:
        assert 1 <= version <= len(versions), f"crash@{alias} -> {version}, a missing version"
    return len(versions)


def timed_push(uri: str, root: Path, seed: int, mib: int, env: dict) -> float:
    started = time.monotonic()
    command = [sys.executable, "-c", PUSH, uri, str(model_files(root, seed, mib))]
    subprocess.run(command, env=env, check=True)
    return time.monotonic() - started


def crash_pushes(uri: str, root: Path, mib: int) -> dict[str, float]:
    """Kill pushes until KILLS died mid-way, asserting after each that every visible version is
    whole, then that `verify` is clean and gc leaves exactly the referenced blobs. How many
    orphans there are to reclaim depends on where the kills land (none is possible)."""
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    registry = Registry.open(uri, cache=BlobCache(root / "cache"))
    whole = min(timed_push(uri, root, seed, mib, env) for seed in (-1, -2))  # warm, left alone
    killed = finished = seed = 0
    while killed < KILLS:  # until KILLS pushes died mid-way; some finish before their signal
        assert seed < 3 * KILLS, f"only {killed} of {seed} pushes were caught mid-way"
        source = model_files(root, seed, mib)
        push = subprocess.Popen([sys.executable, "-c", PUSH, uri, str(source)], env=env)
        delay = rng.uniform(0, whole)  # start-up, hashing, uploads, manifest, aliases
        time.sleep(delay)
        if push.poll() is None:
            push.send_signal(signal.SIGKILL)
            killed += 1
        else:
            finished += 1
            # It took under `delay`: the warm pushes were slowed by something else (a test
            # before this one still winding down), so aim within what a push takes now.
            whole = min(whole, delay)
        push.wait()
        seed += 1
        visible_versions_are_whole(registry)
    assert registry.verify()["problems"] == []
    versions = visible_versions_are_whole(registry)
    # The dead pushes' pending records would protect their blobs for a day: none runs now.
    reclaimed = registry.gc(grace_s=0, pending_ttl_s=0)
    left = {b.key.rsplit("/", 1)[-1] for b in registry.store.list("blobs/sha256/")}
    referenced = {
        entry["sha256"] for m in registry.versions("crash") for entry in m.files.values()
    } if versions else set()  # fmt: skip
    assert left == referenced, "gc left blobs no version references"
    assert registry.verify()["problems"] == []
    return {
        "whole_push_s": round(whole, 3),  # after any narrowing
        "killed": killed,
        "finished": finished,
        "versions": versions,
        "reclaimed": len(reclaimed["deleted"]),
    }


def test_killed_pushes_on_the_local_store(tmp_path):
    # Larger files: a local push is otherwise mostly interpreter start-up, and few kills would
    # land inside its writes.
    outcome = crash_pushes(str(tmp_path / "registry"), tmp_path, mib=16)
    print(f"local store: {outcome}")


def test_killed_pushes_on_an_s3_server(tmp_path, s3_endpoint):
    outcome = crash_pushes(f"s3://ftray-test/crash-{uuid.uuid4().hex[:8]}", tmp_path, mib=1)
    print(f"S3 server: {outcome}")
