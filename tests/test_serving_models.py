"""A replica's models without Ray: Serve evicts a version by running its `__del__` on an
executor thread while the replica's loop may be in a forward pass on the same shared base."""

import threading

from test_artefacts import trained_output

from ftray.artefacts import register_output
from registry import BlobCache, Registry
from registry.local_store import LocalStore
from serving.models import Models


def test_an_eviction_on_another_thread_waits_for_the_loop(tmp_path, tiny_bert):
    registry = Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    refs = [
        register_output(registry, trained_output(tmp_path, tiny_bert, "adapter", seed), "clf").ref
        for seed in (1, 2)
    ]
    models = Models(registry)
    evicted, kept = (models._load_version_now(ref) for ref in refs)
    before = evicted.predictor.predict(["fine", "awful"])
    # Serve's eviction, as it runs it: __del__ on an executor thread. The old release deleted
    # the adapter there and then, under a request that already holds this version.
    thread = threading.Thread(target=evicted.__del__)
    thread.start()
    thread.join()
    assert evicted.predictor.predict(["fine", "awful"]) == before
    shared = next(iter(models.bases.models.values()))
    assert set(shared.peft_config) == set(refs)  # nothing left the shared model yet

    models.bases.settle()  # the loop, between batches
    assert set(shared.peft_config) == {refs[1]}
    assert kept.predictor.predict(["fine"])  # the other version still answers
    again = models._load_version_now(refs[0])  # evicted, then asked for again: it rejoins
    assert again.predictor.predict(["fine", "awful"]) == before


def test_a_stream_whose_consumer_leaves_stops_generating(tmp_path, tiny_llama):
    import asyncio

    from test_serving import register_task_model

    registry = Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    ref = register_task_model(registry, tmp_path, tiny_llama, "causal-lm", [], "lm").ref
    models = Models(registry)
    version = models._load_version_now(ref)
    steps: list[int] = []
    stream = version.predictor.stream

    def counted(text, **options):  # the predictor's stream, counting the tokens it computes
        for piece in stream(text, **options):
            steps.append(1)
            yield piece

    version.predictor.stream = counted  # type: ignore[method-assign]

    async def leave_after_two() -> list:
        async def loaded(_ref):
            return version

        models.version = loaded  # the multiplexed loader needs a Serve replica
        pieces = models.stream(ref, "Once upon a time", {"max_new_tokens": 200})
        got = [await anext(pieces), await anext(pieces)]
        await pieces.aclose()  # what Serve does to the response when its client disconnects
        return got

    got = asyncio.run(leave_after_two())
    assert len(got) == 2 and len(steps) == 2  # nothing was computed after the client left
    assert models.streams == {"stopped": 1} and models.bases.streaming[ref] == 0


def test_a_lone_request_does_not_wait_for_company_but_requests_under_load_do(
    tmp_path, tiny_bert, monkeypatch
):
    import asyncio
    import time
    from types import SimpleNamespace

    from ray.serve import batching

    # serve.batch reads one setting from its replica's context, which only Serve provides.
    config = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=64))
    monkeypatch.setattr(batching.serve, "get_replica_context", lambda: config)

    registry = Registry(LocalStore(tmp_path / "registry"), BlobCache(tmp_path / "cache"))
    ref = register_output(registry, trained_output(tmp_path, tiny_bert, "full", 1), "clf").ref
    wait = 0.5  # long enough that whether a batch waited shows beyond timing noise
    models = Models(registry, batch_wait_s=wait)
    version = models._load_version_now(ref)

    async def timed_requests(count: int) -> float:
        async def loaded(_ref):
            return version

        models.version = loaded  # the multiplexed loader needs a Serve replica
        started = time.perf_counter()
        await asyncio.gather(*(models.predict(ref, ["fine"], {}) for _ in range(count)))
        return time.perf_counter() - started

    async def scenario() -> list[float]:
        return [await timed_requests(n) for n in (1, 3, 1, 1)]

    lone, together, after_load, idle_again = asyncio.run(scenario())
    assert lone < wait / 2  # an idle replica answers at once
    assert together < wait / 2 and models.batches == 4  # the three came as one batch
    assert after_load >= wait  # the batch before held three requests: it waited for more
    assert idle_again < wait / 2
