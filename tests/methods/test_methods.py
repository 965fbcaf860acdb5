"""The methods learn, keep their invariants, and resume exactly."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from contrast.data import ContrastiveData
from contrast.methods import MoCoV2, MoCoV3, SimCLR
from contrast.methods.lars import LARS
from contrast.views import BatchedTwoViews

SMALL = {
    SimCLR: dict(projector_hidden=64, projector_dim=32),
    MoCoV2: dict(projector_hidden=64, projector_dim=32, queue_size=64),
    MoCoV3: dict(projector_hidden=64, projector_dim=32, predictor_hidden=64),
}


def _views(n=32, seed=0):
    from contrast.data.shapes import generate_shapes

    images, labels = generate_shapes(n, seed=seed)
    q, k = BatchedTwoViews("quickstart")(images, torch.Generator().manual_seed(seed))
    return q, k, labels


@pytest.mark.parametrize("cls", [SimCLR, MoCoV2, MoCoV3])
def test_a_few_steps_lower_the_loss(cls):
    torch.manual_seed(0)
    model = cls(backbone="tiny_cnn", num_classes=10, **SMALL[cls])
    q, k, _ = _views()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        loss, features = model.contrastive_step(q, k)
        assert features.shape == (32, model.feature_dim)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # From the second step: MoCo v2's first step sees a queue of random vectors (easy negatives);
    # from then on the queue holds real keys.
    assert losses[-1] < losses[1] - 0.1, losses


@pytest.mark.parametrize("cls", [MoCoV2, MoCoV3])
def test_momentum_encoder_gets_no_gradient_and_follows_ema(cls):
    torch.manual_seed(0)
    model = cls(backbone="tiny_cnn", num_classes=10, base_momentum=0.9, momentum_schedule="constant", **SMALL[cls])
    q, k, _ = _views(16)
    online_before = [p.detach().clone() for p in model.online.parameters()]
    target_before = [p.detach().clone() for p in model.momentum_encoder.parameters()]
    loss, _ = model.contrastive_step(q, k)
    loss.backward()
    assert all(p.grad is None for p in model.momentum_encoder.parameters())
    assert any(p.grad is not None for p in model.backbone.parameters())
    for t, t0, o0 in zip(model.momentum_encoder.parameters(), target_before, online_before):
        torch.testing.assert_close(t, 0.9 * t0 + 0.1 * o0)
    names = [n for n, _ in model.state_dict().items()]
    assert not any(n.startswith(("online.", "_encode.")) for n in names)  # the backbone is stored once


def test_moco_v2_enqueues_the_keys_of_each_step():
    torch.manual_seed(0)
    model = MoCoV2(backbone="tiny_cnn", num_classes=10, symmetric=False, **SMALL[MoCoV2])
    q, k, _ = _views(16)
    model.contrastive_step(q, k)
    expected = torch.nn.functional.normalize(model.momentum_encoder(k), dim=1)
    torch.testing.assert_close(model.queue.bank[:16], expected)
    assert int(model.queue.pointer) == 16


def test_online_probe_sends_no_gradient_into_the_backbone():
    torch.manual_seed(0)
    model = SimCLR(backbone="tiny_cnn", num_classes=10, **SMALL[SimCLR])
    q, k, labels = _views(16)
    _, features = model.contrastive_step(q, k)
    probe_loss = torch.nn.functional.cross_entropy(model.probe(features.detach()), labels)
    probe_loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.probe.weight.grad is not None and model.probe.weight.grad.abs().sum() > 0


def test_lars_matches_its_formula():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(torch.randn(3))
    opt = LARS(
        [{"params": [w]}, {"params": [b], "lars_exclude": True}],
        lr=0.1,
        weight_decay=0.01,
        trust_coefficient=0.02,
        momentum=0.9,
    )
    w.grad, b.grad = torch.randn(5, 3), torch.randn(3)
    w0, b0, gw, gb = w.detach().clone(), b.detach().clone(), w.grad.clone(), b.grad.clone()
    opt.step()
    update = gw + 0.01 * w0
    update = update * 0.02 * w0.norm() / update.norm()
    torch.testing.assert_close(w.detach(), w0 - 0.1 * update)
    torch.testing.assert_close(b.detach(), b0 - 0.1 * gb)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: SimCLR(optimizer="adam"), "optimizer must be one of"),
        (lambda: SimCLR(lr=0.0), "lr must be"),
        (lambda: SimCLR(temperature=-0.5), "temperature"),
        (lambda: SimCLR(num_classes=1), "num_classes"),
        (lambda: MoCoV2(base_momentum=1.0), "base_momentum"),
        (lambda: MoCoV3(momentum_schedule="linear"), "momentum_schedule"),
        (lambda: ContrastiveData(views="gpu"), "views must be one of"),
        (lambda: ContrastiveData(batch_size=1), "batch_size must be an int >= 2"),
    ],
)
def test_bad_configuration_values(call, message):
    with pytest.raises(ValueError, match=message):
        call()


class _Interrupt(Exception):
    pass


class _CrashAt(L.Callback):
    """Simulates a killed run: raises before step ``step`` (after the checkpoint of step ``step``)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise _Interrupt


def _quiet_trainer(**kwargs) -> L.Trainer:
    """A CPU trainer without logger, progress bar, summary or validation (kwargs add or override)."""
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**(options | kwargs))


def _fit(root, cls, views, max_steps, every, crash_at=None, ckpt_path=None):
    from contrast.checkpoint import AtomicCheckpointIO

    L.seed_everything(0)
    data = ContrastiveData(batch_size=16, train_subset=64, eval_subset=32, views=views, seed=3)  # 4 steps / epoch
    model = cls(backbone="tiny_cnn", num_classes=10, lr=0.05, warmup_epochs=1, **SMALL[cls])
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=root, save_last=True, every_n_train_steps=every)]
    if crash_at is not None:
        callbacks.append(_CrashAt(crash_at))
    trainer = _quiet_trainer(
        max_steps=max_steps,
        deterministic=True,
        default_root_dir=root,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize("cls,views", [(SimCLR, "cpu"), (SimCLR, "batched"), (MoCoV2, "batched"), (MoCoV3, "cpu")])
@pytest.mark.parametrize("s", [4, 6])  # interrupted at an epoch boundary, and mid-epoch
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, cls, views, s):
    straight, _ = _fit(tmp_path / "a", cls, views, max_steps=2 * s, every=s)
    with pytest.raises(_Interrupt):
        _fit(tmp_path / "b", cls, views, max_steps=2 * s, every=s, crash_at=s)
    resumed, trainer = _fit(tmp_path / "b", cls, views, max_steps=2 * s, every=s, ckpt_path="last")
    assert trainer.global_step == 2 * s
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_bf16_mixed_precision_training_steps(tmp_path):
    L.seed_everything(0)
    data = ContrastiveData(batch_size=16, train_subset=64, eval_subset=32, views="batched")
    model = SimCLR(backbone="tiny_cnn", num_classes=10, channels_last=True, **SMALL[SimCLR])
    trainer = _quiet_trainer(max_steps=3, precision="bf16-mixed", enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    loss = trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss) and loss.dtype == torch.float32  # the loss is computed in float32


@pytest.mark.slow
def test_torch_compile_gives_the_eager_loss():
    torch.manual_seed(0)
    eager = SimCLR(backbone="tiny_cnn", num_classes=10, **SMALL[SimCLR])
    compiled = SimCLR(backbone="tiny_cnn", num_classes=10, compile=True, **SMALL[SimCLR])
    compiled.load_state_dict(eager.state_dict())
    q, k, _ = _views(16)
    loss_eager, _ = eager.contrastive_step(q, k)
    loss_compiled, _ = compiled.contrastive_step(q, k)
    torch.testing.assert_close(loss_compiled, loss_eager, rtol=1e-4, atol=1e-4)
    loss_compiled.backward()
    assert all(p.grad is not None for p in compiled.backbone.parameters())


def test_throughput_callback_measures_after_warmup_and_logs():
    from contrast.speed import Throughput

    with pytest.raises(ValueError, match="warmup"):
        Throughput(warmup=-1)
    data = ContrastiveData(batch_size=16, train_subset=128, eval_subset=32, views="batched")

    def fit(speed: Throughput, **limits) -> L.Trainer:
        trainer = _quiet_trainer(enable_checkpointing=False, callbacks=[speed], **limits)
        trainer.fit(SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16), datamodule=data)
        return trainer

    speed = Throughput(warmup=2)
    trainer = fit(speed, max_epochs=2)
    # 8 steps per epoch, 2 of them warm-up: one figure per epoch, logged.
    assert len(speed.samples_per_s) == 2 and all(r > 0 for r in speed.samples_per_s)
    assert trainer.callback_metrics["speed/samples_per_s"] > 0
    # A run stopped by max_steps inside an epoch still gets its figure.
    speed = Throughput(warmup=1)
    fit(speed, max_steps=5)
    assert len(speed.samples_per_s) == 1


@torch.no_grad()
def _lars_loop_reference(params, lr, momentum, weight_decay, trust_coefficient, exclude, buffers):
    """The per-parameter loop LARS was written as before the multi-tensor step (8 kernels a parameter)."""
    for i, p in enumerate(params):
        grad = p.grad
        if not exclude:
            grad = grad.add(p, alpha=weight_decay)
            param_norm, grad_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
            trust = torch.where(
                (param_norm > 0) & (grad_norm > 0),
                trust_coefficient * param_norm / grad_norm,
                torch.ones_like(param_norm),
            )
            grad = grad.mul(trust)
        if buffers[i] is None:
            buffers[i] = torch.clone(grad).detach()
        else:
            buffers[i].mul_(momentum).add_(grad)
        p.add_(buffers[i], alpha=-lr)


def test_multi_tensor_lars_equals_the_per_parameter_loop_over_steps():
    torch.manual_seed(0)
    shapes = [(16, 8, 3, 3), (16,), (10, 16), (10,), (4, 4)]
    ours = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    ours[-1].data.zero_()  # a zero weight: trust ratio 1
    reference = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    groups = [{"params": ours[0::2]}, {"params": ours[1::2], "lars_exclude": True}]
    optimizer = LARS(groups, lr=0.3, momentum=0.9, weight_decay=1e-4, trust_coefficient=0.001)
    buffers = {0: [None] * 3, 1: [None] * 2}
    for _ in range(5):
        grads = [torch.randn(s) for s in shapes]
        for p, r, g in zip(ours, reference, grads):
            p.grad, r.grad = g.clone(), g.clone()
        optimizer.step()
        _lars_loop_reference(reference[0::2], 0.3, 0.9, 1e-4, 0.001, False, buffers[0])
        _lars_loop_reference(reference[1::2], 0.3, 0.9, 1e-4, 0.001, True, buffers[1])
        for p, r in zip(ours, reference):
            torch.testing.assert_close(p, r, rtol=1e-6, atol=1e-7)


def test_batch_shuffle_is_undone_exactly_in_one_process():
    from contrast.distributed import batch_shuffle, batch_unshuffle

    x = torch.randn(32, 3, 4, 4)
    shuffled, permutation = batch_shuffle(x, torch.Generator().manual_seed(0))
    assert not torch.equal(shuffled, x) and torch.equal(shuffled, x[permutation])
    assert torch.equal(batch_unshuffle(shuffled.flatten(1).sum(1), permutation), x.flatten(1).sum(1))


def test_moco_v2_keys_with_shuffled_bn_are_the_unshuffled_keys_in_one_process():
    """In one process BatchNorm sees the whole batch either way: shuffling must change nothing but
    the order of the summation inside BatchNorm."""
    torch.manual_seed(0)
    model = MoCoV2(backbone="tiny_cnn", num_classes=10, **SMALL[MoCoV2])
    _, k, _ = _views(16)
    torch.testing.assert_close(model.encode_keys(k, shuffle=0), model.encode_keys(k), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_lr_batch_size_scales_the_peak_lr_with_the_global_batch(optimizer, tmp_path):
    """lr given for a global batch of 256: a batch of 16 accumulated over 4 steps trains at lr × 64/256
    (the 2-rank case, devices included: tests/distributed/test_ddp.py)."""
    L.seed_everything(0)
    data = ContrastiveData(batch_size=16, train_subset=64, eval_subset=32, views="batched")
    model = SimCLR(backbone="tiny_cnn", optimizer=optimizer, lr=0.3, lr_batch_size=256, **SMALL[SimCLR])
    trainer = _quiet_trainer(
        max_steps=1, accumulate_grad_batches=4, enable_checkpointing=False, default_root_dir=tmp_path
    )
    trainer.fit(model, data)
    assert model.peak_lr() == pytest.approx(0.3 * 64 / 256)
    groups = trainer.optimizers[0].param_groups
    assert [g["initial_lr"] for g in groups[:2]] == pytest.approx([0.3 * 64 / 256] * 2)
    assert groups[-1]["initial_lr"] == model.hparams.probe_lr  # the online probe keeps its own


def test_lr_batch_size_must_be_a_positive_int():
    from contrast.checks import ConfigError

    with pytest.raises(
        ConfigError, match="lr_batch_size must be None or a positive int|lr_batch_size must be a positive int"
    ):
        SimCLR(backbone="tiny_cnn", lr_batch_size=0, **SMALL[SimCLR])


def test_a_checkpoint_older_than_a_setting_fits_the_setting_at_its_default():
    """A checkpoint written before lr_batch_size existed resumes with it unset, not with it set."""
    from contrast.fits import checkpoint_differences

    model = SimCLR(backbone="tiny_cnn", **SMALL[SimCLR])
    saved = {k: v for k, v in dict(model.hparams).items() if k != "lr_batch_size"}
    assert checkpoint_differences({"hyper_parameters": saved}, model=model) == []
    scaled = SimCLR(backbone="tiny_cnn", lr_batch_size=256, **SMALL[SimCLR])
    assert checkpoint_differences({"hyper_parameters": saved}, model=scaled) == [
        "model.lr_batch_size: checkpoint '<unset>', config 256"
    ]


def test_compile_takes_a_torch_compile_mode_or_a_bool():
    from contrast.checks import ConfigError
    from contrast.methods import SimCLR

    small = dict(backbone="tiny_cnn", num_classes=0, projector_hidden=16, projector_dim=8)
    for mode in (True, "default", "reduce-overhead", "max-autotune-no-cudagraphs"):
        model = SimCLR(compile=mode, **small)
        assert model._encode is not model.backbone  # compiled lazily: nothing runs until the first step
    plain = SimCLR(compile=False, **small)
    assert plain._encode is plain.backbone
    with pytest.raises(ConfigError, match="compile must be one of"):
        SimCLR(compile="fastest", **small)
