"""The plain baseline for bench/train_overhead.py: a hand-written torch DDP fine-tuning loop,
launched with torchrun, on the same model, data, batch size and number of steps as ftray.

    torchrun --nproc-per-node 2 bench/ddp_baseline.py --steps 60 --batch-size 16

Rank 0 prints one JSON line: steady-state seconds per step (the first 3 steps left out, as ftray
does), the seconds from this process's start to the end of the first step, and the wall-clock
time the first step ended (for the launcher to time from `torchrun`'s own start, as ftray's
start-up is timed from the launch of its TorchTrainer).
"""

from __future__ import annotations

import argparse
import json
import time

STARTED = time.perf_counter()

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--fused-adamw", action="store_true", help="the optimizer ftray uses")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    with open(args.train) as handle:
        rows = [json.loads(line) for line in handle]
    labels = sorted({r["label"] for r in rows})
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=args.max_length)
    data = [
        {"input_ids": encoded["input_ids"][i], "label": labels.index(r["label"])}
        for i, r in enumerate(rows)
    ]

    def collate(batch):
        padded = tokenizer.pad({"input_ids": [b["input_ids"] for b in batch]}, return_tensors="pt")
        return (
            padded["input_ids"],
            padded["attention_mask"],
            torch.tensor([b["label"] for b in batch]),
        )

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))
    model = DistributedDataParallel(model)
    fused = {"fused": True} if args.fused_adamw else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, **fused)
    sampler = DistributedSampler(data, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, collate_fn=collate)

    times, first_step_done, first_step_at, step, epoch = [], None, None, 0, 0
    model.train()
    while step < args.steps:
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        for input_ids, mask, target in loader:
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - started)
            first_step_done = first_step_done or time.perf_counter()
            first_step_at = first_step_at or time.time()
            started = time.perf_counter()
            step += 1
            if step == args.steps:
                break
        epoch += 1
    if rank == 0:
        steady = times[3:]
        print(
            json.dumps(
                {
                    "step_time_s": sum(steady) / len(steady),
                    "first_step_s": first_step_done - STARTED,
                    "first_step_at": first_step_at,
                }
            )
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
