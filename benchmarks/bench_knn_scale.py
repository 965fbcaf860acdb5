"""kNN over a million features on this CPU: peak memory and time, faiss against torch blocks.

A bank of N float32 features (default 1,281,167 × 512: ImageNet's training set through a ResNet-18,
2.44 GiB) with 1000 classes, and 10,000 queries, scored by ``KNNEvaluator`` (weighted vote, k=200,
τ=0.07: the ImageNet protocol) with each backend in a child process of its own. The bank is fitted
with ``copy=False`` (normalised in place, as ``contrast knn`` and the callback do). Reported: the
peak resident memory beyond the bank and the queries (target: one search block at most, 1 GiB for
the torch blocks), and the time of the search.

    python benchmarks/bench_knn_scale.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, resource, sys, time
import torch
from contrast.eval import KNNEvaluator
n, d, q, backend = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
g = torch.Generator().manual_seed(0)
bank = torch.empty(n, d)
for s in range(0, n, 65536):
    bank[s:s + 65536] = torch.randn(min(65536, n - s), d, generator=g)
labels = torch.randint(0, 1000, (n,), generator=g)
queries, query_labels = bank[:q] + 0.5 * torch.randn(q, d, generator=g), labels[:q]
with open("/proc/self/statm") as f:
    before = int(f.read().split()[1]) * resource.getpagesize()
knn = KNNEvaluator(k=200, temperature=0.07, backend=backend)
start = time.perf_counter()
result = knn.fit(bank, labels, copy=False).score(queries, query_labels)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "peak": peak, "seconds": seconds, "top1": result["top1"],
                  "protocol": knn.describe()}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_281_167)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--backends", default="faiss,torch", help="comma-separated: faiss, torch")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    bank = args.n * args.dim * 4
    rows, figures = [], {}
    for backend in args.backends.split(","):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        command = [sys.executable, "-c", CHILD, str(args.n), str(args.dim), str(args.queries), backend]
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
        figures[backend] = result = json.loads(out.strip().splitlines()[-1])
        extra = result["peak"] - result["before"]
        rows.append(
            [
                "faiss.knn (exact inner product)" if backend == "faiss" else "torch blocks (matmul + top-k, 1 GiB)",
                f"{bank / 2**30:.2f} GiB",
                f"{result['before'] / 2**30:.2f} GiB",
                f"{result['peak'] / 2**30:.2f} GiB",
                f"{extra / 2**20:.0f} MiB",
                f"{result['seconds']:.1f} s",
                f"{args.queries / result['seconds']:.0f}",
                f"{result['top1']:.2f}",
            ]
        )
    header = ["backend", "bank", "RSS with bank + queries", "peak RSS", "beyond them", "search", "queries/s", "top-1"]
    table = markdown_table(header, rows)
    print(table)
    protocol = next(iter(figures.values()))["protocol"]
    print(f"protocol: {protocol}, train split as the bank")
    if not args.no_append:
        notes = (
            f"{args.n:,} × {args.dim} float32 random features, 1000 classes, {args.queries:,} queries (noisy copies of "
            f"bank rows); {protocol}; each backend in its own process; `fit(copy=False)` "
            "normalises the bank in place. Target: the peak within the bank plus one block (the torch blocks hold "
            "2**28 similarities, 1 GiB: 209 queries against this bank)."
        )
        append_results("kNN over a million features: peak memory and time", "cpu", table, notes)


if __name__ == "__main__":
    main()
