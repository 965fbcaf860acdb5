"""NT-Xent forward+backward: time and peak memory, ours (default and chunked) vs peers.

Compared side by side at D=128 and several N (q and k are N×D each, so the similarity matrix
is 2N×2N): ``contrast.losses.nt_xent`` (default path, and chunked), ``lightly.loss.NTXentLoss``,
``pytorch_metric_learning.losses.NTXentLoss`` and a naive 4-line reference. Every measurement
runs in a fresh subprocess so that its peak resident memory is its own; the subprocess runs
under an address-space limit, and one that runs out of memory is reported as OOM.

    python benchmarks/bench_losses.py                   # CPU, N = 256 1024 4096 16384
    python benchmarks/bench_losses.py --device cuda     # GPU (peak memory from torch.cuda)

``--loss clip`` measures CLIP's symmetric image–text InfoNCE instead (q = image, k = text, fixed
τ = 0.07): ``contrast.losses.clip_loss`` (chunked automatically above 2**27 similarities) against
open_clip's one-process formula written out (``naive-clip``: one N×N logit matrix, the two
cross-entropies), e.g. at a global batch of 32,768 pairs, D = 512:

    python benchmarks/bench_losses.py --loss clip --dim 512 --sizes 4096 8192 16384 32768 --methods contrast naive-clip
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    append_results,
    current_rss_bytes,
    markdown_table,
    naive_nt_xent,
    peak_rss_bytes,
    timeit,
)

METHODS = ["contrast", "contrast-chunked", "naive", "lightly", "pml", "naive-clip"]
TEMPERATURE = 0.5
CLIP_TEMPERATURE = 0.07


def naive_clip(image, text, temperature: float):
    """open_clip's ClipLoss in one process: one N×N logit matrix, the mean of both cross-entropies."""
    import torch
    import torch.nn.functional as F

    image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    logits_per_image = image @ text.T / temperature
    labels = torch.arange(image.shape[0], device=image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2


def make_loss(method: str, n: int, loss: str = "nt_xent"):
    import torch

    if loss == "clip":
        if method == "contrast":
            from contrast.losses import clip_loss

            return lambda image, text: clip_loss(image, text, CLIP_TEMPERATURE, validate=False)
        if method == "naive-clip":
            return lambda image, text: naive_clip(image, text, CLIP_TEMPERATURE)
        raise ValueError(f"--loss clip compares contrast and naive-clip, not {method!r}")
    if method == "contrast":
        from contrast.losses import nt_xent

        return lambda q, k: nt_xent(q, k, TEMPERATURE, chunk_size=2 * n, validate=False)
    if method == "contrast-chunked":
        from contrast.losses import nt_xent

        return lambda q, k: nt_xent(q, k, TEMPERATURE, chunk_size=max(1, 2**24 // (2 * n)), validate=False)
    if method == "naive":
        return lambda q, k: naive_nt_xent(q, k, TEMPERATURE)
    if method == "lightly":
        from lightly.loss import NTXentLoss

        return NTXentLoss(temperature=TEMPERATURE)
    if method == "pml":
        from pytorch_metric_learning.losses import NTXentLoss

        loss = NTXentLoss(temperature=TEMPERATURE)
        return lambda q, k: loss(torch.cat([q, k]), torch.arange(n, device=q.device).repeat(2))
    raise ValueError(f"unknown method {method!r}")


def measure(method: str, n: int, dim: int, device: str, repeats: int, loss: str = "nt_xent") -> dict:
    """Runs in the subprocess: median seconds of forward+backward and peak extra memory."""
    import torch

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(n, dim, generator=gen).to(device).requires_grad_()
    k = torch.randn(n, dim, generator=gen).to(device).requires_grad_()
    loss_fn = make_loss(method, n, loss)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None

    def step():
        q.grad = k.grad = None
        loss_fn(q, k).backward()

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = current_rss_bytes()
    seconds = timeit(step, repeats=repeats, warmup=1 if n <= 4096 else 0, sync=sync)
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda") else peak_rss_bytes()) - base
    value = float(loss_fn(q, k))
    return {"seconds": seconds, "peak_mib": peak / 2**20, "loss": value}


def run_isolated(
    method: str, n: int, dim: int, device: str, repeats: int, mem_limit_gb: float, timeout: float, loss: str = "nt_xent"
):
    code = (
        "import json, resource, sys\n"
        f"lim = int({mem_limit_gb} * 2**30)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (lim, lim)) if lim > 0 else None\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import bench_losses\n"
        f"print('RESULT', json.dumps(bench_losses.measure({method!r}, {n}, {dim}, {device!r}, {repeats}, {loss!r})))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    err = proc.stderr.strip().splitlines()
    last = err[-1] if err else f"exit code {proc.returncode}"
    stderr = proc.stderr.lower()
    out_of_memory = ("out of memory", "can't allocate memory", "memoryerror")
    if any(text in stderr for text in out_of_memory) or proc.returncode in (-9, 137):
        return {"error": "OOM"}
    if "ModuleNotFoundError" in proc.stderr:
        return {"error": "not installed"}
    return {"error": last[:80]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--mem-limit-gb", type=float, default=20.0, help="address-space limit per run (CPU; 0: none)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per (method, N) run")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--loss", default="nt_xent", choices=["nt_xent", "clip"])
    args = parser.parse_args()
    if args.loss == "clip" and set(args.methods) - {"contrast", "naive-clip"}:
        parser.error("--loss clip compares --methods contrast naive-clip")
    mem_limit = args.mem_limit_gb if args.device == "cpu" else 0
    _ = resource  # the limit is set inside each subprocess

    header = ["N", *[f"{m} s" for m in args.methods], *[f"{m} MiB" for m in args.methods], "lightly / contrast"]
    if args.loss == "clip":
        header[-1] = "naive formula's logit matrices (3 × 4·N² B) MiB"
    rows = []
    for n in args.sizes:
        repeats = 5 if n <= 1024 else 3 if n <= 4096 else 2 if n <= 16384 else 1
        results = {}
        for method in args.methods:
            results[method] = run_isolated(
                method, n, args.dim, args.device, repeats, mem_limit, args.timeout, args.loss
            )
            print(n, method, results[method], flush=True)
        times = [f"{r['seconds']:.4f}" if "seconds" in r else r["error"] for r in results.values()]
        mems = [f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-" for r in results.values()]
        ratio = "-"
        if "seconds" in results.get("lightly", {}) and "seconds" in results.get("contrast", {}):
            ratio = f"{results['lightly']['seconds'] / results['contrast']['seconds']:.2f}x"
        if args.loss == "clip":
            ratio = f"{3 * 4 * n * n / 2**20:.0f}"
        rows.append([str(n), *times, *mems, ratio])
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        what = (
            f"CLIP loss (symmetric InfoNCE), D={args.dim}, τ={CLIP_TEMPERATURE}"
            if args.loss == "clip"
            else (f"NT-Xent forward+backward, D={args.dim}, τ={TEMPERATURE}")
        )
        append_results(
            f"{what} ({args.device})",
            args.device,
            table,
            "Times are medians of forward+backward in seconds; MiB is peak memory above the inputs "
            "(resident set on CPU, allocated on GPU), each run in its own process. "
            "contrast-chunked uses blocks of 2**24 similarities."
            if args.loss == "nt_xent"
            else "contrast: clip_loss (one block up to 2**27 similarities, blocks of 2**24 above); "
            "naive-clip: open_clip's one-process formula.",
        )


if __name__ == "__main__":
    main()
