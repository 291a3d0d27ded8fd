"""The best model of a ZeRO-3 run is written without any rank holding it whole.

Two CPU processes (gloo) build an ~83M-parameter Llama under `deepspeed.zero.Init` (each holds
half of every parameter from the start), wrap it in a ZeRO-3 engine and export it with
`ftray.checkpointing.export_model`, while a thread samples each process's resident memory. The
rise during export must stay under a submodule's gathered weights plus one file shard (the
whole model is twice that); the files load with plain transformers and hold the trained weights.
"""

import json
import os
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
import torch.multiprocessing as mp

from ftray.checkpointing import export_model

SHARD_BYTES = 32 * 2**20
CONFIG = {
    "hidden_size": 512,
    "num_hidden_layers": 16,
    "intermediate_size": 2048,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "tie_word_embeddings": True,
}


class PeakRss:
    """The largest resident set size seen while the block runs, sampled every 2 ms."""

    def __enter__(self):
        self.process, self.peak, self.running = psutil.Process(), 0, True
        self.before = self.process.memory_info().rss
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()
        return self

    def sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def export_on_rank(rank: int, directory: str, port: int) -> None:
    import deepspeed
    from transformers import LlamaConfig, LlamaForCausalLM

    import ftray.checkpointing as checkpointing

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
    )  # fmt: skip
    deepspeed.init_distributed(dist_backend="gloo")
    checkpointing.SHARD_BYTES = SHARD_BYTES
    config = {
        "train_micro_batch_size_per_gpu": 1,
        "zero_optimization": {"stage": 3},
        "zero_allow_untested_optimizer": True,
    }
    torch.manual_seed(0)
    with deepspeed.zero.Init(config_dict_or_path=config):
        model = LlamaForCausalLM(LlamaConfig(**CONFIG))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)

    class Tokenizer:
        def save_pretrained(self, path):
            pass

    with PeakRss() as memory:
        export_model(engine, Tokenizer(), Path(directory) / "model", rank)
    largest = max(sum(p.ds_numel * 4 for p in m.parameters(recurse=False)) for m in model.modules())
    total = sum(p.ds_numel * 4 for p in model.parameters())
    expected = {}
    if rank == 0:
        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            expected = {n: float(p.double().sum()) for n, p in model.named_parameters()}
    else:
        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            pass
    figures = {
        "before_mb": memory.before / 2**20,
        "rise_mb": (memory.peak - memory.before) / 2**20,
        "largest_module_mb": largest / 2**20,
        "model_mb": total / 2**20,
        "sums": expected,
    }
    with open(os.path.join(directory, f"rank{rank}.json"), "w") as handle:
        json.dump(figures, handle)


@pytest.mark.timeout(600)
def test_zero3_export_streams_the_model_a_module_at_a_time(tmp_path):
    from transformers import LlamaForCausalLM

    # Large allocations mapped (and unmapped when freed): resident memory then follows what is
    # alive, instead of glibc's heap keeping freed chunks.
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(2**16)
    mp.spawn(export_on_rank, args=(str(tmp_path), 29613), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # DeepSpeed's all-gather on CPU stages a module twice (its output and a staging copy): the
    # bound is two of the largest module (the 62.5 MB embedding) plus one file shard.
    bound = 2 * ranks[0]["largest_module_mb"] + SHARD_BYTES / 2**20
    figures = {
        f"rank{r}": {k: round(v, 1) for k, v in f.items() if k != "sums"}
        for r, f in enumerate(ranks)
    }
    print(figures)
    for figures in ranks:
        assert figures["rise_mb"] < bound
        assert figures["rise_mb"] < figures["model_mb"] / 2  # a whole gather would be > model
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert "model.safetensors.index.json" in files and len(files) > 4
    loaded = LlamaForCausalLM.from_pretrained(tmp_path / "model")
    sums = ranks[0]["sums"]
    for name, parameter in loaded.named_parameters():
        assert float(parameter.double().sum()) == pytest.approx(sums[name], rel=1e-6, abs=1e-6)
