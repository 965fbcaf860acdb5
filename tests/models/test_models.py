from __future__ import annotations

import math

import pytest
import torch

from contrast.models import Queue, build_backbone, cosine_momentum, ema_update, mlp, momentum_copy


@pytest.mark.parametrize(
    "name,kwargs,dim",
    [
        ("resnet18", {}, 512),
        ("resnet18", {"cifar_stem": True}, 512),
        ("resnet50", {}, 2048),
        ("mobilenet_v3_small", {}, 1024),
        ("tiny_cnn", {}, 64),
        ("tiny_cnn_w8", {}, 32),
        ("tiny_cnn_w8", {"in_channels": 1}, 32),
        ("resnet18", {"in_channels": 1}, 512),
    ],
)
def test_backbone_outputs_feature_dim(name, kwargs, dim):
    model = build_backbone(name, **kwargs).eval()
    channels = kwargs.get("in_channels", 3)
    out = model(torch.randn(2, channels, 64, 64))
    assert out.shape == (2, dim) and model.feature_dim == dim


def test_cifar_stem_keeps_resolution_in_the_first_stage():
    stem = build_backbone("resnet18", cifar_stem=True)
    assert stem.conv1.kernel_size == (3, 3) and stem.conv1.stride == (1, 1)
    assert isinstance(stem.maxpool, torch.nn.Identity)
    x = torch.randn(1, 3, 32, 32)
    assert stem.layer1(stem.relu(stem.bn1(stem.conv1(x)))).shape[-1] == 32
    plain = build_backbone("resnet18")
    assert plain.layer1(plain.maxpool(plain.relu(plain.bn1(plain.conv1(x))))).shape[-1] == 8


def test_channels_last_gives_the_same_features():
    torch.manual_seed(0)
    a = build_backbone("resnet18", cifar_stem=True).eval()
    b = build_backbone("resnet18", cifar_stem=True, channels_last=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert b.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(a(x), b(x.contiguous(memory_format=torch.channels_last)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: build_backbone("resnet19"), "unknown backbone"),
        (lambda: build_backbone("vit_b_16", cifar_stem=True), "ResNets"),
        (lambda: build_backbone("tiny_cnn", cifar_stem=True), "cifar_stem"),
        (lambda: mlp(0, 10, 10), "in_dim"),
    ],
)
def test_bad_model_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_heads_have_the_papers_layout():
    simclr = mlp(512, 2048, 128)
    assert [type(m).__name__ for m in simclr] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    v3 = mlp(512, 4096, 256, num_layers=3, last_bn=True)
    assert [type(m).__name__ for m in v3][-2:] == ["Linear", "BatchNorm1d"] and not v3[-1].affine
    v2 = mlp(512, 2048, 128, batch_norm=False)
    assert [type(m).__name__ for m in v2] == ["Linear", "ReLU", "Linear"]


def test_ema_update_follows_the_formula_and_copies_buffers():
    torch.manual_seed(0)
    online = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    target = momentum_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
        online[1].running_mean.fill_(0.5)
    before = [p.clone() for p in target.parameters()]
    ema_update(online, target, 0.9)
    for p_t, p_before, p_o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(p_t, 0.9 * p_before + 0.1 * p_o)
    torch.testing.assert_close(target[1].running_mean, torch.full((3,), 0.5))


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 50, 100) == pytest.approx(1 - 0.01 * 0.5)
    assert cosine_momentum(0.99, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.99, 25, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)


def test_queue_holds_exactly_the_last_k_keys_in_order():
    queue = Queue(size=12, dim=2)
    pushed = [torch.full((4, 2), float(i)) for i in range(5)]  # 5 batches of 4 into a queue of 12
    for keys in pushed:
        queue.push(keys)
    # Slots: the last 3 batches (2, 3, 4), written cyclically: pointer at 20 % 12 = 8.
    expected = torch.cat([pushed[3], pushed[4], pushed[2]])
    torch.testing.assert_close(queue.negatives(), expected)
    assert int(queue.pointer) == 8
    with pytest.raises(ValueError, match="multiple of the global batch size"):
        queue.push(torch.zeros(5, 2))


def test_queue_resumes_at_the_loaded_pointer():
    """push() writes at a host copy of the pointer; loading a state dict must reset that copy."""
    first = Queue(size=12, dim=2)
    for i in range(2):
        first.push(torch.full((4, 2), float(i)))
    resumed = Queue(size=12, dim=2)
    resumed.push(torch.full((4, 2), -1.0))  # its own pointer moves to 4 ...
    resumed.load_state_dict(first.state_dict())  # ... and the load brings it to 8
    for queue in (first, resumed):
        queue.push(torch.full((4, 2), 2.0))
    torch.testing.assert_close(resumed.negatives(), first.negatives())
    torch.testing.assert_close(resumed.bank[8:], torch.full((4, 2), 2.0))
    assert int(resumed.pointer) == int(first.pointer) == 0
