"""The split path: crop boxes from the whole image with torchvision's RandomResizedCrop
distribution, views that depend only on (seed, epoch, sample), the device colour stage equal to the
batched path's, and a fit through it.

References: torchvision v2's RandomResizedCrop.get_params (distribution), torchvision's
resized_crop (the crop), BatchedViews.apply (the colour chain)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from contrast.data import ContrastiveData
from contrast.views import BatchedViews, SplitViews, ViewParams, colour_views, cut_on_device, get_recipe
from contrast.views.recipes import view_recipes

RECIPE = get_recipe("simclr_cifar10")


def _image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("height,width", [(375, 500), (800, 400), (160, 320)])
def test_crop_boxes_of_the_whole_image_follow_torchvision(height, width):
    """Area fraction and log aspect ratio of 4,000 boxes, against torchvision's own sampler on the
    same image size: means and quartiles agree within the sampling error."""
    views = SplitViews(RECIPE, seed=0)
    ours = torch.stack([views.sample(height, width, i)[0].boxes[0] for i in range(4000)]).double()
    crop = v2.RandomResizedCrop(32, scale=RECIPE.crop_scale, ratio=RECIPE.crop_ratio)
    torch.manual_seed(0)
    boxes = []
    for _ in range(4000):
        p = crop.make_params([torch.empty(3, height, width)])
        boxes.append([p["top"], p["left"], p["height"], p["width"]])
    theirs = torch.tensor(boxes, dtype=torch.float64)

    def stats(b):
        area = b[:, 2] * b[:, 3] / (height * width)
        log_ratio = torch.log(b[:, 3] / b[:, 2])
        centre = (b[:, 1] + b[:, 3] / 2) / width
        return [torch.quantile(x, q) for x in (area, log_ratio, centre) for q in (0.25, 0.5, 0.75)]

    for a, b in zip(stats(ours), stats(theirs)):
        assert abs(float(a - b)) < 0.04
    assert bool((ours[:, 0] + ours[:, 2] <= height).all() and (ours[:, 1] + ours[:, 3] <= width).all())


def test_a_sample_s_views_depend_only_on_seed_epoch_and_sample():
    views = SplitViews(RECIPE, seed=3)
    image = _image(120, 90)
    (q1, k1), (pq1, pk1) = views(image, 10_007)  # index = epoch · N + i
    (q2, k2), (pq2, pk2) = SplitViews(RECIPE, seed=3)(image, 10_007)
    assert torch.equal(q1, q2) and torch.equal(k1, k2) and torch.equal(pq1, pq2)
    (q3, _), _ = views(image, 10_008)  # the next epoch's (or the next sample's) views differ
    assert not torch.equal(q1, q3)
    p = ViewParams.unpack(pq1[None])  # the crop is torchvision's resized_crop of the drawn box
    top, left, h, w = (int(v) for v in p.boxes[0])
    expected = TF.resized_crop(image, top, left, h, w, [32, 32], antialias=True)
    assert torch.equal(q1, expected.flip(-1) if bool(p.flip[0]) else expected)


def test_the_device_stage_is_the_batched_colour_chain():
    """The same parameters through the batched path on the same crops give the same views."""
    views = SplitViews(RECIPE, seed=1)
    crops, params = zip(*[views(_image(64 + i, 48, i), i)[0:2] for i in range(6)])
    q = torch.stack([c[0] for c in crops])
    pq = torch.stack([p[0] for p in params])
    colour = BatchedViews(RECIPE)
    out, _ = colour_views((colour, colour), (q, q), (pq, pq))
    unpacked = ViewParams.unpack(pq)
    whole = ViewParams(
        **{f: getattr(unpacked, f) for f in ViewParams.FIELDS} | {"flip": torch.zeros(6, dtype=torch.bool)}
    )
    whole.boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0]]).repeat(6, 1)  # the identity crop
    torch.testing.assert_close(out, colour.apply(q, whole), rtol=0, atol=1e-5)
    assert out.dtype == torch.float32 and out.shape == (6, 3, 32, 32)


def test_views_do_not_depend_on_workers_batch_or_rank(tmp_path):
    """The first epoch through 1 process (batch 8, no workers) and through two ranks' shares (batch
    4, 2 workers; each rank's sampler set as DDP sets it): every sample gets the same views."""
    from contrast.data.sampler import EpochShuffle

    def batches(data, rank: int = 0, world: int = 1):
        loader = data.train_dataloader()
        sampler = loader.sampler
        if world > 1:  # this rank's share, as EpochShuffle gives it under DDP
            sampler.num_replicas, sampler.rank, sampler.total = world, rank, sampler.size - sampler.size % world
        out = {}
        for ((q, _), (pq, _)), _ in loader:  # the q view and its parameters, in loader order
            for row in range(q.shape[0]):
                out[len(out)] = (q[row], pq[row])
        return out, list(iter(sampler))  # the sample indices in the same order

    one, order_one = batches(ContrastiveData(dataset="shapes10", views="split", batch_size=8, train_subset=64))
    by_index = {index: one[n] for n, index in enumerate(order_one)}
    for rank in range(2):
        data = ContrastiveData(dataset="shapes10", views="split", batch_size=4, train_subset=64, num_workers=2)
        share, order = batches(data, rank, world=2)
        assert isinstance(data.train_dataloader().sampler, EpochShuffle)
        for n, index in enumerate(order):
            assert torch.equal(share[n][0], by_index[index][0]) and torch.equal(share[n][1], by_index[index][1])


def test_a_fit_through_the_split_path(tmp_path):
    import lightning as L

    from contrast.methods import SimCLR

    data = ContrastiveData(dataset="shapes10", views="split", batch_size=16, train_subset=64, eval_subset=32)
    model = SimCLR(**data.facts(), backbone="tiny_cnn", projector_hidden=32, projector_dim=16)
    trainer = L.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    before = [p.detach().clone() for p in model.backbone.parameters()]
    trainer.fit(model, data)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))


def test_views_from_jpeg_bytes_decode_at_reduced_size_and_match_the_full_decode():
    """A 1,600×1,200 photo with 32-px views: the boxes allow a 1/8 DCT decode; the views are those
    of the full decode within JPEG-scaling error, with the same parameters."""
    import io

    import numpy as np
    from PIL import Image

    from benchmarks.make_imagenet_like import photo_source

    photo, _ = photo_source()(0, np.random.default_rng(0))
    buffer = io.BytesIO()
    photo.resize((1600, 1200), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    full = torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1).contiguous()
    views = SplitViews(RECIPE, seed=0)
    for index in range(8):
        (q, k), (pq, pk) = views.from_jpeg(data, 1200, 1600, index)
        (q_full, k_full), (pq_full, pk_full) = views(full, index)
        assert torch.equal(pq, pq_full) and torch.equal(pk, pk_full)
        assert q.shape == q_full.shape == (3, 32, 32) and q.dtype == torch.uint8
        assert (q.float() - q_full.float()).abs().mean() < 6 and (k.float() - k_full.float()).abs().mean() < 6


def test_decode_on_the_device_gives_the_views_of_the_worker_decode(tmp_path):
    """The same code path as on a GPU, on the CPU device: bytes + boxes from the workers, decode
    and crops on the device, equal to the workers' full decode and crop of the same samples."""
    import numpy as np
    from PIL import Image

    from contrast.data.pack import pack
    from tests.data.test_pack import _photo

    for split, n in (("train", 24), ("val", 8)):
        for i in range(n):
            folder = tmp_path / "photos" / split / ["a", "b"][i % 2]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_photo(60 + i, 80, i)).save(folder / f"{i}.jpg", quality=90)
        pack(tmp_path / "photos" / split, tmp_path / "packs" / split, progress=False)
    common = dict(
        dataset="packed", root=str(tmp_path / "packs"), views="split", batch_size=8, recipe_q="simclr_cifar10"
    )
    device = ContrastiveData(**common, decode="device")
    worker = ContrastiveData(**common)
    (encoded, params), labels = next(iter(device.train_dataloader()))
    (crops, worker_params), worker_labels = next(iter(worker.train_dataloader()))
    assert isinstance(encoded, list) and encoded[0].dtype == torch.uint8 and torch.equal(labels, worker_labels)
    assert all(torch.equal(a, b) for a, b in zip(params, worker_params))
    on_device = cut_on_device(device.path.cutter.views, encoded, params, torch.device("cpu"))
    from torchvision.io import decode_jpeg

    views = SplitViews("simclr_cifar10", seed=0)
    for b, data in enumerate(encoded):  # the reference: a full decode in the worker, the same boxes
        expected = views._cut(decode_jpeg(data), torch.stack([p[b] for p in params]))
        assert torch.equal(on_device[0][b], expected[0]) and torch.equal(on_device[1][b], expected[1])
    for ours, theirs in zip(on_device, crops):  # the workers' (possibly reduced-size) decode: close
        assert ours.shape == theirs.shape and (ours.float() - theirs.float()).abs().mean() < 8
    assert np.isfinite(colour_views(device.path.cutter.views, on_device, params)[0].numpy()).all()
    with pytest.raises(ValueError, match='decode="device" decodes packed JPEGs on the training device'):
        ContrastiveData(dataset="shapes10", views="split", decode="device").setup("fit")
    with pytest.raises(ValueError, match='decode="device" needs views="split"'):
        ContrastiveData(dataset="packed", views="batched", decode="device")


def test_one_draw_for_all_views_equals_a_draw_per_view():
    """SplitViews.packed draws a sample's views (here q, k of two recipes and 3 small ones) in one call:
    the same numbers as each view's BatchedViews.sample in turn from the sample's generator."""
    from contrast.seeds import derive_seed

    split = SplitViews(view_recipes("moco_v3_q", "moco_v3_k", "multicrop_imagenet_small", 3), seed=7)
    for index, (height, width) in enumerate([(375, 500), (500, 120), (64, 64), (90, 700)]):
        generator = torch.Generator().manual_seed(derive_seed(7, "split views", index))
        one_by_one = torch.cat([views.sample(1, height, width, generator).pack() for views in split.views])
        assert torch.equal(split.packed(height, width, index), one_by_one)
