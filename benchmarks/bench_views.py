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


WINDOWS = 3  # each rate: the best of this many windows of a second (as timeit's min): the same for every row


def per_sample_rate(transform, images: list, seconds: float = 1.0) -> float:
    torch.set_num_threads(1)
    try:
        transform(images[0])
        rates, done = [], 0
        for _ in range(WINDOWS):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                transform(images[done % len(images)])
                done, count = done + 1, count + 1
            rates.append(count / (time.perf_counter() - start))
        return max(rates)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)


def batched_rate(views, batch: torch.Tensor, device: str, seconds: float = 1.0) -> float:
    """Two-view samples/s of the batched path as training runs it (:class:`contrast.views.DeviceViews`):
    each batch's parameters drawn from its samples' counters (host), the views made on ``device``."""
    from contrast.views import DeviceViews

    device_views = DeviceViews(tuple(v.recipe for v in views.views), seed=0)
    x, labels = batch.to(device), torch.zeros(batch.shape[0], dtype=torch.long, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    counters = torch.arange(x.shape[0])
    device_views(((x, counters), labels))
    sync()
    rates, done = [], 0
    for _ in range(WINDOWS):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            device_views(((x, counters + done), labels))  # the next samples' counters
            done, count = done + x.shape[0], count + x.shape[0]
        sync()
        rates.append(count / (time.perf_counter() - start))
    return max(rates)


def draw_ms(recipe: str, batch: int, repeats: int = 200) -> float:
    """Milliseconds of the parameter draw of a batch of two-view samples (both views, one call of
    counter-based uniforms, then the numpy arithmetic of each view's parameters), median of ``repeats``."""
    from contrast.seeds import counter_uniforms
    from contrast.views import BatchedTwoViews
    from contrast.views.batched import UNIFORMS_PER_VIEW

    views = BatchedTwoViews(recipe).views
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        u = counter_uniforms(1234, torch.arange(r * batch, (r + 1) * batch).numpy(), 2 * UNIFORMS_PER_VIEW)
        for v, view in enumerate(views):
            view.params(u[:, v * UNIFORMS_PER_VIEW : (v + 1) * UNIFORMS_PER_VIEW], 32, 32)
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[repeats // 2]


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

    rows, ratios = [], {}
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
        ours_cpu = results["contrast TwoViews, CPU path (1 thread)"]
        for name, rate in results.items():
            ratio = f"{rate / lightly:.1f}x" if rate and lightly else "-"
            rows.append([label, name, f"{rate:,.0f}" if rate else "not installed", ratio, f"{rate / ours_cpu:.1f}x"])
            print(rows[-1], flush=True)
        batched = results[f"contrast batched, CPU ({torch.get_num_threads()} threads)"]
        ratios[recipe] = batched / (lightly or float("nan"))
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
    draw = draw_ms("simclr_cifar10", args.batch)
    table = markdown_table(
        ["recipe", "pipeline", "two-view samples/s", "vs lightly (1 thread)", "vs contrast CPU path (1 thread)"], rows
    )
    # The regression guard: ratios measured side by side in this run, against the targets.
    checks = [
        ("batched 32 px vs lightly", ratios["simclr_cifar10"], 12.0, "x"),
        ("batched 224 px vs lightly", ratios["simclr_imagenet"], 0.9, "x"),
    ]
    guard = [[what, f"{value:.1f}{unit}", f">= {target:g}{unit}", "ok" if value >= target else "REGRESSION"]
             for what, value, target, unit in checks]  # fmt: skip
    guard.append([f"parameter draw, {args.batch} two-view samples", f"{draw:.2f} ms", "<= 2 ms",
                  "ok" if draw <= 2.0 else "REGRESSION"])  # fmt: skip
    table += "\n\n" + markdown_table(["guard", "measured", "target", ""], guard)
    print(table)
    if not args.no_append:
        append_results(
            "Two-view augmentation throughput",
            args.device,
            table,
            f"Batched path batch sizes: {args.batch} (32 px), {args.batch_224} (224 px, from 256×256 inputs). "
            "Per-sample paths take PIL images, one thread; the batched path takes a uint8 batch and draws each "
            f"batch's parameters from its samples' counters (DeviceViews). Each rate: the best of {WINDOWS} windows "
            "of a second." + notes,
        )


if __name__ == "__main__":
    main()
