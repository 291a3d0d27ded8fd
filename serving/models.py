"""A replica's models: registry versions loaded on demand, several per replica.

- Versions are Serve multiplexed models (LRU, `capacity` per replica), keyed by their immutable
  `name:version`, so an alias move loads the new version beside the old one and requests in
  flight finish on the version they were routed to.
- Adapter and prompt versions on the same base share one copy of it per replica: they are
  adapters of one PEFT model, activated per batch.
- Requests are batched dynamically (`serve.batch`); each batch is split by version.
- All model work runs on the replica's event-loop thread: one thread, so switching adapters never
  races a forward pass, and requests arriving during a forward wait in the loop to form the next
  batch. (A worker thread for the model left request intake fighting it for the GIL: batches
  stayed at one input and throughput fell 2.6x.) Serve evicts a version by running its
  `__del__` in an executor thread, so eviction only queues the version's release; the loop
  applies queued releases between batches and before loading (`SharedBases.settle`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import torch
from ray import serve

from ftray.inference import Predictor, version_files
from ftray.model_files import ModelFiles
from ftray.models import quiet_transformers
from serving.batching import answer_grouped


class SharedBases:
    """One shared model per (base, task, labels, family) per replica; versions are its members.

    The strategy that trained a version says whether it can share (`Strategy.sharing_family`)
    and how a version joins and leaves the shared model (`attach`, `detach`): for the PEFT
    strategies, versions are adapters of one PEFT model, one per family.
    """

    def __init__(self) -> None:
        self.models: dict[tuple, Any] = {}
        self.members: dict[tuple, set[str]] = defaultdict(set)
        self.releases: deque[tuple[ModelFiles, str]] = deque()  # appended from any thread
        self.streaming: Counter[str] = Counter()  # versions a stream is generating with

    def release_later(self, files: ModelFiles, name: str) -> None:
        """Queue a version's leaving (safe from any thread: deque appends are atomic)."""
        self.releases.append((files, name))

    def settle(self) -> None:
        """Apply queued releases: only on the thread that runs forward passes, between them;
        a version a stream still generates with leaves once its streams end."""
        waiting = []
        while self.releases:
            files, name = self.releases.popleft()
            if self.streaming[name]:
                waiting.append((files, name))
            else:
                self.detach(files, name)
        self.releases.extend(waiting)

    @staticmethod
    def key(files: ModelFiles) -> tuple:
        family = files.strategy.sharing_family(files)
        return (str(files.base_directory), files.task, tuple(files.labels), family)

    def attach(self, files: ModelFiles, name: str, device: torch.device) -> Any:
        self.settle()  # a version evicted and loaded again leaves before it rejoins
        key = self.key(files)
        shared = self.models.get(key)
        if name in self.members[key]:  # evicted while streaming, asked for again: it stays
            self.releases = deque(r for r in self.releases if r[1] != name)
            return shared
        model = files.strategy.attach(shared, files, name)
        if shared is None:  # a new shared model; later versions join it where it already is
            self.models[key] = model.to(device)
        self.members[key].add(name)
        return model

    def detach(self, files: ModelFiles, name: str) -> None:
        key = self.key(files)
        self.members[key].discard(name)
        if not self.members[key]:  # the last version on this base: let the base go too
            self.models.pop(key, None)
            self.members.pop(key, None)
        else:
            files.strategy.detach(self.models[key], name)


class LoadedVersion:
    """A version in a replica's multiplexing cache; Serve calls `__del__` when evicting it."""

    def __init__(
        self, ref: str, files: ModelFiles, predictor: Predictor, release: Callable[[], None] | None
    ):
        self.ref, self.files, self.predictor, self._release = ref, files, predictor, release

    def __del__(self) -> None:
        release, self._release = getattr(self, "_release", None), None  # idempotent
        if release is not None:
            release()


class Models:
    """The versions one replica holds, and the batched forward passes that answer with them.
    Made inside the replica: multiplexing and batching are the replica's."""

    def __init__(
        self,
        registry: Any,
        capacity: int = 4,
        max_batch_size: int = 16,
        batch_wait_s: float = 0.001,
    ) -> None:
        quiet_transformers()
        self.registry = registry
        self.bases = SharedBases()
        # A replica started with `num_gpus` sees its GPU here.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

        async def load_version(ref: str) -> LoadedVersion:
            return self._load_version_now(ref)

        # Wrapped here rather than decorated on the class so `capacity` can come from the command
        # line; Serve keys its LRU cache and its routing on the multiplexed model id.
        self.version = serve.multiplexed(max_num_models_per_replica=capacity)(load_version)
        self.batches = self.batched_inputs = 0  # inputs per forward pass = their ratio
        self.streams: Counter[str] = Counter()  # streamed completions, finished or stopped
        self.batch_wait_s = batch_wait_s  # under load; an idle replica answers at once
        # serve.batch's wrapper has these setters; its type stubs do not say so.
        self.batched.set_max_batch_size(max_batch_size)  # type: ignore
        self._pace_next_batch(requests_in_last=1)

    def _load_version_now(self, ref: str) -> LoadedVersion:
        files = version_files(self.registry, ref)
        if files.strategy.sharing_family(files) is None:
            predictor = Predictor.from_files(files, self.device)
            return LoadedVersion(ref, files, predictor, None)
        model = self.bases.attach(files, ref, self.device)
        predictor = Predictor.with_model(files, model, adapter=ref)
        return LoadedVersion(ref, files, predictor, lambda: self.bases.release_later(files, ref))

    async def stats(self) -> dict[str, Any]:
        """What this replica holds: each shared base with the versions that are its adapters."""
        self.bases.settle()
        return {
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
            "batches": self.batches,
            "batched_inputs": self.batched_inputs,
            "streams": dict(self.streams),
            "shared_bases": [
                {"base": key[0], "family": key[3], "versions": sorted(members)}
                for key, members in self.bases.members.items()
            ],
        }

    async def tokenizer_of(self, ref: str) -> Any:
        return (await self.version(ref)).predictor.tokenizer

    async def stream(
        self, ref: str, text: str, options: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """One completion piece by piece, a forward pass per token on the replica's loop; between
        tokens the loop serves other requests. Closing the iterator (the client left) stops the
        generation at the next token."""
        version = await self.version(ref)
        pieces = version.predictor.stream(text, **options)
        self.bases.streaming[ref] += 1
        finished = False
        try:
            for piece in pieces:
                yield piece
                await asyncio.sleep(0)
            finished = True
        finally:
            pieces.close()
            self.bases.streaming[ref] -= 1
            self.streams["finished" if finished else "stopped"] += 1

    async def describe(self, ref: str) -> dict[str, Any]:
        version = await self.version(ref)
        return {
            "task": version.files.task,
            "kind": version.files.kind,
            "labels": version.files.labels,
        }

    async def predict(
        self, ref: str, inputs: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """One request's answers; requests arriving together are batched."""
        result = await self.batched(ref, inputs, options)  # type: ignore  # serve.batch's stub
        if isinstance(result, Exception):
            raise result
        return result

    @serve.batch  # type: ignore  # size and wait are the replica's options, set in __init__
    async def batched(  # type: ignore[misc]
        self, refs: list[str], inputs: list[list[str]], options: list[dict[str, Any]]
    ) -> list:
        """A batch of requests, one forward per version."""
        self.batches += 1
        self.batched_inputs += sum(map(len, inputs))
        self._pace_next_batch(requests_in_last=len(refs))
        self.bases.settle()
        return await answer_grouped(refs, inputs, options, self._forward)

    def _pace_next_batch(self, requests_in_last: int) -> None:
        """Wait for company only under load. A lone request (the last batch held one) goes at
        once: waiting would only add `batch_wait_s` to its latency. When requests came
        together, the next batch waits up to `batch_wait_s` for more, which fills it."""
        wait = self.batch_wait_s if requests_in_last > 1 else 0.0
        self.batched.set_batch_wait_timeout_s(wait)  # type: ignore  # not in serve.batch's stub

    async def _forward(self, ref: str, inputs: list[str], options: dict[str, Any]) -> list:
        version = await self.version(ref)
        return version.predictor.predict(inputs, **options)
