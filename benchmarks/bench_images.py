"""Image collections at scale, on this machine, side by side in one run:

1. ``contrast pack``: images/s of one process and the pack's size against the source, for longest
   sides capped at 256, 384 and 512 px;
2. two 224-px SimCLR views per sample (recipe ``simclr_imagenet``) from ≈500×375 JPEGs, per CPU
   core (one process, one torch thread): ours (the split path: decode + geometry in the worker,
   colour batched on the device, here the CPU) against torchvision's ImageFolder with the v2 SimCLR
   pipeline on PIL images (``contrast.views.cpu_transform``, the same recipe);
3. the geometry stage alone (decode, two crops resized to 224, flips) against torchvision's
   RandomResizedCrop + flip on PIL images (open, decode, two views).

The data: ``make_imagenet_like.py`` photos (scikit-learn's sample photographs cropped and resized
to varied sizes, around 500×375). Appends its table to RESULTS.md.

    python benchmarks/bench_images.py --images 400
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402


def bench_pack(src: Path, work: Path) -> list[list[str]]:
    from contrast.data.pack import Settings, pack

    source_bytes = sum(p.stat().st_size for p in src.rglob("*.jpg"))
    rows = []
    for cap in (256, 384, 512):
        start = time.perf_counter()
        meta = pack(src, work / f"pack_{cap}", settings=Settings(max_side=cap), workers=0, progress=False)
        seconds = time.perf_counter() - start
        size = sum(s["bytes"] for s in meta["shards"])
        rows.append(
            [f"pack, max_side {cap}", f"{meta['images'] / seconds:.0f} images/s", f"{size / source_bytes:.2f}× source"]
        )
    return rows


def bench_views(src: Path, pack_root: Path, samples: int, batch: int) -> tuple[list[list[str]], dict]:
    from PIL import Image
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    from contrast.data.pack import PackedImages
    from contrast.views import BatchedViews, SplitViews, TwoViews, colour_views, get_recipe

    recipe = get_recipe("simclr_imagenet")
    packed = PackedImages(pack_root)
    n = min(samples, len(packed))
    split = SplitViews(recipe, seed=0)
    colour = (BatchedViews(recipe), BatchedViews(recipe))

    def cut(i: int):  # what a worker does for sample i of a pack: the boxes first, then one (reduced) decode
        height, width = packed.size(i)
        return split.from_jpeg(packed.read(i), height, width, i)

    def ours() -> None:
        for start in range(0, n, batch):
            crops, params = zip(*(cut(i) for i in range(start, min(n, start + batch))))
            q, k = (torch.stack([c[j] for c in crops]) for j in (0, 1))
            pq, pk = (torch.stack([p[j] for p in params]) for j in (0, 1))
            colour_views(colour, (q, k), (pq, pk))

    def ours_geometry() -> None:
        for i in range(n):
            cut(i)

    folder = ImageFolder(str(src))
    two = TwoViews(recipe)

    def theirs() -> None:
        for i in range(n):
            image, _ = folder[i]
            two(image)

    crop = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()])

    def theirs_geometry() -> None:
        for i in range(n):
            with Image.open(folder.samples[i][0]) as image:
                image = image.convert("RGB")
                crop(image), crop(image)

    times = {}
    for name, fn in (
        ("ours", ours),
        ("theirs", theirs),
        ("ours_geometry", ours_geometry),
        ("theirs_geometry", theirs_geometry),
    ):
        fn()  # warm-up (imports, caches)
        start = time.perf_counter()
        fn()
        times[name] = n / (time.perf_counter() - start)

    def row(label: str, key: str, against: str) -> list[str]:
        return [label, f"{times[key]:.1f} samples/s", f"{times[key] / times[against]:.2f}×"]

    rows = [
        row("two 224-px SimCLR views: ours (split path: decode + geometry, colour batched)", "ours", "theirs"),
        row("two 224-px SimCLR views: torchvision ImageFolder + v2 pipeline (PIL)", "theirs", "theirs"),
        row(
            "two 224-px SimCLR views, a worker's share with the colour on a GPU: ours (decode + geometry)",
            "ours_geometry",
            "theirs",
        ),
        row(
            "geometry only: ours (boxes first, one reduced-size decode, two uint8 crops + flips)",
            "ours_geometry",
            "theirs_geometry",
        ),
        row("geometry only: torchvision RandomResizedCrop + flip on PIL", "theirs_geometry", "theirs_geometry"),
    ]
    return rows, times


def colour_costs(batch: int) -> list[list[str]]:
    """What the colour stage costs on this CPU as the device, ms per 224-px view (batch ``batch``, one
    thread): the whole chain of ``simclr_imagenet`` with its drawn parameters, and its two costliest
    ops applied to every view (the blur, kernel 23, and the hue rotation)."""
    from contrast.views import BatchedViews
    from contrast.views.batched import adjust_hue, gaussian_blur

    views = BatchedViews("simclr_imagenet")
    crops = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    params = views.sample(batch, 224, 224, torch.Generator().manual_seed(1))
    x = crops.float() / 255
    sigma = torch.linspace(0.1, 2.0, batch)
    shift = torch.linspace(-0.1, 0.1, batch)
    rows = []
    for label, fn in (
        (
            "colour stage, the whole chain (jitter p 0.8, grayscale 0.2, blur p 0.5, normalise)",
            lambda: views.colour(crops, params),
        ),
        ("colour stage, the blur alone on every view (kernel 23)", lambda: gaussian_blur(x, 23, sigma)),
        ("colour stage, the hue rotation alone on every view", lambda: adjust_hue(x, shift)),
    ):
        fn()
        start = time.perf_counter()
        for _ in range(3):
            fn()
        rows.append([label, f"{(time.perf_counter() - start) / 3 / batch * 1000:.2f} ms a view", ""])
    return rows


def loader_rates(src: Path, pack_root: Path, workers: int, batch: int, device, measured=None) -> dict[str, float]:
    """The same comparison in its setting: DataLoaders of ``workers`` processes feeding the training
    device (here the CPU of this process, on a GPU machine the GPU). torchvision: ImageFolder + the v2
    SimCLR pipeline in the workers; ours: the packed split path, decode in the workers or on the
    device, the colour on the device through the data module's own transfer hooks. Samples/s per
    worker core over an epoch after a warm-up one (the workers persist); ``measured(key, per_core,
    ratio)`` is called as each is measured."""
    from types import SimpleNamespace

    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    from contrast.data import ContrastiveData
    from contrast.views import TwoViews

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    def rate(loader, step) -> float:
        for epoch in range(2):
            if epoch == 1:
                sync()
                start = time.perf_counter()
            for item in loader:
                step(item)
        sync()
        return len(loader) * batch / (time.perf_counter() - start)

    rates: dict[str, float] = {}

    def done(key: str, samples_per_s: float) -> None:
        rates[key] = samples_per_s
        if measured is not None:
            ratio = None if key == "torchvision" else samples_per_s / rates["torchvision"]
            measured(key, samples_per_s / workers, ratio)

    folder = ImageFolder(str(src), transform=TwoViews("simclr_imagenet"))
    theirs = DataLoader(folder, batch, shuffle=True, drop_last=True, num_workers=workers, persistent_workers=True)
    done("torchvision", rate(theirs, lambda item: [v.to(device, non_blocking=True) for v in item[0]]))
    del theirs  # its workers stop
    for decode in ("cpu", "device"):
        data = ContrastiveData(
            dataset="packed",
            root=str(pack_root),
            views="split",
            decode=decode,
            recipe_q="simclr_imagenet",
            batch_size=batch,
            num_workers=workers,
        )
        # the training hooks, as a fit runs them on this device
        data.trainer = SimpleNamespace(training=True, strategy=SimpleNamespace(root_device=torch.device(device)))

        def ours(item, data=data):
            data.on_after_batch_transfer(data.transfer_batch_to_device(item, device, 0), 0)

        loader = data.train_dataloader()
        done(f"ours, decode {decode}", rate(loader, ours))
        del loader
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400, help="JPEGs to generate and pack")
    parser.add_argument("--samples", type=int, default=200, help="samples per view measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the loader rows")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    torch.set_num_threads(1)  # per CPU core
    from make_imagenet_like import main as make

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make(["--out", str(work / "photos"), "--train", str(args.images), "--val", "1"])
        src = work / "photos" / "train"
        rows = bench_pack(src, work)
        view_rows, _ = bench_views(src, work / "pack_512", args.samples, args.batch)
        view_rows += colour_costs(args.batch)
        loader = loader_rates(src, work / "pack_512", args.workers, args.batch, "cpu")
    for key, value in loader.items():
        where = "the whole pipeline in the workers" if key == "torchvision" else "colour on this process's CPU"
        view_rows.append(
            [
                f"in DataLoaders: {key}, {args.workers} worker(s), {where}",
                f"{value / args.workers:.1f} samples/s per worker",
                f"{value / loader['torchvision']:.2f}×",
            ]
        )
    table = markdown_table(["what", "throughput", "vs"], rows + view_rows)
    print(table)
    if not args.no_append:
        notes = (
            f"{args.images} make_imagenet_like photos (varied sizes, about 500×375, JPEG q90); one process, one "
            f"torch thread; views over {args.samples} samples, colour batches of {args.batch}, recipe simclr_imagenet "
            "(224 px, jitter 0.8 p 0.8, grayscale 0.2, blur p 0.5 kernel 23). Pack sizes: the shards against the "
            "source JPEGs (the cap re-encodes larger images at q90). 'ours' runs the colour stage on this CPU as the "
            "training device; with the colour on a GPU a worker's CPU does the decode and the geometry only (the third "
            "views row, against the whole torchvision pipeline that its workers run). The 'in DataLoaders' rows: the "
            f"same in DataLoaders of {args.workers} worker process(es), the colour on this process's CPU (one "
            "thread) as the training device, through the data module's transfer hooks; per worker, an epoch after "
            "a warm-up one."
        )
        append_results("Image collections: pack and views from the whole image (per CPU core)", "cpu", table, notes)


if __name__ == "__main__":
    main()
