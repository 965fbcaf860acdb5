"""Two-view augmentation throughput: lightly's SimCLRTransform vs ours (CPU path and batched path).

Two-view samples per second for the SimCLR CIFAR-10 recipe at 32×32 and the SimCLR ImageNet
recipe at 224×224 (from 256×256 inputs). The per-sample paths (lightly, ours on CPU) run on one
thread, as inside one DataLoader worker; multiply by the number of workers for a machine. The
batched path runs on the whole batch with all threads (or on the GPU with --device cuda).
Inputs are CIFAR-10 images from $CONTRAST_DATA_DIR/cifar10-jpeg when present, else random.

    python benchmarks/bench_views.py
    python benchmarks/bench_views.py --device cuda --batch 4096
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402


def load_images(n: int) -> torch.Tensor:
    """(n, 3, 32, 32) uint8: real CIFAR-10 images when available."""
    root = Path(os.environ.get("CONTRAST_DATA_DIR", "")) / "cifar10-jpeg" / "train"
    if root.is_dir():
        from torchvision.io import decode_jpeg, read_file

        files = sorted(root.glob("*/*.jpg"))[:: max(1, 50000 // n)][:n]
        return torch.stack([decode_jpeg(read_file(str(f))) for f in files])
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def per_sample_rate(transform, images: list, min_seconds: float = 3.0) -> float:
    torch.set_num_threads(1)
    try:
        transform(images[0])
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            transform(images[done % len(images)])
            done += 1
        return done / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)


def batched_rate(views, batch: torch.Tensor, device: str, min_seconds: float = 3.0) -> float:
    x = batch.to(device)
    g = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    views(x, g)
    sync()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        views(x, g)
        done += x.shape[0]
    sync()
    return done / (time.perf_counter() - start)


def simclr_step_rate(device: str, batch: int, min_seconds: float = 5.0) -> float:
    """Two-view samples/s of a ResNet-50 SimCLR training step (forward and backward of both views,
    SGD update) at 224 px with bf16 autocast and channels-last, on ready-made views."""
    from contrast.methods import SimCLR

    model = SimCLR(backbone="resnet50", channels_last=True).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    q = torch.randn(batch, 3, 224, 224, device=device)
    k = torch.randn(batch, 3, 224, 224, device=device)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = model.contrastive_step(q, k)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    torch.backends.cudnn.benchmark = True
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        step()
        done += batch
    torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="device of the batched path")
    parser.add_argument("--batch", type=int, default=512, help="batch size of the batched path at 32 px")
    parser.add_argument("--batch-224", type=int, default=64, help="batch size of the batched path at 224 px")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    from contrast.views import BatchedTwoViews, TwoViews

    small = load_images(max(args.batch, 256))
    large = TF.resize(small[: max(args.batch_224, 64)], [256, 256], antialias=True)
    pil_small = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in small[:256]]
    pil_large = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in large[:64]]

    rows = []
    for label, recipe, pil, batch, lightly_kwargs in (
        (
            "SimCLR CIFAR-10, 32 px",
            "simclr_cifar10",
            pil_small,
            small[: args.batch],
            dict(input_size=32, gaussian_blur=0.0),
        ),
        ("SimCLR ImageNet, 224 px", "simclr_imagenet", pil_large, large[: args.batch_224], dict(input_size=224)),
    ):
        results = {}
        try:
            from lightly.transforms import SimCLRTransform

            results["lightly SimCLRTransform (1 thread)"] = per_sample_rate(SimCLRTransform(**lightly_kwargs), pil)
        except ImportError:
            results["lightly SimCLRTransform (1 thread)"] = None
        results["contrast TwoViews, CPU path (1 thread)"] = per_sample_rate(TwoViews(recipe), pil)
        results[f"contrast batched, CPU ({torch.get_num_threads()} threads)"] = batched_rate(
            BatchedTwoViews(recipe), batch, "cpu"
        )
        if args.device != "cpu":
            results[f"contrast batched, {args.device}"] = batched_rate(BatchedTwoViews(recipe), batch, args.device)
        lightly = results["lightly SimCLRTransform (1 thread)"]
        for name, rate in results.items():
            ratio = f"{rate / lightly:.1f}x" if rate and lightly else "-"
            rows.append([label, name, f"{rate:,.0f}" if rate else "not installed", ratio])
            print(rows[-1], flush=True)
    notes = ""
    if args.device.startswith("cuda"):
        # Is the batched path the bottleneck of a ResNet-50 SimCLR step at 224 px?
        step = simclr_step_rate(args.device, args.batch_224)
        views = results[f"contrast batched, {args.device}"]
        rows.append(["SimCLR ImageNet, 224 px", f"ResNet-50 SimCLR training step, {args.device}", f"{step:,.0f}", "-"])
        print(rows[-1], flush=True)
        notes = (
            f" A ResNet-50 SimCLR step (bf16, channels-last, batch {args.batch_224}) trains {step:,.0f} two-view "
            f"samples/s; making its views takes {100 * step / views:.1f}% of the step's time."
        )
    table = markdown_table(["recipe", "pipeline", "two-view samples/s", "vs lightly (1 thread)"], rows)
    print(table)
    if not args.no_append:
        append_results(
            "Two-view augmentation throughput",
            args.device,
            table,
            f"Batched path batch sizes: {args.batch} (32 px), {args.batch_224} (224 px, from 256×256 inputs). "
            "Per-sample paths take PIL images, one thread; the batched path takes a uint8 batch." + notes,
        )


if __name__ == "__main__":
    main()
