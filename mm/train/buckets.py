"""Length-bucketed batches: examples of similar length share a batch, so less of each batch is padding.

An epoch's shuffled order is cut into windows of `window` batches; each window is sorted by example length,
cut into batches, and its batches are shuffled, so a batch is short or long at random but seldom mixed. The
order depends only on (seed, epoch, window), so a run resumed at an offset sees the batches it would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def window_batches(order: np.ndarray, start: int, per_step: int, window: int, length: Callable[[int], int],
                   seed: int, epoch: int) -> list[np.ndarray]:
    """The batches (index arrays of `per_step`) of the window that begins at `order[start]`, in training order;
    `length(i)` of an example the collator skips is 0.

    `start` is a multiple of `window * per_step`; indices past the last whole batch of the epoch are left out."""
    usable = len(order) - len(order) % per_step
    idx = order[start: min(start + window * per_step, usable)]
    lengths = np.array([length(int(i)) for i in idx])
    ranked = idx[np.argsort(lengths, kind="stable")]
    # Length 0: an example the collator will skip (unreadable media). Sorted together they could fill a whole
    # batch, which cannot be trained on; spread evenly over the window instead.
    skipped = int((lengths == 0).sum())
    if skipped:
        spread = list(ranked[skipped:])
        for j, i in enumerate(ranked[:skipped]):
            spread.insert(j * len(ranked) // skipped, i)
        ranked = np.array(spread, dtype=idx.dtype)
    batches = [ranked[k: k + per_step] for k in range(0, len(ranked), per_step)]
    shuffle = np.random.default_rng([seed, epoch, start]).permutation(len(batches))
    return [batches[int(k)] for k in shuffle]


def bucketed(order: np.ndarray, offset: int, per_step: int, window: int, length: Callable[[int], int],
             seed: int, epoch: int) -> Iterator[np.ndarray]:
    """The epoch's remaining batches from `offset` (indices consumed so far, a multiple of `per_step`)."""
    span = window * per_step
    start = offset - offset % span
    skip = (offset - start) // per_step
    while start + per_step <= len(order):
        yield from window_batches(order, start, per_step, window, length, seed, epoch)[skip:]
        start, skip = start + span, 0
