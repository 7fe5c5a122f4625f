"""Training batches (shuffled, or of similar length: less padding) and evaluation batches (sorted by length)."""

from __future__ import annotations

import math


class LengthGroupedBatches:
    """Batches of similar length, in random order: less padding, the same examples per epoch.

    Each epoch shuffles the examples, cuts the order into windows of ``window`` batches, sorts each
    window by length and batches it, then shuffles the batches (as the HF Trainer's
    group_by_length does). The order comes from ``generator`` when iteration starts, so a resumed
    run redraws the same epoch."""

    def __init__(self, lengths: list[int], batch_size: int, generator, window: int = 50):
        self.lengths, self.batch_size, self.generator, self.window = lengths, batch_size, generator, window

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        import torch

        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start:start + span], key=lambda i: -self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]


class LengthSortedBatches:
    """Evaluation batches, longest rows first, so each batch's rows have similar lengths: in a split's own
    order a batch of 64 pads 33-51% of the GLUE dev sets' positions, sorted 6-12% (scripts/eval_padding.py).
    ``order[k]`` is the row of the k-th output the loader gives (``harness.tasks.objective.in_split_order``
    restores the split's order)."""

    def __init__(self, lengths: list[int], batch_size: int):
        self.batch_size = batch_size  # read by accelerate when it shards the batches over processes
        self.order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties keep the split's order

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            yield self.order[start:start + self.batch_size]


def eval_loader(rows: list[dict], batch_size: int, collate):
    """An evaluation DataLoader over ``rows`` in length-sorted batches (its sampler's ``order`` maps back)."""
    from torch.utils.data import DataLoader

    # Rows of an objective without input_ids all count as length 0: they keep the split's order.
    lengths = [len(r.get("input_ids", ())) if isinstance(r, dict) else 0 for r in rows]
    return DataLoader(rows, batch_sampler=LengthSortedBatches(lengths, batch_size), collate_fn=collate)


def train_loader(rows: list[dict], batch_size: int, group_by_length: bool, collate, generator):
    """The training DataLoader: shuffled (or length-grouped) batches drawn from ``generator``."""
    from torch.utils.data import DataLoader

    if group_by_length and rows:
        batches = LengthGroupedBatches([len(r["input_ids"]) for r in rows], batch_size, generator)
        return DataLoader(rows, batch_sampler=batches, collate_fn=collate)
    return DataLoader(rows, batch_size, shuffle=bool(rows), collate_fn=collate, generator=generator)
