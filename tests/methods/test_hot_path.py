"""The training step never reads a value back from the device.

On a GPU, any read of a device value (``.item()``, ``bool(t)``, ``int(t)``, ``t.nonzero()``,
boolean-mask indexing, ``.tolist()``) makes the host wait for every queued kernel, so the host can
no longer prepare step t+1 while the device runs step t. The check runs everywhere: the whole
step (batched views from the device cache, forward, loss, probe, backward, optimizer and schedule)
runs on the ``meta`` device, whose tensors have shapes but no values, so every such read raises.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch

from contrast.data import ContrastiveData
from contrast.methods import METHODS
from contrast.methods.base import OPTIMIZERS

META = torch.device("meta")


def test_the_meta_device_refuses_every_read_of_a_value():
    """The premise of the tests below: on this torch, reads of meta values raise."""
    x = torch.zeros(4, device=META)
    reads = [x.sum().item, lambda: bool(x.sum()), lambda: int(x[0]), x.nonzero, x.tolist, lambda: x[x > 0]]
    for read in reads:
        with pytest.raises((RuntimeError, NotImplementedError)):
            read()


@pytest.fixture(scope="module")
def data() -> ContrastiveData:
    data = ContrastiveData(dataset="shapes10", views="batched", cache="device", batch_size=16, train_subset=64)
    data.train_dataloader()  # as Lightning does before the first batch: the view path meets its images
    return data


def _meta_batch(data: ContrastiveData, batch_size: int, step: int):
    """A training batch as the data module hands it to ``training_step`` with ``cache="device"``:
    the counters (on the host) gather the images held on the device, then the batched views are
    made there, their parameters drawn on the host from the counters."""
    data.trainer = SimpleNamespace(training=True, global_step=step, strategy=SimpleNamespace(root_device=META))
    counters = torch.arange(step * batch_size, (step + 1) * batch_size)
    return data.on_after_batch_transfer(data.transfer_batch_to_device(counters, META, 0), 0)


def _optimizers(model):
    model.trainer = SimpleNamespace(estimated_stepping_batches=10, max_epochs=1)  # for the schedule
    config = model.configure_optimizers()
    model.trainer = None
    return config["optimizer"], config["lr_scheduler"]["scheduler"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("method", sorted(set(METHODS) - {"crossmodal", "linear"}))  # pairs / one view: below
def test_a_training_step_reads_nothing_back_from_the_device(data, method, optimizer):
    small = dict(projector_hidden=64, projector_dim=32)
    if method == "moco_v2":
        small["queue_size"] = 64
    if method in ("moco_v3", "nnclr"):
        small["predictor_hidden"] = 64
    if method == "nnclr":
        small["support_size"] = 64
    model = METHODS[method](backbone="tiny_cnn", num_classes=10, optimizer=optimizer, channels_last=True, **small).to(
        META
    )
    opt, schedule = _optimizers(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer: nothing is logged
        for step in range(2):  # the second step: optimizer state and the queue are in use
            batch = _meta_batch(data, 16, step)
            (q, k), labels = batch
            assert q.device == META and q.shape == (16, 3, 32, 32) and labels.device == META
            loss = model.training_step(batch, step)
            assert loss.device == META and loss.shape == ()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
    assert all(p.grad is not None for p in model.backbone.parameters())


@pytest.mark.parametrize("head_norm", [False, True])
def test_a_linear_evaluation_step_reads_nothing_back_from_the_device(data, head_norm, tmp_path):
    from contrast.methods import LinearEval
    from tests.methods.test_linear_eval import _export

    model = LinearEval(weights=str(_export(tmp_path / "export")), num_classes=10, head_norm=head_norm).to(META)
    opt, schedule = _optimizers(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(2):
            (q, _), labels = _meta_batch(data, 16, step)
            loss = model.training_step(((q,), labels), step)  # one view per image
            assert loss.device == META and loss.shape == ()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
    assert all(p.grad is None for p in model.backbone.parameters())  # frozen
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize(
    "learn_temperature, objectives",
    [(True, {"clip": 1.0}), (False, {"clip": 1.0}), (True, {"triplet": 1.0}), (True, {"acmr": 1.0, "clip": 1.0})],
)
def test_a_crossmodal_step_reads_nothing_back_from_the_device(learn_temperature, objectives):
    from contrast.methods import CrossModal

    model = CrossModal(
        backbone="tiny_cnn",
        embed_dim=16,
        head_hidden=32,
        text_width=16,
        learn_temperature=learn_temperature,
        objectives=objectives,
        vocabulary=["<pad>", "<unk>", "red", "disc"],
        num_classes=10,
    )
    model = model.to(META)
    opt, schedule = _optimizers(model)
    images = torch.empty(16, 3, 32, 32, dtype=torch.uint8, device=META)
    texts = torch.empty(16, 7, dtype=torch.long, device=META)
    labels = torch.empty(16, dtype=torch.long, device=META)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(2):
            loss = model.training_step((images, texts, labels), step)
            assert loss.device == META and loss.shape == ()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
    assert all(p.grad is not None for p in model.text_encoder.parameters())
