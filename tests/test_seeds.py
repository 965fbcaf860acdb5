"""Seeds: the counter-based uniforms of the batched views against a plain-integer SplitMix64 written
here, their distribution (uniform, independent across draws and counters), and the batched views
of a sample, the same whatever batch it lands in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrast.seeds import counter_uniforms

MASK = 2**64 - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _reference(key: int, counter: int, draw: int) -> float:
    state = _mix(key ^ _mix((counter * GOLDEN + GOLDEN) & MASK))
    return (_mix((state + (draw + 1) * GOLDEN) & MASK) >> 11) / 2**53


def test_counter_uniforms_equal_splitmix64_in_plain_integers():
    key, counters = 0x5DEECE66D1234567, [0, 1, 2, 49_999, 50_000, 2**40 + 3]
    u = counter_uniforms(key, counters, 36)
    assert u.shape == (6, 36) and u.dtype == np.float64
    for row, counter in enumerate(counters):
        for draw in (0, 1, 17, 35):
            assert u[row, draw] == _reference(key, counter, draw)


def test_counter_uniforms_are_uniform_and_independent():
    stats = pytest.importorskip("scipy.stats", reason="scipy comes with the dev extra")
    u = counter_uniforms(12345, np.arange(20_000), 8)
    assert ((u >= 0) & (u < 1)).all()
    for column in range(8):
        assert stats.kstest(u[:, column], "uniform").pvalue > 1e-3
    assert stats.kstest(u[::2, 0] - u[1::2, 0], "triang", args=(0.5, -1, 2)).pvalue > 1e-3  # neighbours
    correlation = np.corrcoef(u.T)  # draws of one stream: uncorrelated (|r| < 4/sqrt(N))
    assert np.abs(correlation[~np.eye(8, dtype=bool)]).max() < 4 / np.sqrt(20_000)
    other_key = counter_uniforms(12346, np.arange(20_000), 1)[:, 0]
    assert abs(np.corrcoef(u[:, 0], other_key)[0, 1]) < 4 / np.sqrt(20_000)


def test_a_sample_s_batched_views_do_not_depend_on_its_batch():
    """Sample 5 of epoch 2 (counter 2·N + 5) in two different batches, at two places: the same
    views to the bit; the same counters in another order: the same views, reordered."""
    from contrast.views import DeviceViews

    views = DeviceViews("simclr_cifar10", seed=7)
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    n = 1000
    first = torch.tensor([2 * n + i for i in range(8)])
    second = torch.tensor([2 * n + i for i in (9, 5, 11, 3)])
    (q1, k1), _ = views(((images[:8], first), torch.zeros(8)))
    (q2, k2), _ = views(((images[[9, 5, 11, 3]], second), torch.zeros(4)))
    assert torch.equal(q1[5], q2[1]) and torch.equal(k1[5], k2[1]) and torch.equal(q1[3], q2[3])
    assert not torch.equal(q1[5], k1[5])  # q and k: other numbers of the stream
    (q3, _), _ = views(((images[:8], first + n), torch.zeros(8)))  # the next epoch: other views
    assert not torch.equal(q1[5], q3[5])
