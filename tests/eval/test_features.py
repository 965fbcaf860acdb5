"""extract_features: the encoder's outputs row for row, written into one tensor of the loader's length."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from contrast.eval import extract_features


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(12, 5)
        self.norm = nn.BatchNorm1d(5)

    def forward(self, x):
        return self.norm(self.linear(x.flatten(1)))


def _data(n=23):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 2, 2, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_features_are_the_encoder_s_outputs_in_eval_mode_in_loader_order():
    images, labels = _data()
    encoder = _Encoder().train()
    encoder.norm.running_mean.uniform_(-1, 1)  # eval mode must use these, not the batch's
    features, got = extract_features(encoder, DataLoader(TensorDataset(images, labels), batch_size=5))
    encoder.eval()
    with torch.no_grad():
        expected = encoder(images)
    assert torch.equal(got, labels) and got.dtype == torch.long
    assert features.shape == (23, 5) and features.dtype == torch.float32
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-6)


def test_the_encoder_s_mode_is_restored():
    images, labels = _data()
    encoder = _Encoder().train()
    extract_features(encoder, DataLoader(TensorDataset(images, labels), batch_size=5))
    assert encoder.training


def test_float16_features_are_the_float32_ones_rounded():
    images, labels = _data()
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    encoder = _Encoder().eval()
    full, _ = extract_features(encoder, loader)
    half, _ = extract_features(encoder, loader, dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.equal(half, full.half())


def test_one_allocation_of_the_loader_s_length():
    """No list of batches and a concatenation: the result is the one preallocated block."""
    images, labels = _data(40)
    features, _ = extract_features(_Encoder().eval(), DataLoader(TensorDataset(images, labels), batch_size=8))
    assert features.untyped_storage().nbytes() == 40 * 5 * 4


def test_a_loader_without_a_length_still_gives_every_row():
    images, labels = _data(17)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(images, labels))

    features, got = extract_features(_Encoder().eval(), DataLoader(Stream(), batch_size=3))
    assert features.shape == (17, 5) and torch.equal(got, labels)


def test_an_empty_loader_is_an_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 3, 2, 2), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        extract_features(_Encoder().eval(), empty)
