"""Length-bucketed batches: every example once per epoch, similar lengths together, exact resume."""

import numpy as np
import pytest

from mm.train.buckets import bucketed, window_batches
from mm.train.trainer import TrainConfig

LENGTHS = np.random.default_rng(3).integers(5, 200, size=103)


def length(i):
    return int(LENGTHS[i])


def epoch(offset=0, per_step=4, window=5, seed=0, e=0):
    order = np.random.default_rng([seed, e]).permutation(len(LENGTHS))
    return [b.tolist() for b in bucketed(order, offset, per_step, window, length, seed, e)]


def test_an_epoch_uses_every_whole_batch_once_and_groups_similar_lengths():
    batches = epoch()
    flat = [i for b in batches for i in b]
    assert all(len(b) == 4 for b in batches) and len(batches) == 103 // 4
    assert len(set(flat)) == len(flat) == 100  # the last 3 of the shuffled order wait for the next epoch
    spread = np.mean([np.ptp(LENGTHS[b]) for b in batches])
    plain = np.random.default_rng([0, 0]).permutation(103)[:100].reshape(-1, 4)
    assert spread < 0.35 * np.mean([np.ptp(LENGTHS[b]) for b in plain])
    # Within a window the batches are sorted runs: no batch's lengths interleave with another's.
    order = np.random.default_rng([0, 0]).permutation(103)
    first = window_batches(order, 0, 4, 5, length, 0, 0)
    ranges = sorted((LENGTHS[b].min(), LENGTHS[b].max()) for b in first)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(ranges, ranges[1:]))
    # Short and long batches come in random order, not shortest first.
    means = [LENGTHS[b].mean() for b in batches]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def test_resuming_at_any_offset_continues_the_same_batches_and_epochs_differ():
    full = epoch()
    for k in (1, 5, 7, 24):
        assert epoch(offset=4 * k) == full[k:]
    assert epoch(e=1) != full
    assert epoch() == full  # no hidden state


def test_examples_that_will_be_skipped_are_spread_so_no_batch_is_empty():
    lengths = np.where(np.arange(103) % 3 == 0, 0, LENGTHS)  # a third unreadable
    order = np.random.default_rng(0).permutation(103)
    for per_step, window in ((4, 5), (6, 17), (2, 51)):
        batches = list(bucketed(order, 0, per_step, window, lambda i: int(lengths[i]), 0, 0))
        assert all((lengths[b] > 0).any() for b in batches)
        assert sorted(i for b in batches for i in b) == sorted(order[: len(order) - len(order) % per_step])


def test_a_negative_window_is_refused():
    with pytest.raises(ValueError, match="bucket must be >= 0"):
        TrainConfig(bucket=-1)
