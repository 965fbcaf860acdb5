"""One GPU session, prepared and rehearsed on a CPU, inside a wall-clock budget it enforces itself.

In this order, each stage a child process stopped when its share of the budget is spent:

1. ``tests``: ``pytest tests/test_cuda.py`` (losses, kNN and views on the GPU against the CPU and
   float64 references; a bf16 step);
2. ``speed``: a ``torch.profiler`` view of a few steps of the SimCLR ResNet-18 CIFAR-10 step (the
   GPU-busy fraction, the top kernels, the host's gap per step), then the speed rungs, each a few
   hundred steps: eager, ``torch.compile`` default, ``max-autotune-no-cudagraphs``, CUDA graphs
   (``reduce-overhead``), samples/s from :class:`contrast.speed.Throughput`;
3. ``tta``: ``configs/simclr_cifar10_fast.yaml`` with the fastest rung through ``bench_tta.py`` (the
   clock from its process start, kNN k=200 τ=0.1 on backbone features every 5 epochs, its time
   counted), stopping at lightly's 84.8% or at the budget;
4. ``moco``: MoCo v2 (lightly's recipe) with and without shuffled BN, a few epochs each, if time remains;
5. ``decode``: the packed path's decode on the device (``--data.decode device``): JPEGs of about
   500×375 made from CIFAR-10 images by torchvision alone, samples/s of ``decode_jpeg(list, device=...)``
   + the per-sample crops + the colour on the device, against one CPU core decoding and cutting them;
6. ``loader``: the packed path in its setting, W DataLoader workers feeding the device: two 224-px
   SimCLR views a sample from a pack of such JPEGs (the split path, decode in the workers or on the
   device, the colour on the device) against torchvision's ImageFolder + the v2 SimCLR pipeline in the
   same W workers, samples/s per worker core.

Every figure is written the moment it is measured: a JSON line in ``OUT/figures.jsonl`` and a
markdown row in ``OUT/rows.md`` (for ``benchmarks/RESULTS.md``), so an interrupted session keeps what it
measured. The device's name is the first line.

    python benchmarks/gpu_session.py --data DATA --out gpu_session [--budget 540]
    python benchmarks/gpu_session.py --toy --out /tmp/rehearsal    # the CPU rehearsal: Shapes-10, a few steps

``DATA`` holds ``cifar10-jpeg/`` (the layout of ``$CONTRAST_DATA_DIR``). Nothing is downloaded or installed.
"""

from __future__ import annotations

import time

START = time.perf_counter()  # the session's clock, from this process's start

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import append_line, append_results  # noqa: E402

TARGET = 84.8  # lightly's SimCLR kNN top-1 on CIFAR-10 (k=200, τ=0.1, best epoch; 200 epochs, RTX A6000)
RUNGS = ("eager", "default", "max-autotune-no-cudagraphs", "reduce-overhead")
# the toy scale of the CPU rehearsal: Shapes-10 (generated in code), the tiny CNN, a few steps
TOY_DATA = ["--data.train_subset", "256", "--data.eval_subset", "128", "--trainer.accelerator", "cpu"]


# ---------------------------------------------------------------------- records
def record(out: Path, stage: str, **figures) -> dict:
    """One JSON line in OUT/figures.jsonl, on disk before this returns."""
    line = {"stage": stage, "seconds": round(time.perf_counter() - START, 1), "time": time.strftime("%H:%M:%S")}
    line |= figures
    append_line(out / "figures.jsonl", json.dumps(line))
    print(f"[{stage}] {json.dumps(figures)}", flush=True)
    return line


def markdown(out: Path, *cells: object) -> None:
    """One row of OUT/rows.md: | stage | what | figure | notes |."""
    append_line(out / "rows.md", "| " + " | ".join(str(c) for c in cells) + " |")


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


# ---------------------------------------------------------------------- stage 1: the tests on the device
def stage_tests(args) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/test_cuda.py")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
    record(args.out, "tests", returncode=proc.returncode, summary=summary, failed=failed)
    markdown(args.out, "tests", "tests/test_cuda.py", summary, ", ".join(failed) or "")


# ---------------------------------------------------------------------- stage 2: profile and speed rungs
def _fit_args(args, config: str) -> list[str]:
    if args.toy:
        return ["--config", str(ROOT / "configs/quickstart.yaml"), *TOY_DATA, "--data.batch_size", "32"]
    return ["--config", str(ROOT / config), "--data.root", str(args.data)]


def stage_speed(args) -> None:
    import lightning as L
    import torch

    from contrast.speed import Throughput
    from contrast.train import lightning_cli

    cuda = torch.cuda.is_available()
    warmup, steps = (2, 3) if args.toy else (60, 240)

    class ProfileSteps(L.Callback):
        """torch.profiler over ``count`` steps after the warm-up: device-busy fraction and top kernels."""

        def __init__(self, first: int, count: int) -> None:
            self.first, self.count, self.profiler, self.begin = first, count, None, 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if trainer.global_step == self.first and self.profiler is None:
                if cuda:
                    torch.cuda.synchronize()
                activities = [torch.profiler.ProfilerActivity.CPU]
                if cuda:
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                self.profiler = torch.profiler.profile(activities=activities)
                self.profiler.__enter__()
                self.begin = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if self.profiler is None or trainer.global_step != self.first + self.count:
                return
            if cuda:
                torch.cuda.synchronize()
            wall_us = (time.perf_counter() - self.begin) * 1e6
            self.profiler.__exit__(None, None, None)
            events = self.profiler.key_averages()

            def device_us(e) -> float:
                return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) or 0)

            key = device_us if cuda else (lambda e: float(e.self_cpu_time_total))
            busy_us = sum(device_us(e) for e in events) if cuda else 0.0
            top = sorted(events, key=key, reverse=True)[:8]
            figures = dict(
                steps=self.count,
                ms_per_step=round(wall_us / self.count / 1e3, 3),
                device_busy=round(busy_us / wall_us, 3) if cuda else None,
                host_gap_ms_per_step=round((wall_us - busy_us) / self.count / 1e3, 3) if cuda else None,
                top=[(e.key[:80], round(key(e) / self.count / 1e3, 3)) for e in top],  # (name, ms per step)
            )
            record(args.out, "profile", **figures)
            busy = f"{figures['device_busy']:.0%} device-busy, " if cuda else ""
            markdown(args.out, "profile", "SimCLR step, eager", f"{figures['ms_per_step']} ms/step", busy + top[0].key)
            self.profiler = None

    rungs = RUNGS[:1] if args.toy else RUNGS
    for rung in rungs:
        compile_mode = "false" if rung == "eager" else rung
        overrides = [
            *_fit_args(args, "configs/simclr_cifar10_fast.yaml"),
            *("--trainer.max_epochs -1 --trainer.limit_val_batches 0 --trainer.enable_progress_bar false".split()),
            *("--trainer.logger false --trainer.enable_checkpointing false --trainer.callbacks []".split()),
            *("--trainer.callbacks+ contrast.speed.Throughput --trainer.callbacks.warmup".split()),
            str(warmup),
            "--trainer.max_steps",
            str(warmup + steps),
            "--model.init_args.compile",
            compile_mode,
            "--run_dir",
            str(args.out / "runs" / f"speed_{rung}"),
        ]
        try:
            cli = lightning_cli(overrides, run=False)
            if rung == "eager":
                cli.trainer.callbacks.append(ProfileSteps(warmup, min(20, steps)))
            started = time.perf_counter()
            cli.trainer.fit(cli.model, cli.datamodule)
            throughput = next(cb for cb in cli.trainer.callbacks if isinstance(cb, Throughput))
            rate = throughput.samples_per_s[-1] if throughput.samples_per_s else None
            line = record(
                args.out, "speed", rung=rung, samples_per_s=rate, steps=steps, seconds=time.perf_counter() - started
            )
            figure = f"{rate:,.0f} samples/s" if rate else "no figure"
            markdown(args.out, "speed", f"SimCLR ResNet-18, {rung}", figure, f"{steps} steps after {warmup}")
        except Exception as error:  # a rung that does not run is a figure too
            line = record(args.out, "speed", rung=rung, error=f"{type(error).__name__}: {str(error)[:300]}")
            markdown(args.out, "speed", f"SimCLR ResNet-18, {rung}", "failed", line["error"])


def fastest_rung(out: Path) -> str:
    """The rung with the most samples/s so far (eager when none ran)."""
    best, rate = "eager", 0.0
    path = out / "figures.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        figures = json.loads(line)
        if figures["stage"] == "speed" and (figures.get("samples_per_s") or 0) > rate:
            best, rate = figures["rung"], figures["samples_per_s"]
    return best


# ---------------------------------------------------------------------- stages 3 and 4: training runs
def _stream(args, stage: str, command: list[str], label: str) -> list[str]:
    """Run ``command``, recording each kNN evaluation and throughput line as it is printed."""
    lines = []
    proc = subprocess.Popen(
        command, cwd=args.out, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in proc.stdout:
        lines.append(line.rstrip())
        if m := re.search(r"time to accuracy: ([0-9.]+) s, epoch (\d+), top-1 ([0-9.]+)%", line):
            record(args.out, stage, run=label, elapsed=float(m[1]), epoch=int(m[2]), knn_top1=float(m[3]))
        elif m := re.search(r"throughput: ([0-9,]+) samples/s", line):
            record(args.out, stage, run=label, samples_per_s=float(m[1].replace(",", "")))
        elif m := re.search(r"kNN accuracy .*top-1 ([0-9.]+)%", line):
            record(args.out, stage, run=label, knn_top1=float(m[1]))
    proc.wait()
    record(args.out, stage, run=label, returncode=proc.returncode, last=lines[-3:])
    return lines


def stage_tta(args) -> None:
    rung = fastest_rung(args.out)
    seconds = max(30, int(args.seconds) - 20)  # Lightning stops itself before the stage is stopped
    max_time = f"00:00:{seconds // 60:02d}:{seconds % 60:02d}"
    command = [sys.executable, str(ROOT / "benchmarks/bench_tta.py"), "--stop-at-target", "--no-append"]
    if args.toy:
        command += ["--config", str(ROOT / "configs/quickstart.yaml"), "--target", "99", "--knn-every", "1"]
        command += [*TOY_DATA, "--data.batch_size", "64", "--trainer.max_epochs", "2"]
    else:
        command += ["--config", str(ROOT / "configs/simclr_cifar10_fast.yaml"), "--target", str(TARGET)]
        command += ["--knn-every", "5", "--data.root", str(args.data)]
    command += ["--trainer.max_time", max_time, "--run_dir", str(args.out / "runs" / "tta")]
    if rung != "eager":
        command += ["--model.init_args.compile", rung]
    config = "quickstart" if args.toy else "simclr_cifar10_fast"
    lines = _stream(args, "tta", command, f"{config}, {rung}")
    rows = [x for x in lines if x.startswith("| ") and not x.startswith("| config") and not x.startswith("| ---")]
    cells = [c.strip() for c in rows[-1].strip("|").split("|")] if rows else []
    if (
        len(cells) == 9
    ):  # bench_tta's row: config, target, time to target, final, best, epochs, s/epoch, samples/s, total
        figure = f"{cells[2]} to {cells[1]}%" if cells[2] != "not reached" else f"not reached (best {cells[4]}%)"
        notes = f"final {cells[3]}%, best {cells[4]}%, {cells[5]} epochs, {cells[6]} s/epoch, {cells[7]} samples/s"
        notes += f", {cells[8]} s in all"
    else:
        figure, notes = "no result", (lines[-1] if lines else "")
    record(args.out, "tta", run=f"{config}, {rung}", result=figure, notes=notes)
    markdown(args.out, "tta", f"SimCLR to {TARGET if not args.toy else 99}% kNN ({config}, {rung})", figure, notes)


def stage_moco(args) -> None:
    for shuffle in ("true", "false"):
        command = [
            sys.executable,
            "-m",
            "contrast.cli",
            "fit",
            "--config",
            str(ROOT / "configs/moco_v2_cifar10_lightly.yaml"),
        ]
        if args.toy:
            command += [
                *TOY_DATA,
                "--data.recipe_q",
                "quickstart",
                "--data.dataset",
                "shapes10",
                "--data.batch_size",
                "64",
            ]
            command += ["--model.init_args.backbone", "tiny_cnn", "--model.init_args.cifar_stem", "false"]
            command += ["--model.init_args.channels_last", "false", "--model.init_args.queue_size", "256"]
            command += ["--trainer.precision", "32", "--trainer.benchmark", "false", "--trainer.max_epochs", "1"]
            command += ["--data.train_subset", "1600"]  # 25 steps: past Throughput's 20 warm-up steps
        else:
            command += ["--data.root", str(args.data), "--trainer.max_epochs", "3"]
        command += ["--model.init_args.shuffle_bn", shuffle]
        command += ["--run_dir", str(args.out / "runs" / f"moco_shuffle_{shuffle}")]
        lines = _stream(args, "moco", command, f"moco_v2, shuffle_bn {shuffle}")
        rates = [re.search(r"throughput: ([0-9,]+ samples/s)", x)[1] for x in lines if "throughput:" in x]
        knn = [re.search(r"top-1 ([0-9.]+)%", x)[1] for x in lines if x.startswith("run finished") and "top-1" in x]
        notes = f"kNN top-1 {knn[-1]}% after the run" if knn else (lines[-1] if lines else "")
        markdown(args.out, "moco", f"MoCo v2, shuffle_bn {shuffle}", rates[-1] if rates else "no figure", notes)


# ---------------------------------------------------------------------- stage 5: JPEG decode on the device
def _jpegs(args, n: int):
    """n JPEG byte tensors (q90) of about 500×375 (both orientations) and their (height, width): CIFAR-10
    training images upscaled with some noise for texture (the toy: random smooth images), by torchvision."""
    import torch
    from torch.nn import functional as F
    from torchvision.io import decode_jpeg, encode_jpeg, read_file

    generator = torch.Generator().manual_seed(0)
    if args.toy:
        small = [torch.rand(3, 8, 8, generator=generator) * 255 for _ in range(n)]
    else:
        files = sorted((args.data / "cifar10-jpeg" / "train").rglob("*.jpg"))[:: max(1, 50_000 // n)][:n]
        small = [decode_jpeg(read_file(str(f))).float() for f in files]
    out = []
    for i, image in enumerate(small):
        size = (375, 500) if i % 2 == 0 else (500, 375)
        big = F.interpolate(image[None], size=size, mode="bicubic", align_corners=False)[0]
        big = big + 6 * torch.randn(big.shape, generator=generator)
        data = encode_jpeg(big.clamp(0, 255).to(torch.uint8), quality=90)
        out.append((data, size))
    return out


def stage_decode(args) -> None:
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from contrast.views import SplitViews, colour_views, cut_on_device

    torch.set_num_threads(1)  # the CPU reference is one worker core
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = 16 if args.toy else 256
    jpegs = _jpegs(args, batch)
    split = SplitViews("simclr_imagenet", seed=0)
    encoded = [data for data, _ in jpegs]
    per_sample = [split.parameters(h, w, i) for i, (_, (h, w)) in enumerate(jpegs)]
    params = tuple(torch.stack([p[j] for p in per_sample]) for j in range(len(split.views)))

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def rate(fn, repeats: int) -> float:
        fn()  # warm-up: the decoder's handles, kernels
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        return repeats * batch / (time.perf_counter() - start)

    def cpu_core() -> None:  # what a worker does with a full decode: decode, two crops resized to 224, flips
        for i, (data, _) in enumerate(jpegs):
            split(decode_jpeg(data, mode=ImageReadMode.RGB), i)

    repeats = 2 if args.toy else 10
    figures = dict(
        batch=batch,
        decode_images_per_s=rate(lambda: decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device), repeats),
        cut_samples_per_s=rate(lambda: cut_on_device(split.views, encoded, params, device), repeats),
        views_samples_per_s=rate(
            lambda: colour_views(split.views, cut_on_device(split.views, encoded, params, device), params), repeats
        ),
        cpu_core_samples_per_s=rate(cpu_core, 1),
    )
    figures = {k: round(v, 1) for k, v in figures.items()}
    figures["cores_replaced"] = round(figures["cut_samples_per_s"] / figures["cpu_core_samples_per_s"], 1)
    record(args.out, "decode", device=device, **figures)
    what = "≈500×375 JPEGs q90 (CIFAR-10 upscaled), batch of " + str(batch)
    markdown(args.out, "decode", "decode_jpeg on the device", f"{figures['decode_images_per_s']:,.0f} images/s", what)
    markdown(
        args.out,
        "decode",
        "decode + two 224-px crops on the device (cut_on_device)",
        f"{figures['cut_samples_per_s']:,.0f} samples/s",
        f"{figures['cores_replaced']}× one CPU core's full decode + crops ({figures['cpu_core_samples_per_s']:,.0f}/s)",
    )
    markdown(
        args.out,
        "decode",
        "decode + crops + colour on the device (simclr_imagenet)",
        f"{figures['views_samples_per_s']:,.0f} samples/s",
        "",
    )


# ---------------------------------------------------------------------- stage 6: the packed loader, W workers
def stage_loader(args) -> None:
    import tempfile

    import torch
    from bench_images import loader_rates
    from torchvision.io import write_file

    from contrast.data.pack import pack

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers, images, batch = (1, 64, 16) if args.toy else (8, 2048, 128)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        src = Path(tmp) / "photos"
        for i, (data, _) in enumerate(_jpegs(args, images)):
            (src / f"class{i % 10}").mkdir(parents=True, exist_ok=True)
            write_file(str(src / f"class{i % 10}" / f"{i:05d}.jpg"), data)
        pack(src, Path(tmp) / "pack", workers=workers, progress=False)

        def measured(key: str, per_core: float, against: float | None) -> None:  # on disk as it is measured
            record(args.out, "loader", run=key, device=str(device), workers=workers, per_core=round(per_core, 1))
            if against is not None:
                record(args.out, "loader", run=key, ratio=round(against, 2))
            markdown(
                args.out,
                "loader",
                f"two 224-px SimCLR views, {key}, {workers} workers",
                f"{per_core:,.0f} samples/s per worker core",
                f"{against or 1.0:.2f}× torchvision ImageFolder + v2 in the same workers; {images} JPEGs ≈500×375",
            )

        loader_rates(src, Path(tmp) / "pack", workers, batch, device, measured)


# module -> the distribution that provides it: what the stages import beyond torch, torchvision, lightning
NEEDED = {"pytest": "pytest", "jsonargparse": "jsonargparse", "numpy": "numpy", "PIL": "pillow", "faiss": "faiss-cpu"}


def _missing_modules() -> dict[str, str]:
    import importlib.util

    return {module: dist for module, dist in NEEDED.items() if importlib.util.find_spec(module) is None}


STAGES = {
    "tests": stage_tests,
    "speed": stage_speed,
    "tta": stage_tta,
    "moco": stage_moco,
    "decode": stage_decode,
    "loader": stage_loader,
}


# ---------------------------------------------------------------------- the session
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the folder holding cifar10-jpeg/ (not needed with --toy)")
    parser.add_argument("--out", type=Path, required=True, help="where figures.jsonl, rows.md and the runs go")
    parser.add_argument("--budget", type=float, default=540.0, help="wall-clock seconds for the whole session")
    parser.add_argument("--toy", action="store_true", help="the CPU rehearsal: Shapes-10, the tiny CNN, a few steps")
    parser.add_argument(
        "--wheels", type=Path, help="a folder of wheels to install modules the machine lacks from (pip --no-index)"
    )
    parser.add_argument(
        "--stages",
        type=lambda text: [x for x in text.split(",") if x],
        default=list(STAGES),
        help=f"the stages to run, comma-separated, in the session's order (default: all, {','.join(STAGES)})",
    )
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)  # a child's own stage
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)  # a child's share
    args = parser.parse_args(argv)
    if not args.toy and (args.data is None or not (args.data / "cifar10-jpeg").is_dir()):
        parser.error(f"--data must be a folder holding cifar10-jpeg/, got {args.data}")
    if unknown := [x for x in args.stages if x not in STAGES]:
        parser.error(f"--stages: unknown stage(s) {unknown}; choose from {','.join(STAGES)}")
    args.out = args.out.resolve()
    if args.stage:
        STAGES[args.stage](args)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (rehearsal)"
    record(args.out, "session", device=device, torch=torch.__version__, budget=args.budget, toy=args.toy)
    missing = _missing_modules()
    if missing and args.wheels is not None:  # a machine without a package index: from the wheels brought along
        pip = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(args.wheels),
            *missing.values(),
        ]
        installed = subprocess.run(pip, capture_output=True, text=True)
        record(args.out, "session", installed=list(missing.values()), pip_returncode=installed.returncode)
        missing = _missing_modules()
    if missing:
        record(args.out, "session", missing=sorted(missing.values()))
    append_line(args.out / "rows.md", f"\n{time.strftime('%Y-%m-%d')}, {device}, torch {torch.__version__}\n")
    append_line(args.out / "rows.md", "| stage | what | figure | notes |\n| --- | --- | --- | --- |")
    deadline = START + args.budget
    # each stage's cap; the time-to-accuracy run takes what is left but MoCo's reserve (the decode and
    # loader stages run when time remains after it, or alone with --stages decode,loader)
    plan = (("tests", 90.0), ("speed", 180.0), ("tta", None), ("moco", 75.0), ("decode", 45.0), ("loader", 90.0))
    reserve = 75.0 if "moco" in args.stages else 0.0
    for name, cap in plan:
        if name not in args.stages:
            continue
        left = deadline - time.perf_counter()
        share = min(cap, left) if cap else left - min(reserve, max(0.0, left - 120.0))
        if share < 15:
            record(args.out, name, skipped=f"the budget is spent ({left:.0f} s left)")
            continue
        command = [sys.executable, __file__, "--stage", name, "--out", str(args.out), "--seconds", str(int(share))]
        command += ["--toy"] if args.toy else ["--data", str(args.data.resolve())]
        child = subprocess.Popen(command, cwd=ROOT, env=_env(), start_new_session=True)
        try:
            child.wait(timeout=share)
        except subprocess.TimeoutExpired:  # the stage and every process it started (runs, loader workers)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            record(args.out, name, stopped=f"its share of the budget ({share:.0f} s) ran out")
    record(args.out, "session", finished=True, seconds_used=round(time.perf_counter() - START, 1))
    rows = [line for line in (args.out / "rows.md").read_text().splitlines() if line.startswith("| ")]
    # the session's entry in RESULTS.md's form (date, machine, command, table), to append to benchmarks/RESULTS.md
    append_results(
        "GPU session (benchmarks/gpu_session.py)" + (", CPU rehearsal" if args.toy else ""),
        "cuda" if torch.cuda.is_available() else "cpu",
        "\n".join(rows),
        results=args.out / "RESULTS.md",
    )
    print((args.out / "RESULTS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
