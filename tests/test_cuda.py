"""The same checks on a CUDA device: losses against the float64 formulas, kNN and views against
the CPU results, and a bf16 channels-last training run with the images held on the GPU.

Skipped (with the reason) on machines without a CUDA device; CI runs on CPUs only, so these run
wherever a GPU is present (``pytest tests/test_cuda.py``).
"""

from __future__ import annotations

import math

import pytest
import torch

from contrast.losses import info_nce, nt_xent
from contrast.views import BatchedViews
from tests.losses.test_infonce import ref_info_nce, ref_nt_xent

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _pair(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def _rel(a, b):
    return ((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("form", ["info_nce", "info_nce_symmetric", "nt_xent"])
@pytest.mark.parametrize("tau", [0.07, 0.5])
@pytest.mark.parametrize("chunk_size", [None, 48])
def test_losses_on_cuda_match_float64_formulas(form, tau, chunk_size):
    q, k = _pair(200, 64, seed=1)
    qc, kc = q.cuda().requires_grad_(), k.cuda().requires_grad_()
    q64, k64 = q.double().requires_grad_(), k.double().requires_grad_()
    if form == "nt_xent":
        loss = nt_xent(qc, kc, tau, chunk_size=chunk_size)
        ref = ref_nt_xent(q64, k64, tau).mean()
    else:
        symmetric = form.endswith("symmetric")
        loss = info_nce(qc, kc, tau, symmetric=symmetric, chunk_size=chunk_size)
        ref = ref_info_nce(q64, k64, tau, symmetric=symmetric).mean()
    loss.backward()
    ref.backward()
    assert loss.device.type == "cuda" and loss.dtype == torch.float32
    assert _rel(loss.detach(), ref.detach()) < 1e-5
    assert _rel(qc.grad, q64.grad) < 1e-4 and _rel(kc.grad, k64.grad) < 1e-4


def test_bf16_autocast_on_cuda_gives_float32_logits_and_finite_gradients_at_tau_001():
    q, k = _pair(256, 128, seed=2)
    qc, kc = q.cuda().requires_grad_(), k.cuda().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = nt_xent(qc @ torch.eye(128, device="cuda"), kc, 0.01)  # bf16 inputs from a matmul
    loss.backward()
    ref = ref_nt_xent(q.double(), k.double(), 0.01).mean()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(qc.grad).all() and torch.isfinite(kc.grad).all()
    assert abs(loss.item() - ref.item()) / ref.item() < 0.05  # bf16 inputs: about 3 significant digits


@pytest.mark.parametrize("weighting", ["weighted", "majority"])
def test_knn_torch_backend_on_cuda_predicts_as_on_cpu(weighting):
    from contrast.eval.knn import KNNEvaluator

    g = torch.Generator().manual_seed(3)
    train, queries = torch.randn(3000, 32, generator=g), torch.randn(500, 32, generator=g)
    labels = torch.randint(0, 7, (3000,), generator=g)
    cpu = KNNEvaluator(k=50, backend="torch", weighting=weighting).fit(train, labels).predict(queries, 5)
    gpu = KNNEvaluator(k=50, backend="torch", weighting=weighting).fit(train.cuda(), labels.cuda())
    predicted = gpu.predict(queries.cuda(), 5)
    assert predicted.device.type == "cuda"
    # float32 sums in a different order: a near-tie may flip, nothing more.
    assert (predicted.cpu()[:, 0] == cpu[:, 0]).float().mean() > 0.99


@pytest.mark.parametrize("recipe", ["simclr_cifar10", "simclr_imagenet", "moco_v3_k"])
def test_batched_views_on_cuda_equal_the_cpu_result_with_the_same_parameters(recipe):
    views = BatchedViews(recipe)
    size = 32 if recipe.endswith("cifar10") else 256
    images = torch.randint(0, 256, (16, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    params = views.sample(16, size, size, torch.Generator().manual_seed(5))
    cpu = views.apply(images, params)
    gpu = views.apply(images.cuda(), params)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
    assert (gpu.cpu() - cpu).abs().max().item() < 1e-3  # normalised units; float32 reduction order only


def test_simclr_trains_on_cuda_in_bf16_with_the_images_held_on_the_gpu(tmp_path):
    import lightning as L

    from contrast.data import ContrastiveData
    from contrast.methods import SimCLR

    L.seed_everything(0)
    data = ContrastiveData(batch_size=64, train_subset=512, eval_subset=128, views="batched", cache="device")
    model = SimCLR(backbone="resnet18", cifar_stem=True, channels_last=True, projector_hidden=256, lr=0.05)
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[Record()],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=data)
    assert data.path.device_views.holds_images and data.path.device_views.images.device.type == "cuda"
    assert len(losses) == 16 and all(math.isfinite(x) for x in losses)

    # On one fixed batch of GPU-made views, bf16 channels-last steps lower the loss.
    model = model.cuda()
    held = data.path.device_views
    q, k = held.views(held.images[:64], torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    fixed = []
    for _ in range(15):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = model.contrastive_step(q, k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        fixed.append(loss.item())
    assert fixed[-1] < fixed[1] - 0.1, fixed
